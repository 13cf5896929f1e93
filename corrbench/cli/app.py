"""The `corrbench` command: a thin typer shell over the Python API."""
from __future__ import annotations

import sys

import click
import typer
from rich.markup import escape

from corrbench import __version__
from corrbench.cli import calibrate as calibrate_cmd
from corrbench.cli import data as data_cmd
from corrbench.cli import data_mnistc as data_mnistc_cmd
from corrbench.cli import data_p as data_p_cmd
from corrbench.cli import eval as eval_cmd
from corrbench.cli import flip_rate as flip_rate_cmd
from corrbench.cli import methods as methods_cmd
from corrbench.cli import report as report_cmd
from corrbench.cli import run as run_cmd
from corrbench.cli import train as train_cmd
from corrbench.cli import zoo as zoo_cmd
from corrbench.cli.common import err_console
from corrbench.errors import UserError

app = typer.Typer(
    name="corrbench", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    help="Benchmark the robustness of image classifiers to common corruptions.\n\n"
         "Train with a robustness method, evaluate on -C / -P suites, and report tables next to the "
         "published numbers.\n\nExample: corrbench train --dataset mnist5k --arch mnist_cnn --epochs 2")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"corrbench {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """corrbench: robustness to common corruptions, end to end."""


app.command("train", help=train_cmd.HELP)(train_cmd.train)
app.command("eval", help=eval_cmd.HELP)(eval_cmd.evaluate)
app.command("calibrate", help=calibrate_cmd.HELP)(calibrate_cmd.calibrate)
app.command("flip-rate", help=flip_rate_cmd.HELP)(flip_rate_cmd.flip_rate)
app.command("report", help=report_cmd.HELP)(report_cmd.report)
app.command("run", help=run_cmd.HELP)(run_cmd.run)
data_p_cmd.register(data_cmd.app)
data_mnistc_cmd.register(data_cmd.app)
app.add_typer(data_cmd.app, name="data")
app.command("zoo", help=zoo_cmd.HELP)(zoo_cmd.zoo)
app.add_typer(methods_cmd.app, name="methods")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        result = app(args=argv, standalone_mode=False)
    except UserError as error:
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        err_console.print("[bold red]error:[/] interrupted", highlight=False)
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("[bold red]error:[/] interrupted", highlight=False)
        sys.exit(130)
    except click.exceptions.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
