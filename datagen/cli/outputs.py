"""Reading a generation run: ``datagen inspect`` and ``datagen export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from datagen.cli.console import console, user_errors
from datagen.cli.flags import RUN_DIR_HELP
from datagen.errors import DatagenError


@user_errors
def inspect_command(
    out: Path = typer.Argument(..., help=RUN_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    samples: int = typer.Option(3, help="Example rows and rejects to show."),
) -> None:
    """Show counts, reject reasons and a few rows of an output directory."""
    from datagen.dataset.inspect import inspect_output

    report = inspect_output(out, samples=samples)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    _print_inspection(report)


@user_errors
def export_command(
    out: Path = typer.Argument(..., help=RUN_DIR_HELP),
    dest: Path = typer.Option(..., "--dest", help="File to write."),
    fmt: str = typer.Option("ngcse-jsonl", "--format", help="ngcse-jsonl: the NGCSE paper's train.py layout."),
    plain: Optional[Path] = typer.Option(None, help="Plain sentences (.txt) to mix in as split=other rows."),
) -> None:
    """Export generated rows for other trainers."""
    from datagen.dataset.export import export_ngcse_jsonl

    if fmt != "ngcse-jsonl":
        raise DatagenError(f"unknown export format '{fmt}'; use --format ngcse-jsonl")
    count = export_ngcse_jsonl(out, dest, plain=plain)
    console.print(f"wrote {count} lines to {dest}")


def _print_inspection(report: dict) -> None:
    typer.echo(f"{report['out']}  task={report['task']} mode={report['mode']} model={report['model']} "
               f"status={report['status']} shards={report['shards']}")
    typer.echo(f"rows {report['rows']}  rejects {report['rejects']}  acceptance {report['acceptance_rate']:.1%}")
    for reason, count in report["reject_reasons"].items():
        typer.echo(f"  reject {reason:<26} {count}")
    for row in report["sample_rows"]:
        typer.echo("  row: " + json.dumps({k: v for k, v in row.items() if k != "id"}, ensure_ascii=False))
    for row in report["sample_rejects"]:
        typer.echo(f"  reject[{row['reason']}/{row['stage']}]: {row['raw'][:160]}")


def register(app: typer.Typer) -> None:
    """Add ``inspect`` and ``export`` to the main app."""
    app.command("inspect")(inspect_command)
    app.command("export")(export_command)
