"""Stage: score a generated dataset before any training (``datagen score``).

Sits after ``shards`` (it reads a finished output directory) and before ``train``. It embeds every
distinct sentence once with a reference encoder (default all-MiniLM-L6-v2) and writes:

- per row, a sidecar ``OUT/scores/part-<i>.parquet`` keyed by ``id`` (one per data shard, same row
  order; the data shards are never rewritten): the anchor's cosine with each generated sentence,
  whether the tier order holds and by what margin, and a lexical overlap per (anchor, output) pair;
- per dataset, a ``scores`` key in ``OUT/manifest.json`` (also returned): acceptance, reject reasons,
  tier consistency, margin quantiles, diversity, and a training-free difficulty (see
  :func:`static_difficulty`).

Rescoring replaces the sidecar as a whole (written beside it, then swapped in) and the manifest
records the sha256 of every sidecar file and of the data shards it was computed from, so a reader
(``datagen filter``) can tell a current score from a stale or half-replaced one.
"""

from __future__ import annotations

import difflib
import functools
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from datagen.encoders import DEFAULT_ENCODER, load_encoder
from datagen.errors import InputError
from datagen.evaluate.measures import alignment, cosine_rows, encode_unique, uniformity
from datagen.dataset.manifest import Manifest, read_manifest
from datagen.dataset.shards import read_rows
from datagen.dataset.writer import DatasetWriter
from datagen.evaluate.sts_data import default_data_dir, load_stsb
from datagen.tasks import TaskSpec, get_task

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SCORES = "scores"
SCORE_FORMAT_VERSION = 1
NEAR_DUPLICATE_COSINE = 0.95  # two generated sentences this close (reference encoder) say the same thing
UNIFORMITY_SENTENCES = 1000  # method.md §4: uniformity on the first 1,000 (flattened) sentences
ALIGNMENT_ROWS = 1000  # method.md §4: 1,000 anchors
QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


# --- pure lexical helpers ------------------------------------------------------------------------------------------

