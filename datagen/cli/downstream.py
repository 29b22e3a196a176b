"""Command line for the downstream stage: train, eval, rfd, report, run.

``register(app)`` adds the commands to datagen's main Typer app. Each command
only turns flags into a config and calls one library function.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from datagen.cli.console import console, say, user_errors
from datagen.cli.flags import overrides, verbose_help
from datagen.cli.session import ModelSession
from datagen.config import packaged
from datagen.engine_logs import LOG_DIR, engine_log_path
from datagen.errors import ConfigError

PIPELINES = packaged("pipelines")
RUN_CONFIG = "train_config.json"  # what marks a `datagen train` run dir (datagen.train.loop.CONFIG_FILE)


def _parse_margins(text: str | None) -> tuple[float | None, float | None]:
    if text is None:
        return None, None
    try:
        first, second = (float(part) for part in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"--margins '{text}' must be two numbers 'm1,m2', e.g. 5e-3,5e-2") from exc
    return first, second


def _parse_tasks(tasks: Optional[list[str]]) -> tuple[str, ...] | None:
    if not tasks:
        return None
    return tuple(t.strip() for item in tasks for t in item.split(",") if t.strip())


@user_errors
def train_command(
    out: Path = typer.Option(..., "--out", help="Run dir: model files + metrics / alignment CSVs."),
    data: Optional[list[Path]] = typer.Option(None, "--data", help="Generation output dir (repeatable)."),
    plain: Optional[Path] = typer.Option(None, "--plain", help="Plain sentences (.txt/.jsonl/.parquet) to mix in."),
    objective: Optional[str] = typer.Option(None, help="simcse | nli | sts."),
    encoder: Optional[str] = typer.Option(None, help="Registry name (minilm), local folder or hub id."),
    pooler: Optional[str] = typer.Option(None, help="cls | avg | mask."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    max_len: Optional[int] = typer.Option(None, "--max-len", help="Training truncation in tokens (paper: 32)."),
    epochs: Optional[float] = typer.Option(None, "--epochs"),
    steps: Optional[int] = typer.Option(None, "--steps", help="Overrides --epochs."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Steps between STS-B dev evaluations."),
    temp: Optional[float] = typer.Option(None, "--temp", help="InfoNCE temperature (paper: 0.05)."),
    margins: Optional[str] = typer.Option(None, "--margins", help="HT margins 'm1,m2' (paper: 5e-3,5e-2)."),
    beta: Optional[float] = typer.Option(None, "--beta", help="HT weight (paper: 1; 0 = InfoNCE only)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    plain_limit: Optional[int] = typer.Option(None, "--plain-limit", help="Use only the first N plain sentences."),
    dev_limit: Optional[int] = typer.Option(None, "--dev-limit", help="Cap dev pairs per evaluation (smoke tests)."),
    config: Optional[Path] = typer.Option(None, help="YAML; default pipelines/train_<objective>.yaml."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    verbose: bool = typer.Option(False, "--verbose", help=verbose_help()),
) -> None:
    """Train a sentence encoder on generated shards (InfoNCE + hierarchical triplet loss)."""
    # The step bar is datagen's own: it stays on the terminal while what the libraries print goes to the log.
    with ModelSession(engine_log_path(out), verbose=verbose, capture_now=out.is_dir() or not out.exists(),
                      python_stderr_to_terminal=True) as session:
        result = _train(session, out, quiet, config, objective, margins, {
            "data": data or (), "plain": plain,
            "objective": objective, "encoder": encoder, "pooler": pooler, "batch_size": batch_size, "lr": lr,
            "max_len": max_len, "epochs": epochs, "steps": steps, "eval_every": eval_every,
            "temperature": temp, "beta": beta, "seed": seed, "plain_limit": plain_limit, "dev_limit": dev_limit,
        })
    best = f"{result.best_stsb:.2f} at step {result.best_step}" if result.best_step else "none"
    typer.echo(f"{out}: {result.steps} steps, {result.steps_per_second:.2f} steps/s, best STS-B dev {best}")


def _train(session: ModelSession, out: Path, quiet: bool, config: Optional[Path], objective: Optional[str],
           margins: Optional[str], flags: dict):
    from datagen.train.loop import load_train_config, train

    margin1, margin2 = _parse_margins(margins)
    default = PIPELINES / f"train_{objective or 'sts'}.yaml"
    cfg = load_train_config(config or (default if default.is_file() else None),
                            overrides({**flags, "margin1": margin1, "margin2": margin2}))
    if not quiet:
        where = f" (engine log: {session.log_path})" if session.capturing else ""
        console.print(f"loading {cfg.encoder} and the data, then training…{where}", highlight=False, soft_wrap=True)
    return train(cfg, out, progress=not quiet)


@user_errors
def eval_command(
    model: str = typer.Argument(..., help="Run dir, model folder, registry name (minilm) or hub id."),
    tasks: Optional[list[str]] = typer.Option(None, "--tasks", help="e.g. STS12,STS-B,SICK-R (default: all 7)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="SentEval folder; default $DATAGEN_DATA."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"STS12\": ..., \"Avg\": ...}."),
    save: Optional[Path] = typer.Option(None, "--save", help="Also write the JSON here (dir: sts_results.json)."),
    batch_size: int = typer.Option(128, "--batch-size"),
    verbose: bool = typer.Option(False, "--verbose", help=verbose_help(
        "RUN_DIR/logs/engine.log for a datagen train run dir, else $DATAGEN_HOME/logs/eval.log")),
) -> None:
    """STS12-16 ('all'), STS-B test, SICK-R test: Spearman x100 of cosine scores, and their average."""
    with ModelSession(_eval_log_path(model), verbose=verbose, capture_now=True) as session:
        from datagen.evaluate.sts import TASKS, evaluate_path, format_table

        chosen = _parse_tasks(tasks) or TASKS
        with session.display.loading(f"evaluating {model} on {', '.join(chosen)}…"):
            results = evaluate_path(model, tasks=chosen, data_dir=data_dir, batch_size=batch_size, save_to=save)
    typer.echo(json.dumps(results) if as_json else format_table(results))


def _eval_log_path(model: str) -> Path:
    """A ``datagen train`` run dir keeps its own log; any other model (a registry name, a hub folder that may be
    read-only or shared) logs under datagen's home."""
    if (Path(model) / RUN_CONFIG).is_file():
        return engine_log_path(model)
    from datagen.models import data_home

    return data_home() / LOG_DIR / "eval.log"


