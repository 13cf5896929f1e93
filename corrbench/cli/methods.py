"""`corrbench methods`."""
from __future__ import annotations

import dataclasses

import typer
from rich.table import Table

from corrbench.cli.common import console

app = typer.Typer(help="Training methods: list them, or show one's defaults.\n\nExample: corrbench methods show gaussian-noise",
                  invoke_without_command=True)


@app.callback()
def methods(ctx: typer.Context) -> None:
    """List the training methods (same as `corrbench methods list`)."""
    if ctx.invoked_subcommand is None:
        list_methods()


@app.command("list")
def list_methods() -> None:
    """List the training methods with one-line descriptions.

    Example: corrbench methods list
    """
    from corrbench.methods import METHODS

    table = Table(title="methods")
    table.add_column("name")
    table.add_column("description")
    for name, cls in METHODS.items():
        table.add_row(name, cls.summary)
    console.print(table)


@app.command("show")
def show(name: str = typer.Argument(..., help="Method name.")) -> None:
    """Show a method's hyperparameters, training recipe and paper/code choices.

    Example: corrbench methods show gaussian-noise
    """
    from corrbench.names import METHODS as METHOD_NAMES, check_name

    check_name("method", name, METHOD_NAMES)   # before torch loads
    from corrbench.methods import METHODS

    cls = METHODS.get(name)
    console.print(f"[bold]{name}[/]: {cls.summary}")
    params = Table(title="hyperparameters (--set METHOD.name=value)")
    params.add_column("name")
    params.add_column("default")
    params.add_column("choice")
    for field in dataclasses.fields(cls):
        params.add_row(field.name, repr(field.default), cls.choices.get(field.name, ""))
    console.print(params)
    recipe = Table(title=f"training recipe ({cls.recipe.source})")
    recipe.add_column("setting")
    recipe.add_column("default")
    for key, value in dataclasses.asdict(cls.recipe).items():
        if key != "source":
            recipe.add_row(key, str(value))
    console.print(recipe)
    doc = (cls.__module__ and __import__(cls.__module__, fromlist=["_"]).__doc__) or ""
    if doc:
        console.print(doc.strip(), highlight=False)
