"""Command line: parse arguments into a config, call one library function, print the result.

No logic lives here; every command is also a Python API call.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datagen.cli.downstream import register as register_downstream
from datagen.cli.quality import register as register_scoring
from datagen.cli.console import console, fail
from datagen.config import packaged
from datagen.errors import DatagenError

app = typer.Typer(help="Generate, validate and evaluate LLM-written training data for sentence embeddings (NGCSE).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
models_app = typer.Typer(help="Embedded models shipped as PyPI wheels.", no_args_is_help=True)
app.add_typer(models_app, name="models")

DEFAULT_PIPELINES = packaged("pipelines")


def _generate_command(task: str):
    def command(
        seeds: Path = typer.Option(..., "--seeds", help="Seed sentences: .txt (one per line), .jsonl or .parquet."),
        out: Path = typer.Option(..., "--out", help="Output directory (created; resumed if it holds this run)."),
        limit: Optional[int] = typer.Option(None, help="Use only the first N seeds."),
        model: Optional[str] = typer.Option(None, help="Registry name (see `datagen models list`), local folder or hub id."),
        engine: Optional[str] = typer.Option(None, help="vllm (offline vLLM), openai (any OpenAI-compatible server) or ray (vLLM replicas via Ray Data)."),
        mode: Optional[str] = typer.Option(None, help="separate: one prompt per output (the paper); joint: one JSON prompt."),
        config: Optional[Path] = typer.Option(None, help=f"YAML config; default pipelines/{task}.yaml."),
        shard_rows: Optional[int] = typer.Option(None, help="Seeds per shard (also the unit queued into the engine)."),
        seed: Optional[int] = typer.Option(None, help="Sampling seed."),
        temperature: Optional[float] = typer.Option(None, help="Sampling temperature (0 = greedy)."),
        max_tokens: Optional[int] = typer.Option(None, help="Max new tokens per completion."),
        samples: Optional[int] = typer.Option(None, "--n", help="Samples per seed."),
        templates: Optional[Path] = typer.Option(None, help="Directory of your own prompt templates (layout of prompts/)."),
        column: Optional[str] = typer.Option(None, help="Field/column holding the sentence in .jsonl/.parquet seeds."),
        base_url: Optional[str] = typer.Option(None, help="openai engine: server URL, e.g. http://127.0.0.1:8000/v1."),
        concurrency: Optional[int] = typer.Option(None, help="openai engine: requests in flight."),
        address: Optional[str] = typer.Option(None, help="ray engine: cluster to join (auto or ray://HOST:10001); default: a local instance."),
        replicas: Optional[int] = typer.Option(None, help="ray engine: vLLM replicas (one per GPU or per tensor-parallel group)."),
        overwrite: bool = typer.Option(False, help="Replace an existing run with a different config in --out."),
    ) -> None:
        from datagen.config import load_config
        from datagen.generation.run import generate

        try:
            cfg = load_config(
                config or _default_config(task),
                {
                    "task": task, "limit": limit, "model": model, "engine": engine, "mode": mode,
                    "shard_rows": shard_rows, "sampling.seed": seed, "sampling.temperature": temperature,
                    "sampling.max_tokens": max_tokens, "sampling.n": samples,
                    "templates_dir": str(templates) if templates else None, "seed_column": column,
                    "openai.base_url": base_url, "openai.concurrency": concurrency,
                    "ray.address": address, "ray.replicas": replicas,
                },
            )
            with _progress() as (progress, update):
                summary = generate(cfg, seeds, out, overwrite=overwrite, on_progress=update)
        except DatagenError as error:
            fail(error)
        _print_summary(summary)

    command.__name__ = task
    command.__doc__ = {
        "nli": "Generate NLI triples: anchor, entailment, contradiction.",
        "sts": "Generate STS tuples: anchor, positive, intermediate (fewer details), negative.",
    }[task]
    return command


app.command("nli")(_generate_command("nli"))
app.command("sts")(_generate_command("sts"))


@app.command("inspect")
def inspect_command(
    out: Path = typer.Argument(..., help="Output directory of a datagen nli/sts run."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    samples: int = typer.Option(3, help="Example rows and rejects to show."),
) -> None:
    """Show counts, reject reasons and a few rows of an output directory."""
    from datagen.dataset.inspect import inspect_output

    try:
        report = inspect_output(out, samples=samples)
    except DatagenError as error:
        fail(error)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    _print_inspection(report)


@app.command("export")
def export_command(
    out: Path = typer.Argument(..., help="Output directory of a datagen nli/sts run."),
    dest: Path = typer.Option(..., "--dest", help="File to write."),
    fmt: str = typer.Option("ngcse-jsonl", "--format", help="ngcse-jsonl: the NGCSE paper's train.py layout."),
    plain: Optional[Path] = typer.Option(None, help="Plain sentences (.txt) to mix in as split=other rows."),
) -> None:
    """Export generated rows for other trainers."""
    from datagen.dataset.export import export_ngcse_jsonl

    try:
        if fmt != "ngcse-jsonl":
            raise DatagenError(f"unknown export format '{fmt}'; use --format ngcse-jsonl")
        count = export_ngcse_jsonl(out, dest, plain=plain)
    except DatagenError as error:
        fail(error)
    console.print(f"wrote {count} lines to {dest}")


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List embedded models, whether their wheels are installed and whether they are prepared."""
    from datagen.models import list_models

    infos = [vars(info) for info in list_models()]
    if as_json:
        typer.echo(json.dumps(infos, indent=2))
        return
    for info in infos:
        state = "prepared" if info["prepared"] else ("installed" if info["installed"] else "not installed")
        typer.echo(f"{info['name']:<16} {state:<14} {info['description']}")


