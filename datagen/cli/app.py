"""Command line: parse arguments into a config, call one library function, print the result.

No logic lives here; every command is also a Python API call. Each module of ``datagen.cli`` adds one
group of commands to ``app``:

- ``generate``: one command per registered task (``nli``, ``sts``, ...), from ``datagen.tasks``;
- ``outputs``: ``inspect``, ``export``, ``view``;
- ``models``: ``models list``, ``models prepare``;
- ``quality``: ``score``, ``judge``, ``filter``;
- ``audit``: ``audit``;
- ``downstream``: ``train``, ``eval``, ``rfd``, ``report``, ``run``.

``session``, ``progress`` and ``interrupts`` are what every command that loads a model shares: engine logs to
``OUT/logs/engine.log``, a loading line, one progress display, and a clean stop on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import typer

from datagen.cli import audit, downstream, generate, models, outputs, quality

app = typer.Typer(help="Generate, validate and evaluate LLM-written training data for sentence embeddings (NGCSE).",
                  no_args_is_help=True, pretty_exceptions_enable=False)

for group in (generate, outputs, models, downstream, quality, audit):
    group.register(app)


def main() -> None:
    app()
