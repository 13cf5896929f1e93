"""The `corrbench` command: a thin typer shell over the Python API."""
from __future__ import annotations

import sys
import warnings

import typer
from rich.markup import escape

from corrbench import __version__
from corrbench.cli import calibrate as calibrate_cmd
from corrbench.cli import compare as compare_cmd
from corrbench.cli import data as data_cmd
from corrbench.cli import data_download as data_download_cmd
from corrbench.cli import data_mnistc as data_mnistc_cmd
from corrbench.cli import data_p as data_p_cmd
from corrbench.cli import eval as eval_cmd
from corrbench.cli import flip_rate as flip_rate_cmd
from corrbench.cli import methods as methods_cmd
from corrbench.cli import report as report_cmd
from corrbench.cli import run as run_cmd
from corrbench.cli import runs as runs_cmd
from corrbench.cli import train as train_cmd
from corrbench.cli import zoo as zoo_cmd
from corrbench.cli.common import err_console
from corrbench.cli.help import polish
from corrbench.errors import CorrbenchWarning, UserError

_python_showwarning = warnings.showwarning

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
app.command("compare", help=compare_cmd.HELP)(compare_cmd.compare)
app.command("runs", help=runs_cmd.HELP)(runs_cmd.runs)
data_p_cmd.register(data_cmd.app)
data_mnistc_cmd.register(data_cmd.app)
data_download_cmd.register(data_cmd.app)
app.add_typer(data_cmd.app, name="data")
app.command("zoo", help=zoo_cmd.HELP)(zoo_cmd.zoo)
app.add_typer(methods_cmd.app, name="methods")


polish(app)


def _click_exception_classes() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(ClickException, Abort) classes of every click in use: typer >= 0.29 raises its bundled copy
    (`typer._click`), older typers raise plain click's. A module never imported cannot have raised."""
    errors, aborts = [], []
    for name in ("typer._click.exceptions", "typer.exceptions", "click.exceptions"):
        module = sys.modules.get(name)
        errors += [module.ClickException] if hasattr(module, "ClickException") else []
        aborts += [module.Abort] if hasattr(module, "Abort") else []
    return tuple(errors), tuple(aborts)


def _print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _context_from_argv(argv: list[str]) -> object:
    """The click context of the (sub)command that `argv` names, for errors raised before click made one."""
    command = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="corrbench")
    for token in argv:
        sub = getattr(command, "commands", {}).get(token)
        if sub is not None:
            command, ctx = sub, sub.context_class(sub, info_name=token, parent=ctx)
    return ctx


def _show_click_error(error: Exception, argv: list[str]) -> int:
    """A usage error: one line saying what was wrong, then the command's usage line and where help is."""
    ctx = getattr(error, "ctx", None)
    if ctx is None and isinstance(getattr(error, "exit_code", None), int) and error.exit_code == 2:
        ctx = _context_from_argv(argv)
    if type(error).__name__ == "NoArgsIsHelpError":   # `corrbench data make-c` alone: the help is the answer
        error.show()
        return error.exit_code
    _print_error(error.format_message().replace("\n", " "))
    if ctx is not None:
        usage = " ".join(ctx.get_usage().split())
        err_console.print(f"{escape(usage)}  (`{escape(ctx.command_path)} --help` lists the options)",
                          highlight=False, soft_wrap=True)
    return error.exit_code


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """corrbench's own warnings print as one line on stderr; others keep Python's format."""
    if issubclass(category, CorrbenchWarning):
        err_console.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def _run_app(argv: list[str] | None):
    with warnings.catch_warnings():
        warnings.simplefilter("always", CorrbenchWarning)
        warnings.showwarning = _show_warning
        return app(args=argv, prog_name="corrbench", standalone_mode=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback; usage
    errors add the command's usage line."""
    try:
        result = _run_app(argv)
    except UserError as error:
        _print_error(str(error))
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except Exception as error:
        click_errors, click_aborts = _click_exception_classes()
        if isinstance(error, click_aborts):
            _print_error("interrupted")
            sys.exit(130)
        if not isinstance(error, click_errors):
            raise
        sys.exit(_show_click_error(error, sys.argv[1:] if argv is None else list(argv)))
    if result == 130:   # typer turns Ctrl-C outside a command's own handling into exit code 130
        _print_error("interrupted")
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
