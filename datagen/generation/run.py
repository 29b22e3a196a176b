"""The generation run: seeds → render → generate → parse/validate → shards, resumable.

``generate`` is the library entry point behind ``datagen <task>`` (nli, sts, pairs, ...).
Work is cut into chunks of ``shard_rows`` seeds; each chunk becomes one data
shard and one rejects shard, journaled by the ``DatasetWriter`` as soon as both are in place.
A rerun skips the chunks the manifest lists with matching checksums and regenerates anything else.
"""

from __future__ import annotations

import hashlib
import json
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from datagen.config import SCHEMA_VERSION, GenerateConfig, fingerprint
from datagen.engines import build_engine, resolve_engine_model, stream_batches
from datagen.engines.base import Completion, Engine, GenerationRequest
from datagen.errors import InputError, ResumeError, StorageError
from datagen.generation.prompts import load_templates, render_requests, templates_sha256
from datagen.tasks.checks import normalise
from datagen.dataset.seeds import Seed, iter_seeds
from datagen.dataset.manifest import Manifest, ShardEntry
from datagen.dataset.writer import DatasetWriter
from datagen.tasks import get_task
from datagen.generation.rows import RunContext, SeenOutputs, ShardResult, validate_seed, reject_unusable_seed, text_digest

EngineFactory = Callable[[GenerateConfig, object], Engine]


@dataclass
class RunSummary:
    out: Path
    rows: int = 0
    rejects: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    shards_written: int = 0
    shards_skipped: int = 0
    seconds: float = 0.0
    completion_tokens: int = 0
    already_complete: bool = False


@dataclass(frozen=True)
class Chunk:
    """Seeds ``[start, stop)`` of the file; chunk ``index`` becomes shard ``index``."""

    index: int
    start: int
    stop: int

    @property
    def seed_range(self) -> tuple[int, int]:
        return self.start, self.stop


@dataclass(frozen=True)
class SeedScan:
    """What one pass over the seed file tells before generation starts: enough to plan the chunks,
    fingerprint the seeds and spot repeated anchors, without keeping the seeds in memory."""

    path: Path
    column: str
    count: int
    sha256: str  # equals fingerprint([every seed's text]), hashed as the file streams by
    duplicates: frozenset[int]  # indexes whose normalised text appeared earlier in the file


def generate(
    config: GenerateConfig,
    seeds_path: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    engine_factory: EngineFactory | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
) -> RunSummary:
    """Generate a dataset into ``out``, resuming whatever an earlier run left.

    Args:
        config: Task, mode, model, engine, sampling and validation settings.
        seeds_path: Seed file (.txt, .jsonl, .parquet).
        out: Output directory; created if missing.
        overwrite: Delete an existing run with a different config instead of refusing.
        engine_factory: Builds the engine; defaults to the engine registry's ``build_engine`` (tests inject fakes).
        on_progress: Called after each chunk with (seeds done, seeds total, completion tokens).

    Returns:
        Counts of rows and rejects, shards written and skipped, elapsed seconds.

    Raises:
        InputError, TemplateError, ModelError, EngineError, StorageError, ResumeError.
    """
    started = time.perf_counter()
    out = Path(out)
    spec = get_task(config.task)
    scan = scan_seeds(seeds_path, column=config.seed_column)
    total = min(config.limit, scan.count) if config.limit else scan.count
    templates = load_templates(spec.name, config.mode, config.templates_dir, config.prompt_variant)
    model = resolve_engine_model(config)
    manifest = _new_manifest(config, model, templates, scan, seeds_path)
    summary = RunSummary(out=out)
    chunks = plan_chunks(total, config.shard_rows)
    with DatasetWriter(out) as writer:
        keep = _resume(writer, manifest, chunks, overwrite)
        pending = [chunk for chunk in chunks if chunk.index not in keep]
        summary.shards_skipped = len(keep)
        summary.already_complete = not pending
        writer.begin(manifest, keep=keep.values())
        if pending:
            engine = (engine_factory or _default_engine_factory)(config, model)
            try:
                _generate_chunks(writer, pending, engine, templates, config, scan, total, summary, on_progress)
            finally:
                engine.close()
        counts = writer.finalize()
    summary.rows, summary.rejects, summary.reject_reasons = counts.rows, counts.rejects, counts.reject_reasons
    summary.seconds = time.perf_counter() - started
    return summary


def _resume(writer: DatasetWriter, manifest: Manifest, chunks: list[Chunk], overwrite: bool) -> dict[int, ShardEntry]:
    """The verified shards of an earlier run of this config that still fit the plan, by index."""
    previous = _open_previous(writer, manifest, overwrite)
    return _verified_shards(writer, previous, chunks)


