"""Generation commands: one per registered task (``datagen nli``, ``datagen sts``, ...).

The commands come from the task registry (``datagen.tasks.all_tasks()``): a new task gets its command,
help and default config with no edit here. Each turns its flags into a ``GenerateConfig`` and calls
``datagen.generation.run.generate``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datagen.cli.console import console, user_errors
from datagen.cli.flags import overrides
from datagen.tasks import TaskSpec, all_tasks


def register(app: typer.Typer) -> None:
    """Add one generation command per registered task to the main app."""
    for spec in all_tasks():
        app.command(spec.name, help=spec.description)(generate_command(spec))


def generate_command(spec: TaskSpec) -> Callable[..., None]:
    """The ``datagen <task>`` command of ``spec``: flags -> config -> ``generate``."""
    config_help = (f"YAML config; default pipelines/{spec.name}.yaml." if spec.default_config()
                   else f"YAML config; default: the built-in settings (no pipelines/{spec.name}.yaml ships).")

    @user_errors
    def command(
        seeds: Path = typer.Option(..., "--seeds", help="Seed sentences: .txt (one per line), .jsonl or .parquet."),
        out: Path = typer.Option(..., "--out", help="Output directory (created; resumed if it holds this run)."),
        limit: Optional[int] = typer.Option(None, help="Use only the first N seeds."),
        model: Optional[str] = typer.Option(None, help="Registry name (see `datagen models list`), local folder or hub id."),
        engine: Optional[str] = typer.Option(None, help="vllm (offline vLLM), openai (any OpenAI-compatible server) or ray (vLLM replicas via Ray Data)."),
        mode: Optional[str] = typer.Option(None, help="separate: one prompt per output (the paper); joint: one JSON prompt."),
        config: Optional[Path] = typer.Option(None, help=config_help),
        shard_rows: Optional[int] = typer.Option(None, help="Seeds per shard (also the unit queued into the engine)."),
        seed: Optional[int] = typer.Option(None, help="Sampling seed."),
        temperature: Optional[float] = typer.Option(None, help="Sampling temperature (0 = greedy)."),
        max_tokens: Optional[int] = typer.Option(None, help="Max new tokens per completion."),
        samples: Optional[int] = typer.Option(None, "--n", help="Samples per seed."),
        templates: Optional[Path] = typer.Option(None, help="Directory of your own prompt templates (layout of prompts/)."),
        prompt_variant: Optional[str] = typer.Option(None, help="Packaged prompt set from prompts/variants/ (edits: deletion and one-substitution prompts for small models)."),
        column: Optional[str] = typer.Option(None, help="Field/column holding the sentence in .jsonl/.parquet seeds."),
        base_url: Optional[str] = typer.Option(None, help="openai engine: server URL, e.g. http://127.0.0.1:8000/v1."),
        concurrency: Optional[int] = typer.Option(None, help="openai engine: requests in flight."),
        address: Optional[str] = typer.Option(None, help="ray engine: cluster to join (auto or ray://HOST:10001); default: a local instance."),
        replicas: Optional[int] = typer.Option(None, help="ray engine: vLLM replicas (one per GPU or per tensor-parallel group)."),
        overwrite: bool = typer.Option(False, help="Replace an existing run with a different config in --out."),
    ) -> None:
        from datagen.config import load_config
        from datagen.generation.run import generate

        cfg = load_config(
            config or spec.default_config(),
            overrides({
                "task": spec.name, "limit": limit, "model": model, "engine": engine, "mode": mode,
                "shard_rows": shard_rows, "sampling.seed": seed, "sampling.temperature": temperature,
                "sampling.max_tokens": max_tokens, "sampling.n": samples,
                "templates_dir": templates, "prompt_variant": prompt_variant, "seed_column": column,
                "openai.base_url": base_url, "openai.concurrency": concurrency,
                "ray.address": address, "ray.replicas": replicas,
            }),
        )
        with _progress() as (progress, update):
            summary = generate(cfg, seeds, out, overwrite=overwrite, on_progress=update)
        _print_summary(summary)

    command.__name__ = spec.name
    command.__doc__ = spec.description
    return command


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
