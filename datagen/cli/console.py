"""Where the CLI talks to people: stderr, and one red line per user error."""

from __future__ import annotations

import functools
from typing import Callable, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

from datagen.errors import DatagenError

console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def fail(error: DatagenError) -> NoReturn:
    """Print a user error as one red line and exit with its code."""
    console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Make ``command`` print any ``DatagenError`` as one red line and exit with the error's code.

    Anything else is a bug and keeps its traceback. ``functools.wraps`` keeps the signature, so Typer
    still reads the command's flags from it.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except DatagenError as error:
            fail(error)

    return run
