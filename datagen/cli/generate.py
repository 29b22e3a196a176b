"""Generation commands: one per registered task (``datagen nli``, ``datagen sts``, ...).

The commands come from the task registry (``datagen.tasks.all_tasks()``): a new task gets its command,
help and default config with no edit here. Each turns its flags into a ``GenerateConfig`` and calls
``datagen.generation.run.generate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer

from datagen.cli.console import console, user_errors
from datagen.cli.flags import overrides, verbose_help
from datagen.cli.progress import generation_details, interrupted_line
from datagen.cli.session import ModelSession
from datagen.engine_logs import engine_log_path
from datagen.generation.status import RunStatus
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
        verbose: bool = typer.Option(False, "--verbose", help=verbose_help()),
    ) -> None:
        with ModelSession(engine_log_path(out), verbose=verbose) as session:
            summary = _run(session, seeds, out, overwrite, config or spec.default_config(), {
                "task": spec.name, "limit": limit, "model": model, "engine": engine, "mode": mode,
                "shard_rows": shard_rows, "sampling.seed": seed, "sampling.temperature": temperature,
                "sampling.max_tokens": max_tokens, "sampling.n": samples,
                "templates_dir": templates, "prompt_variant": prompt_variant, "seed_column": column,
                "openai.base_url": base_url, "openai.concurrency": concurrency,
                "ray.address": address, "ray.replicas": replicas,
            })
        _print_summary(summary)

    command.__name__ = spec.name
    command.__doc__ = spec.description
    return command


def _run(session: ModelSession, seeds: Path, out: Path, overwrite: bool, config: Path | None, flags: dict):
    """Flags -> config -> ``generate``, drawing its progress on the session's display."""
    from datagen.config import load_config
    from datagen.generation.run import generate

    view = GenerationView(session)
    cfg = load_config(config, overrides(flags))
    return generate(cfg, seeds, out, overwrite=overwrite, engine_factory=session.engine_factory(),
                    on_status=view.update)


class GenerationView:
    """Draws each ``RunStatus`` and remembers the last one, for the line an interrupted run prints."""

    def __init__(self, session: ModelSession) -> None:
        self.display = session.display
        self.last: RunStatus | None = None
        session.on_interrupt(lambda: interrupted_line(self.last))

    def update(self, status: RunStatus) -> None:
        self.last = status
        self.display.update(status.seeds_done, status.seeds_total, title="generating", unit="seeds",
                            details=generation_details(status))


def _print_summary(summary) -> None:
    """One line per run, whatever the terminal width (logs get grepped), then what a resume kept or dropped."""
    if summary.already_complete:
        line = f"{summary.out}: already complete ({summary.rows} rows, {summary.rejects} rejects); nothing to do"
    else:
        reasons = ", ".join(f"{k} {v}" for k, v in summary.reject_reasons.items()) or "none"
        line = (f"{summary.out}: {summary.rows} rows, {summary.rejects} rejects ({reasons}); "
                f"{summary.shards_written} shards written, {summary.shards_skipped} resumed; {summary.seconds:.1f} s")
    console.print(line, soft_wrap=True)
    if summary.resume_note:
        console.print(summary.resume_note, soft_wrap=True, highlight=False)
