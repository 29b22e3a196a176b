"""Reading a generation run: ``datagen inspect``, ``datagen export`` and ``datagen view``."""

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


@user_errors
def view_command(
    out: Path = typer.Argument(..., help=RUN_DIR_HELP + " Scores and judge results are shown when present."),
    html: Path = typer.Option(..., "--html", help="HTML file to write: one self-contained page (no server, no CDN)."),
    max_rows: Optional[int] = typer.Option(None, "--max-rows",
                                           help="Most kept rows in the page, a random sample (default 5,000)."),
    max_rejects: Optional[int] = typer.Option(None, "--max-rejects",
                                              help="Most rejects in the page, a random sample (default 2,000)."),
    seed: int = typer.Option(0, help="Seed of the random sample."),
) -> None:
    """Write one HTML page to look at the data in a browser: summary, reject reasons, sortable rows and rejects."""
    from datagen.quality.view import view_summary_line, write_view

    limits = {key: value for key, value in (("max_rows", max_rows), ("max_rejects", max_rejects)) if value is not None}
    console.print(view_summary_line(write_view(out, html, seed=seed, **limits)), highlight=False, soft_wrap=True)


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
    """Add ``inspect``, ``export`` and ``view`` to the main app."""
    app.command("inspect")(inspect_command)
    app.command("export")(export_command)
    app.command("view")(view_command)
