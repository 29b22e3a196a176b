"""Judge completions and turn each (seed, sample) into a row or a reject.

Every seed ends here as either a data row or a reject carrying the raw LLM text
and a reason code, so nothing the LLM produced is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
from pydantic import ValidationError

from datagen.config import GenerateConfig
from datagen.engines.base import Completion
from datagen.generation.parse import Parsed, parse_json_object, parse_sentence
from datagen.dataset.seeds import Seed
from datagen.dataset.sentence_shape import SEED_SHAPE_REASONS
from datagen.tasks import all_tasks, get_task
from datagen.tasks.checks import Record, first_failure, looks_like_refusal, normalise


# Every reason code a reject can carry, by stage. Tests hold every outcome to this set.
PARSE_REASONS = frozenset({"empty", "multiple_lines", "unparseable_json", "wrong_keys", "wrong_value_type", "bad_characters"})
RECORD_REASONS = frozenset({
    "empty", "too_short", "too_long", "bad_characters", "refusal", "meta_text", "no_words", "repetition",
    "wrong_language", "copies_anchor", "copies_other_output", "adds_content", "not_one_substitution",
    "drops_detail", "adds_detail", "only_deletes", "fragment", "drops_hedge", "changes_tense", "invents_birth",
    "rewords_too_much", "says_less", "leaves_nothing_out",
}).union(*(spec.reasons for spec in all_tasks()))
ROW_REASONS = frozenset({"engine_error", "truncated", "duplicate_output"})
SEED_REASONS = frozenset({
    "seed_empty", "seed_has_nul", "seed_bad_characters", "seed_too_long", "seed_not_text", "seed_bad_json",
    "seed_missing_field", "duplicate_anchor", *SEED_SHAPE_REASONS,
})
REJECT_REASONS = PARSE_REASONS | RECORD_REASONS | ROW_REASONS | SEED_REASONS


@dataclass(frozen=True)
class RunContext:
    """What every row of a run shares (provenance columns)."""

    task: str
    mode: str
    model: str
    template_sha: str


class SeenOutputs:
    """Normalised outputs already accepted in a run, kept as 8-byte digests (a set-like for ``validate_seed``).

    Duplicate checks need every accepted sentence of the run. As Python strings that is ~150 bytes per
    output (45 MB at 100k STS rows, measured with bench/memory.py); here it is 8 bytes in a sorted array
    plus a small set of recent digests. Two different sentences share a 64-bit digest with probability
    ~n²/2^65 (1e-7 at 3M outputs); the cost would be one good row rejected as ``duplicate_output``.
    """

    _FLUSH = 1 << 13  # recent digests kept in a Python set before merging into the sorted array

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._recent: set[int] = set()
        self.update(texts)

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        key = text_digest(text)
        if key in self._recent:
            return True
        position = int(np.searchsorted(self._sorted, np.uint64(key)))
        return position < len(self._sorted) and int(self._sorted[position]) == key

    def update(self, texts: Iterable[str]) -> None:
        self._recent.update(text_digest(text) for text in texts)
        if len(self._recent) >= self._FLUSH:
            recent = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
            self._sorted, self._recent = _merge_unique(self._sorted, recent), set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)


def _merge_unique(sorted_keys: np.ndarray, new_keys: np.ndarray) -> np.ndarray:
    """The sorted union of a sorted, duplicate-free array and some new keys.

    Not ``np.union1d``: its hash-based unique left ~70 bytes of resident memory per key behind here
    (bench/memory.py: +16% peak RSS at 100k rows). A stable sort of two sorted runs is a linear merge.
    """
    merged = np.concatenate([sorted_keys, np.sort(new_keys)])
    merged.sort(kind="stable")
    if len(merged) < 2:
        return merged
    return merged[np.concatenate(([True], merged[1:] != merged[:-1]))]


def text_digest(text: str) -> int:
    """A 64-bit digest of ``text``: at 100k texts the chance of any collision is about 3e-10."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class ShardResult:
    rows: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)


