"""Command line for the quality stages: ``datagen score``, ``datagen judge`` and ``datagen filter``.

``register(app)`` adds the commands to datagen's main Typer app; each calls one library function
(``datagen.quality.score.score_dataset``, ``datagen.quality.filter.filter_dataset``) and prints its result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from datagen.cli.console import console, user_errors
from datagen.cli.flags import generation_commands, verbose_help
from datagen.cli.progress import judge_interrupted_line
from datagen.cli.session import ModelSession
from datagen.engine_logs import engine_log_path

@user_errors
def score_command(
    out: Path = typer.Argument(..., help=f"Output directory of a generation run ({generation_commands()}) or of datagen filter."),
    encoder: str = typer.Option("minilm", help="Reference encoder: registry name, model folder or hub id."),
    as_json: bool = typer.Option(False, "--json", help="Print the dataset summary as JSON."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also draw PNGs (margins, rejects, overlap) here."),
    data_dir: Optional[Path] = typer.Option(None, help="SentEval folder for STS-B dev (default $DATAGEN_DATA)."),
    verbose: bool = typer.Option(False, "--verbose", help=verbose_help()),
) -> None:
    """Score rows (tier cosines, margins, overlap) into OUT/scores/ and summarise the dataset."""
    from datagen.dataset.manifest import MANIFEST

    # A folder that holds no dataset gets no log folder: the library refuses it in one line.
    with ModelSession(engine_log_path(out), verbose=verbose, capture_now=(out / MANIFEST).is_file()) as session:
        from datagen.quality.score import score_dataset

        with session.display.loading(f"scoring {out} with {encoder}…"):
            summary = score_dataset(out, encoder=encoder, data_dir=data_dir)
    plots = []
    if report is not None:
        from datagen.quality.plots import plot_scores

        plots = plot_scores(out, report)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_summary(summary)
    for path in plots:
        typer.echo(f"wrote {path}")


@user_errors
def filter_command(
    out: Path = typer.Argument(..., help="A scored output directory (run `datagen score OUT` first)."),
    dest: Path = typer.Option(..., "--out", help="New output directory for the rows that pass."),
    require_tier_order: bool = typer.Option(False, help="Drop rows whose tier order fails (tier_ok false)."),
    min_margin: Optional[float] = typer.Option(None, help="Drop rows whose smallest tier margin is below X."),
    max_overlap: Optional[float] = typer.Option(None, help="Drop rows with an output whose edit ratio to the anchor is above Y."),
    min_judge: Optional[float] = typer.Option(None, help="Drop rows where any relation's judge probability is below P (run `datagen judge OUT` first)."),
    min_judge_for: Optional[list[str]] = typer.Option(None, help="RELATION=P: drop rows whose judge probability for RELATION is below P (repeatable), e.g. contradiction=0.6."),
    min_check: Optional[list[str]] = typer.Option(None, help="CHECK=P: drop rows whose probability for one judge check (a name in the task's judge.jinja) is below P (repeatable), e.g. intermediate_not_entails_anchor=0.2."),
    best_per_seed: bool = typer.Option(False, help="Keep one row per seed: the sample the judge (then the scores) rates best."),
    recheck: Optional[list[str]] = typer.Option(None, help="OPTION=VALUE: apply a generation check again, over the run's own validation settings (repeatable), e.g. close_paraphrase_outputs=positive; rows that fail are dropped first."),
    max_samples: Optional[int] = typer.Option(None, help="Use only each seed's first K samples, as a run with sampling.n K would have (measures whether more samples pay off, on one run)."),
    overwrite: bool = typer.Option(False, help="Replace a dataset already in --out."),
) -> None:
    """Write the rows of a scored and/or judged dataset that pass the thresholds as a new dataset."""
    from datagen.quality.filter import FilterSpec, filter_dataset, parse_recheck, parse_relation_bars

    spec = FilterSpec(require_tier_order=require_tier_order, min_margin=min_margin, max_overlap=max_overlap,
                      min_judge=min_judge, min_judge_by_relation=parse_relation_bars(min_judge_for or []),
                      min_judge_by_check=parse_relation_bars(min_check or [], option="--min-check", what="CHECK",
                                                             example="intermediate_not_entails_anchor=0.2"),
                      best_per_seed=best_per_seed, recheck=parse_recheck(recheck or []),
                      max_samples=max_samples)
    summary = filter_dataset(out, dest, spec, overwrite=overwrite)
    dropped = ", ".join(f"{k} {v}" for k, v in summary.filtered.items()) or "none"
    typer.echo(f"{summary.out}: kept {summary.kept} of {summary.parent_rows} rows (filtered: {dropped})")


@user_errors
def judge_command(
    dataset: Path = typer.Argument(..., help="Output directory of a datagen run, or a .parquet/.jsonl with a task's columns (then pass --task and --out)."),
    model: Optional[str] = typer.Option(None, help="Judge model: registry name, folder, or a served name with --engine openai (default: qwen2.5-1.5b if installed, else qwen2.5-0.5b)."),
    engine: str = typer.Option("vllm", help="vllm, openai (any OpenAI-compatible server that returns logprobs) or ray."),
    task: Optional[str] = typer.Option(None, help="Task of a .parquet/.jsonl dataset (its columns: anchor and the task's outputs)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where a .parquet/.jsonl dataset is imported and judged."),
    templates: Optional[Path] = typer.Option(None, help="Directory of your own templates (judge questions in judge/, checks in <task>/judge.jinja)."),
    base_url: Optional[str] = typer.Option(None, help="openai engine: server URL, e.g. http://127.0.0.1:8000/v1."),
    stop_below: Optional[list[str]] = typer.Option(None, help="CHECK=P: a row whose CHECK falls below P is not asked the checks after it (repeatable); pass the bars you will filter with, e.g. entailment_entailed=0.98."),
    overwrite: bool = typer.Option(False, help="Replace a dataset already imported into --out."),
    verbose: bool = typer.Option(False, "--verbose", help=verbose_help()),
) -> None:
    """Ask an LLM judge whether each row's labels are right; writes OUT/judge/ and the manifest's judge section."""
    from datagen.quality.filter import parse_relation_bars

    stops = parse_relation_bars(stop_below or [], option="--stop-below", what="CHECK", example="entailment_entailed=0.98")
    with ModelSession(engine_log_path(out or dataset), verbose=verbose) as session:
        from datagen.config import OpenAIConfig
        from datagen.quality.judge import JudgeConfig, judge_input, judge_summary_line

        openai = OpenAIConfig(**({"base_url": base_url} if base_url else {}))
        config = JudgeConfig(model=model, engine=engine, templates_dir=str(templates) if templates else None,
                             openai=openai, stop_below=stops)
        summary = judge_input(dataset, config, task=task, out=out, overwrite=overwrite,
                              engine_factory=session.engine_factory(), on_progress=JudgeView(session).update)
    console.print(judge_summary_line(summary), soft_wrap=True)


class JudgeView:
    """Shards judged of the total, with shards/s and an ETA; the last count is what an interrupted run reports."""

    def __init__(self, session: ModelSession) -> None:
        self.display = session.display
        self.done: tuple[int, int] | None = None
        session.on_interrupt(lambda: judge_interrupted_line(self.done))

    def update(self, done: int, total: int) -> None:
        self.done = (done, total)
        self.display.update(done, total, title="judging", unit="shards",
                            details=lambda seconds, baseline: f"{(done - baseline) / seconds:.2f} shards/s")


def _print_summary(s: dict) -> None:
    tiers = s["tier_consistency_rate"]
    order = f"tier order holds for {tiers:.1%}" if tiers is not None else "one output: no tier order"
    typer.echo(f"{s['task']}: {s['rows']} rows, acceptance {s['acceptance_rate']:.1%}, {order}")
    for name, q in s["margins"].items():
        typer.echo(f"  {name:<15} mean {q['mean']:+.3f}  p05 {q['p05']:+.3f}  p50 {q['p50']:+.3f}  p95 {q['p95']:+.3f}")
    for field, q in s["overlap"].items():
        typer.echo(f"  overlap {field:<13} edit mean {q['mean']:.3f}  p95 {q['p95']:.3f}  jaccard mean {q['jaccard_mean']:.3f}")
    d = s["diversity"]
    typer.echo(f"  diversity: distinct-1 {d['distinct_1']:.3f}  distinct-2 {d['distinct_2']:.3f}  "
               f"near-duplicates {d['near_duplicate_rate']:.1%}")
    diff = s["difficulty"]
    dev = diff["stsb_dev"] or {}
    typer.echo(f"  difficulty: align gen {diff['generated']['alignment']:.3f} / STS-B dev {dev.get('alignment', float('nan')):.3f}"
               f" (delta {diff['delta_alignment'] if diff['delta_alignment'] is not None else 'n/a'}); "
               f"uniform gen {diff['generated']['uniformity']} / dev {dev.get('uniformity', 'n/a')} "
               f"(delta {diff['delta_uniformity'] if diff['delta_uniformity'] is not None else 'n/a'})")
    for reason, count in s["reject_reasons"].items():
        typer.echo(f"  reject {reason:<26} {count}")
    typer.echo(f"  {s['unique_sentences']} unique sentences; {s['seconds']['total']:.1f} s")


def register(app: typer.Typer) -> None:
    """Add ``score`` and ``filter`` to the main app."""
    app.command("score")(score_command)
    app.command("filter")(filter_command)
    app.command("judge")(judge_command)
