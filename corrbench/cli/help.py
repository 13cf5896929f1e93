"""Help-text conventions applied to every command, whoever wrote its options.

Help strings are plain text: a `[default: …]` written in one must be shown, not eaten as rich markup, and a
flag takes no value, so it shows no `<bool>` metavar. Rather than asking every option to remember this,
`polish(app)` gives every command and group of the app classes that apply it when the help is built.
"""
from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup
from typer.models import DefaultPlaceholder


def _polish_params(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "_corrbench_polished", False):
            continue
        param._corrbench_polished = True
        if getattr(param, "help", None):
            param.help = escape(param.help)
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""   # a flag takes no value: no `<bool>`
    return params


class PlainHelpCommand(TyperCommand):
    """A typer command whose option help is plain text and whose flags show no metavar."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _polish_params(super().get_params(ctx))


class PlainHelpGroup(TyperGroup):
    """A typer group with the same help conventions as PlainHelpCommand."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _polish_params(super().get_params(ctx))


def _is_default(cls: Any, default: type) -> bool:
    return cls is None or cls is default or isinstance(cls, DefaultPlaceholder)


def polish(app: typer.Typer) -> typer.Typer:
    """Give every command and group registered under `app` (recursively) the plain-help classes."""
    if _is_default(app.info.cls, TyperGroup):
        app.info.cls = PlainHelpGroup
    for command in app.registered_commands:
        if _is_default(command.cls, TyperCommand):
            command.cls = PlainHelpCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            polish(group.typer_instance)
    return app