@user_errors
def rfd_command(
    run_dirs: list[Path] = typer.Argument(..., help="Run dirs, or folders of run dirs (e.g. ngcse-logs)."),
    as_json: bool = typer.Option(False, "--json", help="JSON: one object for one run, else a list."),
) -> None:
    """RFD_a, RFD_u and the top-5 STS-B dev mean from training logs (ours or the paper's)."""
    from datagen.evaluate.rfd import format_rfd_table, rfd_table

    results = rfd_table(run_dirs)
    if as_json:
        payload = results[0].as_dict() if len(results) == 1 else [{"run": r.run, **r.as_dict()} for r in results]
        typer.echo(json.dumps(payload))
        return
    typer.echo(format_rfd_table(results))


@user_errors
def report_command(
    run_dirs: list[Path] = typer.Argument(..., help="Run dirs or folders of run dirs."),
    out: Path = typer.Option(..., "--out", help="Folder for the PNGs."),
) -> None:
    """PNG plots: RFD scatter, alignment/uniformity trajectories, STS results table."""
    from datagen.evaluate.report import make_report

    for path in make_report(run_dirs, out):
        typer.echo(str(path))


@user_errors
def run_command(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML, e.g. pipelines/ngcse_small.yaml."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Run one YAML file's stages: generate, judge, filter, train, eval, rfd, report (those it has)."""
    from datagen.quality.judge import judge_summary_line
    from datagen.workflow import load_pipeline, run_pipeline

    outcome = run_pipeline(load_pipeline(pipeline), progress=not quiet, log=say, run_generate=_generate_stage,
                           run_judge=_judge_stage)
    if outcome["judge"] is not None:
        typer.echo(judge_summary_line(outcome["judge"]))
    if (kept := outcome["filter"]) is not None:
        dropped = ", ".join(f"{k} {v}" for k, v in kept.filtered.items()) or "none"
        typer.echo(f"{kept.out}: kept {kept.kept} of {kept.parent_rows} rows (filtered: {dropped})")
    if outcome["eval"] is not None:
        typer.echo("eval " + json.dumps(outcome["eval"]))
    if outcome["rfd"] is not None:
        typer.echo("rfd " + json.dumps(outcome["rfd"]))


def _generate_stage(step):
    """The pipeline's generation stage as ``datagen <task>`` runs it: loading line, progress, vLLM's output in
    the stage's ``OUT/logs/engine.log``, a clean stop on Ctrl-C."""
    from datagen.cli.generate import GenerationView
    from datagen.generation.run import generate

    with ModelSession(engine_log_path(step.out)) as session:
        return generate(step.config, Path(step.seeds), Path(step.out), overwrite=step.overwrite,
                        engine_factory=session.engine_factory(), on_status=GenerationView(session).update)


def _judge_stage(step, dataset: Path):
    """The pipeline's judge stage as ``datagen judge`` runs it (engine log, progress, clean stop)."""
    from datagen.cli.quality import JudgeView
    from datagen.quality.judge import judge_dataset

    with ModelSession(engine_log_path(dataset)) as session:
        return judge_dataset(dataset, step.config, engine_factory=session.engine_factory(),
                             on_progress=JudgeView(session).update)


def register(app: typer.Typer) -> None:
    """Add the downstream commands to datagen's main app."""
    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("rfd")(rfd_command)
    app.command("report")(report_command)
    app.command("run")(run_command)
