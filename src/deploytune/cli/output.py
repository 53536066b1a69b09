"""How the commands print: user text never read as markup, one-line errors, the console."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["fail", "make_console", "say"]


def say(console: Console, text: str) -> None:
    """Print ``text`` as it is (never read as rich markup or emoji codes), unwrapped: how every
    command, a plug-in's too, prints what may hold a user's text."""
    console.print(Text(text), soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` to stderr (no traceback) and return the Exit to raise.

    Exit codes: 2 for an invalid spec, bad options or a missing study; 1 for a failure of the
    storage or of the disk.
    """
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)


def make_console() -> Console:
    """A console on stdout."""
    from rich.console import Console

    return Console()
