"""Where the CLI talks to people: stderr, and one red line per user error."""

from __future__ import annotations

import typer
from rich.console import Console

from datagen.errors import DatagenError

console = Console(stderr=True)


def fail(error: DatagenError) -> None:
    """Print a user error as one red line and exit with its code."""
    console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)