def tokens(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens (``"Isn't"`` -> ``["isn", "'", "t"]``)."""
    return _TOKEN.findall(text.lower())


def token_jaccard(left: str, right: str) -> float:
    """|A ∩ B| / |A ∪ B| over the two sentences' token *sets*; 1.0 for two empty strings."""
    a, b = set(tokens(left)), set(tokens(right))
    return len(a & b) / len(a | b) if a | b else 1.0


def edit_ratio(left: str, right: str) -> float:
    """Token-level similarity 2·M / (|A| + |B|) (difflib), M = tokens in matching blocks, order kept.

    Inserting one word into a 7-token sentence gives 14/15 ≈ 0.93: the measure that exposes a
    contradiction made only by adding "not".
    """
    a, b = tokens(left), tokens(right)
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(a=a, b=b, autojunk=False).ratio()


def distinct_n(sentences: Sequence[str], n: int) -> float:
    """Distinct n-grams / all n-grams over ``sentences`` (Li et al. 2016); 0.0 when there is none."""
    grams = [tuple(words[i : i + n]) for words in map(tokens, sentences) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def quantiles(values: np.ndarray) -> dict[str, float | None]:
    """mean, min, p05..p95, max of ``values`` rounded to 4 places (all None when empty)."""
    keys = ["mean", "min", *QUANTILES, "max"]
    if len(values) == 0:
        return dict.fromkeys(keys)
    stats = {"mean": float(np.mean(values)), "min": float(np.min(values))}
    stats |= {name: float(np.quantile(values, q)) for name, q in QUANTILES.items()}
    stats["max"] = float(np.max(values))
    return {key: round(value, 4) for key, value in stats.items()}


# --- per-row scores ----------------------------------------------------------------------------------------------

def margin_names(task: str) -> list[str]:
    """Consecutive tier margins: ``margin_pos_int``, ``margin_int_neg`` (sts), ``margin_ent_con`` (nli); none
    for a task with one output (pairs)."""
    spec = get_task(task)
    return [f"margin_{spec.short(a)}_{spec.short(b)}" for a, b in zip(spec.fields, spec.fields[1:])]


def score_rows(task: str, rows: dict[str, list[str]], embeddings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-row columns for one table of rows.

    Args:
        task: A registered task; its output fields are in tier order (most to least similar).
        rows: Column name -> texts (``anchor`` and the task's output fields).
        embeddings: Sentence -> embedding, covering every text in ``rows``.

    Returns:
        ``cos_<t>`` per output; ``jaccard_<t>`` and ``edit_<t>`` of (anchor, output); ``overlap`` = the largest
        ``edit_<t>`` of the row. Tasks with two or more outputs also get ``margin_<a>_<b>`` = cos_a - cos_b for
        consecutive tiers, ``margin`` = the smallest of them and ``tier_ok`` = margin > 0 (cos_pos > cos_int >
        cos_neg, or cos_ent > cos_con).
    """
    spec = get_task(task)
    anchors = np.stack([embeddings[text] for text in rows["anchor"]])  # (n, dim)
    columns: dict[str, np.ndarray] = {}
    for field in spec.fields:
        outputs = np.stack([embeddings[text] for text in rows[field]])  # (n, dim)
        columns[f"cos_{spec.short(field)}"] = cosine_rows(anchors, outputs).astype(np.float64)
    margins = []
    for name, (upper, lower) in zip(margin_names(task), zip(spec.fields, spec.fields[1:])):
        columns[name] = columns[f"cos_{spec.short(upper)}"] - columns[f"cos_{spec.short(lower)}"]
        margins.append(columns[name])
    if margins:
        columns["margin"] = np.min(np.stack(margins), axis=0)
        columns["tier_ok"] = columns["margin"] > 0
    for field in spec.fields:
        pairs = list(zip(rows["anchor"], rows[field]))
        columns[f"jaccard_{spec.short(field)}"] = np.array([token_jaccard(a, b) for a, b in pairs])
        columns[f"edit_{spec.short(field)}"] = np.array([edit_ratio(a, b) for a, b in pairs])
    columns["overlap"] = np.max(np.stack([columns[f"edit_{spec.short(f)}"] for f in spec.fields]), axis=0)
    return columns


def has_tiers(task: str) -> bool:
    """Whether rows of ``task`` have a tier order (two or more outputs)."""
    return len(get_task(task).fields) > 1


def scores_schema(task: str) -> pa.Schema:
    """Columns of a sidecar ``scores/part-*.parquet``: id, then the columns of :func:`score_rows`."""
    spec = get_task(task)
    shorts = [spec.short(f) for f in spec.fields]
    columns = [("id", pa.string())] + [(f"cos_{s}", pa.float64()) for s in shorts]
    columns += [(name, pa.float64()) for name in margin_names(task)]
    if has_tiers(task):
        columns += [("margin", pa.float64()), ("tier_ok", pa.bool_())]
    columns += [(f"{kind}_{s}", pa.float64()) for kind in ("jaccard", "edit") for s in shorts]
    columns += [("overlap", pa.float64())]
    return pa.schema(columns)


# --- dataset-level measures ----------------------------------------------------------------------------------------

def near_duplicate_rate(vectors: np.ndarray, groups: np.ndarray, *, threshold: float = NEAR_DUPLICATE_COSINE,
                        block: int = 1024) -> float:
    """Share of sentences whose most similar sentence *from another row* has cosine >= ``threshold``.

    Args:
        vectors: (m, dim) embeddings of the generated sentences (one per row and output field).
        groups: (m,) row index of each sentence; sentences of the same row are not compared.
    """
    if len(vectors) < 2:
        return 0.0
    unit = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)  # (m, dim)
    hits = 0
    for start in range(0, len(unit), block):
        sims = unit[start : start + block] @ unit.T  # (b, m)
        sims[groups[start : start + block, None] == groups[None, :]] = -np.inf
        hits += int(np.count_nonzero(sims.max(axis=1) >= threshold))
    return hits / len(unit)


def training_pairs(task: str, rows: dict[str, list[str]]) -> tuple[list[str], list[str], list[str]]:
    """The sentences :func:`static_difficulty` measures on the generated side (method.md §4 "train").

    Returns:
        ``(anchors, positives, flattened)``: the first 1,000 rows' anchors and their InfoNCE positive as the
        training stage uses it (the task's ``positive``; sts: the **intermediate**, as the paper's code does), and the
        first 1,000 sentences of the rows flattened as the training stage flattens a row (anchor, InfoNCE
        positive, then the other outputs; repeats dropped).
    """
    spec = get_task(task)
    positive = spec.positive
    order = ["anchor", positive] + [f for f in spec.fields if f != positive]
    n = min(ALIGNMENT_ROWS, len(rows["anchor"]))
    flattened: list[str] = []
    for i in range(len(rows["anchor"])):
        flattened += list(dict.fromkeys(rows[name][i] for name in order))
        if len(flattened) >= UNIFORMITY_SENTENCES:
            break
    return rows["anchor"][:n], rows[positive][:n], flattened[:UNIFORMITY_SENTENCES]


_STSB_CACHE: dict[tuple[str, str], dict] = {}


def stsb_dev_geometry(model: SentenceTransformer, data_dir: Path) -> dict:
    """Alignment and uniformity of STS-B dev under ``model`` (method.md §4 "eval").

    Alignment on the pairs with gold >= 4.0; uniformity on the first 1,000 sentences of the pairs with gold >= 4
    or <= 1, taken pair by pair (s1, s2, s1, s2, ...), as the training stage logs it. Cached per encoder
    (its weights' path) and data dir, since scoring several datasets measures the same dev set each time.
    """
    key = (_encoder_label(model), str(data_dir))
    if key not in _STSB_CACHE:
        pairs = load_stsb(data_dir, "dev")
        positive = np.flatnonzero(pairs.scores >= 4.0)
        extreme = np.flatnonzero((pairs.scores >= 4.0) | (pairs.scores <= 1.0))
        flattened = [s for i in extreme for s in (pairs.sentences1[i], pairs.sentences2[i])][:UNIFORMITY_SENTENCES]
        left = [pairs.sentences1[i] for i in positive]
        right = [pairs.sentences2[i] for i in positive]
        vectors = encode_unique(model, left + right + flattened)
        _STSB_CACHE[key] = {
            "alignment": round(alignment(_stack(vectors, left), _stack(vectors, right)), 4),
            "uniformity": round(uniformity(_stack(vectors, flattened)), 4),
            "pairs": int(len(positive)),
            "uniformity_sentences": len(flattened),
        }
    return _STSB_CACHE[key]


def static_difficulty(task: str, rows: dict[str, list[str]], vectors: dict[str, np.ndarray],
                      model: SentenceTransformer, data_dir: Path | None) -> dict:
    """Training-free difficulty: a static (step-0, base encoder) analogue of RFD (method.md §4).

    RFD averages ℓ(train, t) − ℓ(eval, t) over training checkpoints. Here there is no training: the same
    differences are taken once, under the untrained reference encoder.

    - generated ("train") side: ℓ_align over (anchor, InfoNCE positive) of the first 1,000 rows
      (sts: intermediate, nli: entailment; see :func:`training_pairs`); ℓ_uniform over the first 1,000
      flattened sentences of those rows;
    - STS-B dev ("eval") side: :func:`stsb_dev_geometry`;
    - ``delta_alignment`` = align(generated) − align(STS-B dev), ``delta_uniformity`` likewise.

    Positive ``delta_alignment``: the generated positives sit further from their anchors than STS-B's
    gold >= 4 pairs do, so the data asks the encoder for more than the benchmark rewards; the paper finds
    lower RFD (both terms) goes with better STS.
    """
    anchors, positives, flattened = training_pairs(task, rows)
    generated = {
        "alignment": round(alignment(_stack(vectors, anchors), _stack(vectors, positives)), 4),
        "uniformity": round(uniformity(_stack(vectors, flattened)), 4) if len(flattened) > 1 else None,
        "pairs": len(anchors),
        "uniformity_sentences": len(flattened),
    }
    result = {"generated": generated, "stsb_dev": None, "delta_alignment": None, "delta_uniformity": None}
    if data_dir is None:
        result["note"] = "STS-B dev not found; set $DATAGEN_DATA or pass data_dir for the eval side"
        return result
    dev = stsb_dev_geometry(model, data_dir)
    result["stsb_dev"] = dev
    result["delta_alignment"] = round(generated["alignment"] - dev["alignment"], 4)
    if generated["uniformity"] is not None:
        result["delta_uniformity"] = round(generated["uniformity"] - dev["uniformity"], 4)
    return result


def _stack(vectors: dict[str, np.ndarray], texts: Sequence[str]) -> np.ndarray:
    return np.stack([vectors[text] for text in texts])  # (n, dim)


# --- the stage ----------------------------------------------------------------------------------------------------

def open_scorable(out: Path) -> Manifest:
    """The manifest of a datagen output dir.

    Raises:
        InputError: no manifest (not a datagen output dir).
        StorageError: the manifest is unreadable.
    """
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is None:
        raise InputError(f"{out} is not a datagen output (no manifest.json); pass the --out of a datagen run "
                         "(datagen nli, sts, pairs or filter)")
    return manifest


def score_dataset(out: str | Path, *, encoder: str | SentenceTransformer = DEFAULT_ENCODER,
                  data_dir: str | Path | None = None, batch_size: int = 128) -> dict:
    """Score every row of ``out``, write the sidecar ``OUT/scores/`` and the manifest's ``scores`` key.

    Args:
        out: A ``datagen <task>`` output dir (or a ``datagen filter`` one).
        encoder: Registry name, folder or hub id, or an already loaded ``SentenceTransformer`` (benchmarks
            scoring many dirs load it once).
        data_dir: SentEval folder holding ``STS/STSBenchmark/sts-dev.csv``; default ``$DATAGEN_DATA`` or
            ``../shared/data/senteval_processed``. Missing data leaves the eval side of the difficulty empty.
        batch_size: Encoder batch size: larger is faster until memory runs short.

    Returns:
        The dataset summary stored under ``manifest["scores"]`` (see module docstring).

    Raises:
        InputError: ``out`` has no manifest, or it holds no rows.
        StorageError: a ``datagen`` run holds the dir's lock (still generating), or writing failed.
        ModelError: the encoder cannot be loaded.
    """
    out = Path(out)
    started = time.perf_counter()
    open_scorable(out)
    with DatasetWriter(out) as writer:  # refuses while a generation run is writing; keeps one from starting meanwhile
        manifest = open_scorable(out)
        writer.open_existing()
        task = manifest.task
        fields = ["anchor", *get_task(task).fields]
        shards = manifest.data_shards()
        if not shards:
            raise InputError(f"{out} holds no rows to score; generate some first (datagen {task} --out {out})")
        model = _load_encoder_cached(encoder) if isinstance(encoder, str) else encoder
        tables = [_read_shard(out, shard.data.path, fields) for shard in shards]
        texts = [text for table in tables for name in fields for text in table[name]]
        vectors = encode_unique(model, texts, batch_size=batch_size)
        encoded = time.perf_counter()
        per_shard = [score_rows(task, table, vectors) for table in tables]
        metadata = {"datagen.data_fingerprint": manifest.fingerprint, "datagen.scores_format": SCORE_FORMAT_VERSION}
        parts = ((shard.index, _sidecar_rows(table, columns)) for shard, table, columns in zip(shards, tables, per_shard))
        written = writer.replace_sidecar(SCORES, parts, scores_schema(task), metadata)
        everything = {name: [t for table in tables for t in table[name]] for name in ["id", *fields]}
        columns = {key: np.concatenate([part[key] for part in per_shard]) for key in per_shard[0]}
        summary = summarise(task, manifest, everything, columns, vectors)
        summary["difficulty"] = static_difficulty(task, everything, vectors, model,
                                                  _find_data_dir(data_dir))
        summary |= {
            "format_version": SCORE_FORMAT_VERSION,
            "encoder": encoder if isinstance(encoder, str) else _encoder_label(model),
            "data_status": manifest.status,
            "data_fingerprint": manifest.fingerprint,
            "data_shards": {shard.data.path: shard.data.sha256 for shard in shards},
            "files": [w.model_dump() for w in written],
            "unique_sentences": len(vectors),
            "seconds": {"encode": round(encoded - started, 2), "total": round(time.perf_counter() - started, 2)},
        }
        writer.set_section("scores", summary)
        writer.finalize(status=None)
    return summary


def summarise(task: str, manifest: Manifest, rows: dict[str, list[str]], columns: dict[str, np.ndarray],
              vectors: dict[str, np.ndarray]) -> dict:
    """Dataset-level figures from the per-row columns (everything but the difficulty)."""
    spec = get_task(task)
    fields = spec.fields
    counts = manifest.counts
    total = counts.rows + counts.rejects
    generated = [rows[f][i] for i in range(len(rows["anchor"])) for f in fields]
    groups = np.repeat(np.arange(len(rows["anchor"])), len(fields))
    return {
        "task": task,
        "rows": len(rows["anchor"]),
        "rejects": counts.rejects,
        "acceptance_rate": round(counts.rows / total, 4) if total else 0.0,
        "reject_reasons": counts.reject_reasons,
        # None for a task with one output: there is no tier order to hold.
        "tier_consistency_rate": round(float(np.mean(columns["tier_ok"])), 4) if "tier_ok" in columns else None,
        "cosines": {field: quantiles(columns[f"cos_{spec.short(field)}"]) for field in fields},
        "margins": {name: quantiles(columns[name]) for name in margin_names(task) + (["margin"] if "margin" in columns else [])},
        "overlap": {field: quantiles(columns[f"edit_{spec.short(field)}"]) | {
            "jaccard_mean": round(float(np.mean(columns[f"jaccard_{spec.short(field)}"])), 4)} for field in fields},
        "diversity": {
            "distinct_1": round(distinct_n(generated, 1), 4),
            "distinct_2": round(distinct_n(generated, 2), 4),
            "near_duplicate_rate": round(near_duplicate_rate(_stack(vectors, generated), groups), 4),
            "near_duplicate_cosine": NEAR_DUPLICATE_COSINE,
        },
    }


def read_scores(out: str | Path) -> pa.Table:
    """All sidecar score rows of ``out`` in data order.

    Raises:
        InputError: ``out`` has not been scored.
    """
    out = Path(out)
    if not (out / SCORES).is_dir():
        raise InputError(f"{out} has no scores; run `datagen score {out}` first")
    return read_rows(out, SCORES)


def _read_shard(out: Path, relative: str, fields: list[str]) -> dict[str, list[str]]:
    import pyarrow.parquet as pq

    table = pq.read_table(out / relative, columns=["id", *fields])
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _sidecar_rows(table: dict[str, list[str]], columns: dict[str, np.ndarray]) -> list[dict]:
    return [{"id": row_id} | {key: _plain(values[i]) for key, values in columns.items()}
            for i, row_id in enumerate(table["id"])]


@functools.lru_cache(maxsize=2)
def _load_encoder_cached(name: str) -> SentenceTransformer:
    """One load per encoder name per process (a Python caller scoring many dirs pays it once)."""
    return load_encoder(name)


def _encoder_label(model) -> str:
    tokenizer = getattr(model, "tokenizer", None)
    return str(getattr(tokenizer, "name_or_path", "") or type(model).__name__)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _find_data_dir(data_dir: str | Path | None) -> Path | None:
    path = Path(data_dir) if data_dir else default_data_dir()
    return path if (path / "STS" / "STSBenchmark" / "sts-dev.csv").is_file() else None
