"""Command line for the human audit: ``datagen audit OUT``.

``register(app)`` adds the command to datagen's main Typer app. One command, four uses, each one
library call in ``datagen.quality.audit``: label in the terminal (``label_in_terminal``), ``--import``
(``import_labels``), ``--sheet`` (``write_sheet``) and ``--report`` (``audit_report``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from datagen.cli.console import console, user_errors
from datagen.cli.flags import RUN_DIR_HELP


@user_errors
def audit_command(
    out: Path = typer.Argument(..., help=RUN_DIR_HELP + " Its audit lives in OUT/audit/."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Rows to sample (default 150; about +-0.05 at 90% precision). Fixed once drawn."),
    seed: Optional[int] = typer.Option(None, help="Random seed of the sample (default 0). Fixed once drawn."),
    stratify: Optional[str] = typer.Option(None, help="shard | mode | none: draw from every shard (default) or generation mode in proportion."),
    annotator: Optional[str] = typer.Option(None, help="Name written with every label (default $USER)."),
    report: bool = typer.Option(False, "--report", help="Print precision per relation and per row (Wilson 95%) and record it in the manifest."),
    import_file: Optional[Path] = typer.Option(None, "--import", help="Add labels made elsewhere: .csv or .jsonl with id and one column per relation (right/wrong/unsure)."),
    sheet: Optional[Path] = typer.Option(None, "--sheet", help="Write the sample as a .csv to label elsewhere, then --import it."),
    as_json: bool = typer.Option(False, "--json", help="With --report: print the report as JSON."),
) -> None:
    """Label a seeded sample of rows by hand (r/w/u per relation, b back, q quit); resumes where you stopped."""
    from datagen.quality import audit

    drawn = {"size": sample, "seed": seed, "stratify": stratify}
    if sheet is not None:
        rows = audit.write_sheet(out, sheet, **drawn)
        console.print(f"wrote {rows} sampled rows to {sheet}; fill in the relation columns and run "
                      f"`datagen audit {out} --import {sheet}`")
    if import_file is not None:
        imported, blank = audit.import_labels(out, import_file, annotator=annotator, **drawn)
        rows = "row" if imported == 1 else "rows"
        console.print(f"imported {imported} labelled {rows} from {import_file} into "
                      f"{out / audit.AUDIT / audit.LABELS_FILE}" + (f" ({blank} blank rows skipped)" if blank else ""))
    if report:
        section = audit.audit_report(out)
        typer.echo(json.dumps(section, indent=2, ensure_ascii=False) if as_json else _report_text(out, section))
    if sheet is None and import_file is None and not report:
        sitting = audit.label_in_terminal(out, annotator=annotator, **drawn)
        state = "every row is labelled" if sitting.finished else f"continue with `datagen audit {out}`"
        rows = "row" if sitting.saved == 1 else "rows"
        console.print(f"saved {sitting.saved} {rows} this sitting; {sitting.labelled} of {sitting.total} labelled "
                      f"({state}); report with `datagen audit {out} --report`")


def _report_text(out: Path, s: dict) -> str:
    who = ", ".join(f"{name} {count}" for name, count in s["annotators"].items())
    lines = [f"{out}: audit of {s['labelled_rows']} of {s['sample']['drawn']} sampled rows ({s['task']}; "
             f"annotators: {who}; guide {s['guide']})",
             f"  {'':<16}{'right':>6}{'wrong':>7}{'unsure':>8}  precision  95% interval"]
    for name, p in [*s["relations"].items(), ("row (all right)", s["rows"])]:
        value = f"{p['precision']:.3f}" if p["precision"] is not None else "n/a"
        interval = f"[{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]" if p["ci95"] else "n/a"
        lines.append(f"  {name:<16}{p['right']:>6}{p['wrong']:>7}{p['unsure']:>8}  {value:>9}  {interval}")
    if agreed := s.get("agreement"):
        first, second = agreed["annotators"]
        lines.append(f"  agreement of {first} and {second} (rows both labelled; strict: right only if both say so)")
        for name, a in [*agreed["relations"].items(), ("row (all right)", agreed["rows"])]:
            kappa = f"{a['kappa']:.3f}" if a["kappa"] is not None else "n/a"
            strict = a["strict"]
            value = f"{strict['precision']:.3f} [{strict['ci95'][0]:.3f}, {strict['ci95'][1]:.3f}]" if strict["ci95"] else "n/a"
            agree = f"{a['agreement']:.1%}" if a["agreement"] is not None else "n/a"
            lines.append(f"  {name:<16}{a['rows']:>6} rows  agree {agree:>6}  kappa {kappa:>6}  strict {value}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``audit`` to the main app."""
    app.command("audit")(audit_command)