def row_id(task: str, anchor: str, template_sha: str, sample_index: int) -> str:
    """Stable id: the same seed, templates and sample always give the same id."""
    key = "\x1f".join([task, anchor, template_sha, str(sample_index)])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def reject_unusable_seed(seed: Seed, reason: str, ctx: RunContext) -> dict:
    """A reject for a seed that never reaches the LLM (bad row, duplicate)."""
    return _reject(ctx, seed, 0, stage="seed", reason=reason, raw={}, finish_reason=None)


def validate_seed(
    seed: Seed,
    completions: dict[str, list[Completion]],
    config: GenerateConfig,
    ctx: RunContext,
    seen_outputs: SeenOutputs | set[str],
    result: ShardResult,
) -> None:
    """Validate every sample of one seed; append rows or rejects to ``result``.

    Args:
        completions: Template name -> completions for this seed, ordered by sample index.
        seen_outputs: Normalised sentences already accepted in this run; updated in place.
    """
    spec = get_task(config.task)
    fields = spec.fields
    for sample_index in range(config.sampling.n):
        samples = {name: items[sample_index] for name, items in completions.items()}
        raw = {name: c.text for name, c in samples.items()}
        outcome = _validate_sample(seed, samples, config, spec.record)
        if isinstance(outcome, tuple):
            stage, reason, finish = outcome
            result.rejects.append(_reject(ctx, seed, sample_index, stage, reason, raw, finish))
            continue
        normalised = [normalise(outcome[name]) for name in fields]
        if any(text in seen_outputs for text in normalised):
            result.rejects.append(_reject(ctx, seed, sample_index, "row", "duplicate_output", raw, "stop"))
            continue
        seen_outputs.update(normalised)
        result.rows.append(_row(ctx, seed, sample_index, outcome, samples))


def _validate_sample(seed: Seed, samples: dict[str, Completion], config: GenerateConfig, record_type: type[Record]):
    """Return the validated output fields, or ``(stage, reason, finish_reason)``."""
    fields = record_type.output_fields()
    values: dict[str, str] = {}
    for name, completion in samples.items():
        if completion.error:
            return name, "engine_error", completion.finish_reason
        if completion.finish_reason == "length":
            return name, "truncated", completion.finish_reason
        text = completion.text or ""
        parsed: Parsed = parse_json_object(text, fields) if name == "joint" else parse_sentence(text, name)
        if not parsed.ok:
            # "I'm sorry, I can't ..." instead of JSON (or over several lines) is a refusal, not a format slip.
            reason = "refusal" if looks_like_refusal(text, seed.text) else parsed.reason
            return name, reason, completion.finish_reason
        values.update(parsed.values)
    try:
        record = record_type.model_validate({"anchor": seed.text, **values}, context=config.validation)
    except ValidationError as exc:
        stage, reason, _ = first_failure(exc)
        return stage, reason, "stop"
    return record.outputs()


def raw_json(raw: dict) -> str:
    """The LLM's texts as JSON, readable where possible; lone surrogates (not writable as UTF-8) are escaped."""
    text = json.dumps(raw, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(raw)  # \udcxx escapes: still valid JSON that loads back to the same strings
    return text


def _row(ctx: RunContext, seed: Seed, sample_index: int, outputs: dict[str, str], samples: dict[str, Completion]) -> dict:
    return {
        "id": row_id(ctx.task, seed.text, ctx.template_sha, sample_index),
        "anchor": seed.text,
        **outputs,
        "model": ctx.model,
        "template_sha": ctx.template_sha,
        "mode": ctx.mode,
        "seed_index": seed.index,
        "sample_index": sample_index,
        "prompt_tokens": sum(c.prompt_tokens for c in samples.values()),
        "completion_tokens": sum(c.completion_tokens for c in samples.values()),
    }


def _reject(
    ctx: RunContext, seed: Seed, sample_index: int, stage: str, reason: str, raw: dict, finish_reason: str | None
) -> dict:
    return {
        "id": row_id(ctx.task, seed.text, ctx.template_sha, sample_index),
        "anchor": seed.text,
        "stage": stage,
        "reason": reason,
        "raw": raw_json(raw),
        "finish_reason": finish_reason,
        "model": ctx.model,
        "template_sha": ctx.template_sha,
        "mode": ctx.mode,
        "seed_index": seed.index,
        "sample_index": sample_index,
    }
