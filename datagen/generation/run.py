"""The generation run: seeds → render → generate → parse/validate → shards, resumable.

``generate`` is the library entry point behind ``datagen <task>`` (nli, sts, pairs, ...).
Work is cut into chunks of ``shard_rows`` seeds; each chunk becomes one data
shard and one rejects shard, journaled by the ``DatasetWriter`` as soon as both are in place.

A rerun keeps every shard whose files check out and whose own seeds are unchanged (each shard records the
sha256 of its seed range), and generates only the seeds no kept shard covers. So a seed file that grows
generates only the new seeds, an edited line regenerates only its shard, and a truncated file drops the
shards past its end. A change of config (task, model, templates, sampling, validation, shard size) is
refused unless ``--overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import time
from array import array
from collections import Counter
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
from datagen.dataset.sentence_shape import seed_shape_problem
from datagen.dataset.manifest import Manifest, ShardEntry
from datagen.dataset.writer import DatasetWriter
from datagen.tasks import get_task
from datagen.generation.status import RunStatus, status_reporter
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
    resume_note: str = ""  # what a rerun kept, regenerated or dropped, and why; empty on a fresh run


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
    fingerprint the seeds and every seed range, and spot repeated anchors, without keeping the seeds."""

    path: Path
    column: str
    count: int
    sha256: str  # equals fingerprint([every seed's text]), hashed as the file streams by
    duplicates: frozenset[int]  # indexes whose normalised text appeared earlier in the file
    seed_digests: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, dtype=np.uint64))

    def range_sha256(self, start: int, stop: int) -> str | None:
        """The identity of seeds ``[start, stop)`` as a shard made from them saw them: exact texts, unusable
        rows and which of them repeat an earlier anchor. None when the file has fewer seeds than ``stop``."""
        if stop > self.count:
            return None
        hasher = hashlib.sha256(self.seed_digests[start:stop].tobytes())
        hasher.update(json.dumps(sorted(i - start for i in self.duplicates if start <= i < stop)).encode())
        return hasher.hexdigest()