@models_app.command("prepare")
def models_prepare(name: str = typer.Argument(..., help="Registry name, e.g. qwen2.5-0.5b."),
                   force: bool = typer.Option(False, help="Rebuild even if prepared.")) -> None:
    """Assemble, verify (sha256) and convert an embedded model to a folder vLLM loads."""
    from datagen.models import prepare_model

    try:
        path = prepare_model(name, force=force)
    except DatagenError as error:
        fail(error)
    typer.echo(str(path))


def _default_config(task: str) -> Path | None:
    path = DEFAULT_PIPELINES / f"{task}.yaml"
    return path if path.is_file() else None


class _progress:
    """A rich progress bar showing seeds done, rows/s and tokens/s; silent when not a terminal."""

    def __enter__(self):
        self._bar = Progress(
            TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
            disable=not sys.stderr.isatty(),
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("seeds", total=None, rate="")
        return self._bar, self._update

    def _update(self, done: int, total: int, tokens: int) -> None:
        elapsed = max(self._bar.tasks[0].elapsed or 1e-9, 1e-9)
        rate = f"{done / elapsed:.2f} seeds/s  {tokens / elapsed:.1f} tok/s"
        self._bar.update(self._task, completed=done, total=total, rate=rate)

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)


def _print_summary(summary) -> None:
    if summary.already_complete:
        console.print(f"{summary.out}: already complete ({summary.rows} rows, {summary.rejects} rejects); nothing to do",
                      soft_wrap=True)  # one line per run, whatever the terminal width: logs get grepped
        return
    reasons = ", ".join(f"{k} {v}" for k, v in summary.reject_reasons.items()) or "none"
    console.print(
        f"{summary.out}: {summary.rows} rows, {summary.rejects} rejects ({reasons}); "
        f"{summary.shards_written} shards written, {summary.shards_skipped} resumed; {summary.seconds:.1f} s",
        soft_wrap=True,
    )


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


# The downstream stage (train / eval / rfd / report / run) adds its own commands.
register_downstream(app)
# Scoring and filtering of generated data (score / filter).
register_scoring(app)


def main() -> None:
    app()


