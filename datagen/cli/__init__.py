"""Command line: each module adds one group of commands to the Typer ``app``; none holds logic."""

from datagen.cli.app import app, main

__all__ = ["app", "main"]