def generate(
    config: GenerateConfig,
    seeds_path: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    engine_factory: EngineFactory | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
    on_status: Callable[[RunStatus], None] | None = None,
) -> RunSummary:
    """Generate a dataset into ``out``, resuming whatever an earlier run left.

    Args:
        config: Task, mode, model, engine, sampling and validation settings.
        seeds_path: Seed file (.txt, .jsonl, .parquet).
        out: Output directory; created if missing.
        overwrite: Delete an existing run with a different config instead of refusing.
        engine_factory: Builds the engine; defaults to the engine registry's ``build_engine`` (tests inject fakes).
        on_progress: Called after each chunk with (seeds done, seeds total, completion tokens).
        on_status: Called with a ``RunStatus`` (shards, seeds, rows, rejects) once the plan is known, before
            the engine starts, and after each chunk: what a progress display shows.

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
    with DatasetWriter(out) as writer:
        plan = plan_resume(_open_previous(writer, manifest, overwrite), writer, scan, total, config.shard_rows)
        pending = plan.pending
        summary.shards_skipped = len(plan.keep)
        summary.already_complete = not pending and not plan.dropped
        summary.resume_note = plan.note()
        writer.begin(manifest, keep=plan.keep)
        if pending:
            progress = status_reporter(writer, len(pending), total, on_progress, on_status)
            engine = (engine_factory or _default_engine_factory)(config, model)
            try:
                _generate_chunks(writer, pending, engine, templates, config, scan, total, summary, progress)
            finally:
                engine.close()
        counts = writer.finalize()
    summary.rows, summary.rejects, summary.reject_reasons = counts.rows, counts.rejects, counts.reject_reasons
    summary.seconds = time.perf_counter() - started
    return summary


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
        writer.write_shard(item.chunk.index, item.chunk.seed_range, result.rows, result.rejects,
                           seeds_sha256=scan.range_sha256(*item.chunk.seed_range))
        summary.shards_written += 1
        summary.completion_tokens += sum(row["completion_tokens"] for row in result.rows)
        if on_progress:
            on_progress(writer.seeds_done(), total, summary.completion_tokens)


def plan_chunks(count: int, shard_rows: int) -> list[Chunk]:
    """Cut the first ``count`` seeds into consecutive chunks of ``shard_rows``; chunk i becomes shard i."""
    return [Chunk(i // shard_rows, i, min(i + shard_rows, count)) for i in range(0, count, shard_rows)]


@dataclass
class ResumePlan:
    """Which shards of an earlier run stay, which go (and why), and the chunks left to generate."""

    keep: list[ShardEntry] = field(default_factory=list)
    pending: list[Chunk] = field(default_factory=list)
    dropped: list[tuple[ShardEntry, str]] = field(default_factory=list)  # (shard, why), for the summary
    seed_count: int = 0
    resumed: bool = False  # an earlier run of this config was there

    def note(self) -> str:
        """One line for the summary: what was kept, regenerated or dropped, and why."""
        if not self.resumed:
            return ""
        kept_seeds = sum(stop - start for start, stop in (s.seed_range for s in self.keep))
        parts = [f"kept {len(self.keep)} shards ({kept_seeds} seeds) whose seeds are unchanged"]
        why = Counter(reason for _, reason in self.dropped)
        parts += [f"dropped {count} shards: {reason}" for reason, count in why.items()]
        regenerated = {s.seed_range[0] for s, _ in self.dropped}
        again = [c for c in self.pending if c.start in regenerated]
        if again:
            parts.append(f"regenerating {sum(c.stop - c.start for c in again)} seeds of changed or damaged shards")
        new = sum(c.stop - c.start for c in self.pending if c.start not in regenerated)
        if new:
            parts.append(f"generating {new} seeds no shard covered")
        return "; ".join(parts)


def plan_resume(previous: Manifest | None, writer: DatasetWriter, scan: SeedScan, total: int, shard_rows: int) -> ResumePlan:
    """Keep the earlier run's shards that still hold, and cut every seed in ``[0, total)`` they leave
    uncovered into chunks of ``shard_rows``.

    A shard holds when its files check out and the sha256 of its seed range is what the file gives now.
    Shards past ``total`` that hold are kept, so a smaller ``--limit`` never deletes rows already written.
    A regenerated range takes back the index of the shard it replaces, and new ranges take indexes after
    every earlier one, so the shards' order stays the seeds' order in the usual cases (append, edit, truncate).
    """
    plan = ResumePlan(seed_count=scan.count, resumed=previous is not None)
    earlier = previous.shards if previous else []
    intact = {shard.index for shard in writer.verified(earlier)}
    for shard in earlier:
        reason = _why_shard_goes(shard, shard.index in intact, scan)
        if reason:
            plan.dropped.append((shard, reason))
        else:
            plan.keep.append(shard)
    reusable = {shard.seed_range[0]: shard.index for shard, _ in plan.dropped}
    next_index = max((shard.index for shard in earlier), default=-1) + 1
    for start, stop in _uncovered(total, [shard.seed_range for shard in plan.keep], shard_rows):
        index = reusable.pop(start, None)
        if index is None:
            index, next_index = next_index, next_index + 1
        plan.pending.append(Chunk(index, start, stop))
    return plan


def _why_shard_goes(shard: ShardEntry, intact: bool, scan: SeedScan) -> str | None:
    start, stop = shard.seed_range
    if stop > scan.count:
        return f"past the end of the seed file (now {scan.count} seeds)"
    if not intact:
        return "files missing or damaged"
    if shard.seeds_sha256 != scan.range_sha256(start, stop):
        return "their seeds changed"
    return None


def _uncovered(total: int, covered: list[tuple[int, int]], shard_rows: int) -> list[tuple[int, int]]:
    """The seed ranges in ``[0, total)`` outside ``covered``, each cut into pieces of at most ``shard_rows``."""
    pieces, position = [], 0
    for start, stop in sorted(covered) + [(total, total)]:
        gap_stop = min(start, total)
        pieces += [(i, min(i + shard_rows, gap_stop)) for i in range(position, gap_stop, shard_rows)]
        position = max(position, stop)
    return pieces


def scan_seeds(path: str | Path, *, column: str = "text") -> SeedScan:
    """One streaming pass over the seed file: count, fingerprint and repeated anchors.

    Raises:
        InputError: the file cannot be used (see ``datagen.dataset.seeds.iter_seeds``).
    """
    encode = json.JSONEncoder(separators=(",", ":")).encode  # the bytes fingerprint() would hash
    hasher = hashlib.sha256(b"[")
    digests = array("Q")  # 8 bytes per seed instead of the normalised text
    exact = array("Q")  # the seed as a prompt sees it, for the per-shard seed hashes
    for seed in iter_seeds(path, column=column):
        hasher.update(("," if digests else "").encode() + encode(seed.text).encode())
        digests.append(text_digest(normalise(seed.text)))
        exact.append(text_digest(f"{seed.problem or ''}\x00{seed.text}"))
    hasher.update(b"]")
    keys = np.frombuffer(digests, dtype=np.uint64) if digests else np.empty(0, dtype=np.uint64)
    _, first = np.unique(keys, return_index=True)
    repeated = np.setdiff1d(np.arange(len(keys)), first, assume_unique=True)
    seed_digests = np.frombuffer(exact, dtype=np.uint64) if exact else np.empty(0, dtype=np.uint64)
    return SeedScan(Path(path), column, len(keys), hasher.hexdigest(), frozenset(repeated.tolist()), seed_digests)


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


def run_fingerprint(config: GenerateConfig, model_sha: str | None, template_sha: str) -> str:
    """What decides whether an output directory may be resumed: any setting that changes the rows.

    The seeds are not in it: each shard carries the hash of its own seed range (``ShardEntry.seeds_sha256``),
    so a seed file may grow, shrink or change and a rerun keeps the shards whose seeds still hold.
    """
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
        }
    )


def _default_engine_factory(config: GenerateConfig, model) -> Engine:
    return build_engine(config, model)


def _new_manifest(config: GenerateConfig, model, templates, scan: SeedScan, seeds_path) -> Manifest:
    template_sha = templates_sha256(templates)
    return Manifest(
        task=config.task,
        fingerprint=run_fingerprint(config, model.sha256, template_sha),
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
            "shard size); pass --overwrite to replace it or choose another --out"
        )
    writer.clear()
    return None


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
        if reason is None and config.validation.sentence_seeds:
            reason = seed_shape_problem(seed.text)
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
