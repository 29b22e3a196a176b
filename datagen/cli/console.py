"""Where the CLI talks to people: stderr, one red line per user error, one yellow line per datagen warning."""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from typing import Callable, Iterator, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from datagen.errors import DatagenError

console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def say(line: str, *, to: Console | None = None) -> None:
    """Print ``line`` as it is (no markup, no highlighting) on one line whatever the width, so logs can be grepped.

    Args:
        to: Another console (a test's, a display's); default: datagen's, on stderr.
    """
    (console if to is None else to).print(line, highlight=False, soft_wrap=True, markup=False)


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


class ConsoleWarnings(logging.Handler):
    """Prints the library's warnings (logger ``datagen``: a prompt vLLM refused, a KV cache too small for a
    shard, ...) as yellow lines on the console, which stays on the terminal while engine output goes to a log."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console.print(f"[yellow]warning:[/] {escape(record.getMessage())}", highlight=False, soft_wrap=True)
        except Exception:  # logging's contract: a handler never raises into the code that logged
            self.handleError(record)


@contextmanager
def datagen_warnings_on_console() -> Iterator[None]:
    """Within the block, warnings logged under ``datagen`` reach the console (and nowhere else)."""
    logger = logging.getLogger("datagen")
    handler = ConsoleWarnings()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # else Python's last-resort handler prints them again, to the captured stderr
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