def _generate_chunks(writer, pending, engine, templates, config, scan, total, summary, on_progress) -> None:
    """Generate, validate and write each pending chunk; each written shard is journaled at once."""
    manifest = writer.manifest
    ctx = RunContext(config.task, config.mode, manifest.model["name"], manifest.template_sha)
    seen_outputs = _accepted_outputs(writer.out, config, writer.shards)
    prepared = (
        _prepare_chunk(chunk, seeds, templates, config, ctx, scan.duplicates)
        for chunk, seeds in _pending_seeds(scan, pending)
    )
    for item, completions in _completed_chunks(engine, prepared):
        result = _validate_chunk(item, completions, templates, config, ctx, seen_outputs)
        writer.write_shard(item.chunk.index, item.chunk.seed_range, result.rows, result.rejects)
        summary.shards_written += 1
        summary.completion_tokens += sum(row["completion_tokens"] for row in result.rows)
        if on_progress:
            on_progress(writer.seeds_done(), total, summary.completion_tokens)


def plan_chunks(count: int, shard_rows: int) -> list[Chunk]:
    """Cut the first ``count`` seeds into consecutive chunks of ``shard_rows``; chunk i becomes shard i."""
    return [Chunk(i // shard_rows, i, min(i + shard_rows, count)) for i in range(0, count, shard_rows)]


def scan_seeds(path: str | Path, *, column: str = "text") -> SeedScan:
    """One streaming pass over the seed file: count, fingerprint and repeated anchors.

    Raises:
        InputError: the file cannot be used (see ``datagen.dataset.seeds.iter_seeds``).
    """
    encode = json.JSONEncoder(separators=(",", ":")).encode  # the bytes fingerprint() would hash
    hasher = hashlib.sha256(b"[")
    digests = array("Q")  # 8 bytes per seed instead of the normalised text
    for seed in iter_seeds(path, column=column):
        hasher.update(("," if digests else "").encode() + encode(seed.text).encode())
        digests.append(text_digest(normalise(seed.text)))
    hasher.update(b"]")
    keys = np.frombuffer(digests, dtype=np.uint64) if digests else np.empty(0, dtype=np.uint64)
    _, first = np.unique(keys, return_index=True)
    repeated = np.setdiff1d(np.arange(len(keys)), first, assume_unique=True)
    return SeedScan(Path(path), column, len(keys), hasher.hexdigest(), frozenset(repeated.tolist()))


def _pending_seeds(scan: SeedScan, pending: list[Chunk]) -> Iterator[tuple[Chunk, tuple[Seed, ...]]]:
    """Stream the seed file again and hand over each pending chunk's seeds as soon as it is read."""
    chunks = iter(sorted(pending, key=lambda chunk: chunk.start))
    chunk, seeds, read = next(chunks, None), [], 0
    for seed in iter_seeds(scan.path, column=scan.column):
        read += 1
        if chunk is None:
            return
        if seed.index >= chunk.start:
            seeds.append(seed)
        if seed.index + 1 == chunk.stop:
            yield chunk, tuple(seeds)
            chunk, seeds = next(chunks, None), []
    if chunk is not None:
        raise InputError(f"seed file {scan.path} changed during the run (now {read} seeds, "
                         f"{scan.count} when it started); leave it alone while datagen runs, then rerun")


def run_fingerprint(config: GenerateConfig, model_sha: str | None, template_sha: str, seeds_sha: str) -> str:
    """What decides whether an output directory may be resumed: anything that changes the rows."""
    return fingerprint(
        {
            "schema_version": SCHEMA_VERSION,
            "task": config.task,
            "mode": config.mode,
            "model": config.model,
            "model_sha256": model_sha,
            "template_sha": template_sha,
            "sampling": config.sampling.model_dump(),
            "validation": config.validation.model_dump(),
            "shard_rows": config.shard_rows,
            "seeds_sha256": seeds_sha,
        }
    )


def _default_engine_factory(config: GenerateConfig, model) -> Engine:
    return build_engine(config, model)


def _new_manifest(config: GenerateConfig, model, templates, scan: SeedScan, seeds_path) -> Manifest:
    template_sha = templates_sha256(templates)
    return Manifest(
        task=config.task,
        fingerprint=run_fingerprint(config, model.sha256, template_sha, scan.sha256),
        config=config.model_dump(mode="json"),
        model={"name": model.name, "path": str(model.path), "sha256": model.sha256},
        templates={name: template.sha256 for name, template in templates.items()},
        template_sha=template_sha,
        seeds={"path": str(seeds_path), "sha256": scan.sha256, "count": scan.count},
    )


def _open_previous(writer: DatasetWriter, manifest: Manifest, overwrite: bool) -> Manifest | None:
    try:
        previous = writer.existing()
    except StorageError:
        if not overwrite:
            raise
        writer.clear()  # unreadable: --overwrite replaces it like any other run
        return None
    if previous is None:
        return None
    if previous.fingerprint == manifest.fingerprint:
        return previous
    if not overwrite:
        raise ResumeError(
            f"{writer.out} holds a run with a different config (task, model, templates, sampling, validation or "
            "seeds); pass --overwrite to replace it or choose another --out"
        )
    writer.clear()
    return None


def _verified_shards(writer: DatasetWriter, previous: Manifest | None, chunks: list[Chunk]) -> dict[int, ShardEntry]:
    """Shards of the previous run whose files check out and that still fit the plan.

    A shard fits when it covers its planned chunk (same start, same or later end) or lies beyond the
    planned seeds, so rerunning with a smaller ``--limit`` never deletes rows already written.
    """
    if previous is None:
        return {}
    planned = {chunk.index: chunk.seed_range for chunk in chunks}

    def fits(shard: ShardEntry) -> bool:
        start, end = shard.seed_range
        want = planned.get(shard.index)
        return want is None or (want[0] == start and want[1] <= end)

    return {shard.index: shard for shard in writer.verified(s for s in previous.shards if fits(s))}


def _accepted_outputs(out: Path, config: GenerateConfig, done: list[ShardEntry]) -> SeenOutputs:
    """Normalised sentences of rows already written, so resumed runs keep rejecting duplicates."""
    import pyarrow.parquet as pq

    fields = list(get_task(config.task).fields)
    seen = SeenOutputs()  # digests, not strings: memory stays flat over long runs (bench/memory.py)
    for shard in done:
        table = pq.read_table(out / shard.data.path, columns=fields)
        for name in fields:
            seen.update(normalise(text) for text in table.column(name).to_pylist())
    return seen


@dataclass(frozen=True)
class PreparedChunk:
    """A chunk split into seed rejects (no LLM call) and the rendered requests of its usable seeds."""

    chunk: Chunk
    usable: tuple[Seed, ...]
    seed_rejects: tuple[dict, ...]
    requests: tuple[GenerationRequest, ...]


def _prepare_chunk(
    chunk: Chunk, seeds: tuple[Seed, ...], templates, config: GenerateConfig, ctx: RunContext, duplicate_seeds: frozenset[int]
) -> PreparedChunk:
    usable: list[Seed] = []
    rejects: list[dict] = []
    for seed in seeds:
        reason = seed.problem or ("duplicate_anchor" if seed.index in duplicate_seeds else None)
        if reason:
            rejects.append(reject_unusable_seed(seed, reason, ctx))
        else:
            usable.append(seed)
    requests = render_requests(templates, config.task, config.mode, [(str(s.index), s.text) for s in usable])
    return PreparedChunk(chunk, tuple(usable), tuple(rejects), tuple(requests))


def _completed_chunks(engine: Engine, prepared: Iterable[PreparedChunk]) -> Iterator[tuple[PreparedChunk, list[Completion]]]:
    """Pair each chunk with its completions, in the order chunks finish.

    Every engine is streamed (``stream_batches``): a ``StreamingEngine`` gets one stream of all chunks, so it
    can queue the next chunk before the current one drains (vllm) or start its replicas once per run (ray);
    a plain engine gets one ``generate`` per chunk. Chunks are pulled lazily, so only the chunks an engine
    holds are in memory (the ray engine reads all of them up front; see its module docstring).
    """
    in_flight: dict[int, PreparedChunk] = {}

    def requests() -> Iterator[tuple[GenerationRequest, ...]]:
        for position, item in enumerate(prepared):
            in_flight[position] = item
            yield item.requests

    for position, completions in stream_batches(engine, requests()):
        yield in_flight.pop(position), completions


def _validate_chunk(
    prepared: PreparedChunk,
    completions: list[Completion],
    templates,
    config: GenerateConfig,
    ctx: RunContext,
    seen_outputs: set[str],
) -> ShardResult:
    result = ShardResult()
    result.rejects.extend(prepared.seed_rejects)
    completions = _group_completions(completions)
    for seed in prepared.usable:
        per_template = {name: completions[f"{seed.index}/{name}"] for name in templates}
        validate_seed(seed, per_template, config, ctx, seen_outputs, result)
    result.rows.sort(key=lambda row: (row["seed_index"], row["sample_index"]))
    result.rejects.sort(key=lambda row: (row["seed_index"], row["sample_index"]))
    return result


def _group_completions(completions: list[Completion]) -> dict[str, list[Completion]]:
    grouped: dict[str, list[Completion]] = {}
    for completion in completions:
        grouped.setdefault(completion.request_id, []).append(completion)
    for items in grouped.values():
        items.sort(key=lambda c: c.sample_index)
    return grouped


__all__ = ["generate", "RunSummary", "plan_chunks", "scan_seeds", "run_fingerprint"]
