"""Stage: keep the rows of a scored dataset that pass score thresholds (``datagen filter``).

Reads ``OUT`` (data shards + the sidecar ``OUT/scores/`` written by ``datagen score``) and writes a new
dataset ``OUT2`` with the same contract as a generation run: ``data/`` shards (the kept rows, unchanged),
``rejects/`` shards (the parent's rejects plus one reject per filtered row, reason ``filtered_*``, stage
``filter``) and a manifest that records the parent's path and fingerprint and the filter. ``datagen
inspect``, ``datagen export`` and ``datagen train`` read ``OUT2`` like any other output.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from datagen.config import fingerprint
from datagen.dataset.manifest import Manifest, ShardEntry
from datagen.dataset.shards import output_lock, verify_file
from datagen.dataset.writer import DatasetWriter
from datagen.errors import InputError, ResumeError
from datagen.quality.score import SCORES, open_scorable
from datagen.tasks import get_task

REASONS = ("filtered_tier_order", "filtered_margin", "filtered_overlap")


@dataclass(frozen=True)
class FilterSpec:
    """Which rows to drop. A row failing several tests gets the first reason, in this order.

    Args:
        require_tier_order: drop rows where the tier order does not hold under the reference encoder
            (``tier_ok`` false: cos_pos > cos_int > cos_neg, or cos_ent > cos_con, fails).
        min_margin: drop rows whose smallest tier margin (``margin``) is below this cosine difference;
            e.g. 0.05 keeps only rows whose tiers are clearly apart.
        max_overlap: drop rows where any output's token edit ratio with the anchor (``overlap``) is above
            this; e.g. 0.9 drops "not"-insertion contradictions and near-copies.
    """

    require_tier_order: bool = False
    min_margin: float | None = None
    max_overlap: float | None = None


@dataclass(frozen=True)
class FilterSummary:
    out: Path
    kept: int
    filtered: dict[str, int]  # reason -> rows
    parent_rows: int


def filter_reason(scores: dict, spec: FilterSpec) -> str | None:
    """The ``filtered_*`` reason a scored row fails, or None if it is kept."""
    if spec.require_tier_order and not scores["tier_ok"]:
        return "filtered_tier_order"
    if spec.min_margin is not None and scores["margin"] < spec.min_margin:
        return "filtered_margin"
    if spec.max_overlap is not None and scores["overlap"] > spec.max_overlap:
        return "filtered_overlap"
    return None


def check_scores_current(out: Path, manifest: Manifest) -> dict:
    """The manifest's ``scores`` entry, if it describes the data shards as they are now.

    Raises:
        InputError: never scored, or scored before the data changed, or the sidecar files do not match.
    """
    scores = manifest.section("scores")
    if not scores:
        raise InputError(f"{out} is not scored; run `datagen score {out}` first")
    current = {s.data.path: s.data.sha256 for s in manifest.data_shards()}
    stale = scores.get("data_shards") != current or scores.get("data_fingerprint") != manifest.fingerprint
    if stale or not all(verify_file(out, written) for written in scores.get("files", [])):
        raise InputError(f"the scores of {out} do not match its data (changed or rescored meanwhile); "
                         f"run `datagen score {out}` again")
    return scores


def filter_dataset(out: str | Path, dest: str | Path, spec: FilterSpec, *, overwrite: bool = False) -> FilterSummary:
    """Write the rows of ``out`` that pass ``spec`` as a new dataset ``dest``.

    Raises:
        InputError: ``out`` is not a scored datagen output, ``dest`` is ``out``, or ``spec`` asks for a
            tier order of a task with one output.
        ResumeError: ``dest`` already holds a dataset and ``overwrite`` is false.
        StorageError: a lock is held or writing failed.
    """
    out, dest = Path(out), Path(dest)
    if dest.resolve() == out.resolve():
        raise InputError(f"--out {dest} is the scored dataset itself; choose a new directory")
    parent = open_scorable(out)
    with output_lock(out), DatasetWriter(dest) as writer:
        parent = open_scorable(out)
        check_filter_applies(parent.task, spec)
        scores = check_scores_current(out, parent)
        _clear_dest(writer, overwrite)
        manifest = _child_manifest(out, parent, scores, spec)
        writer.begin(manifest, metadata={"datagen.parent": manifest.section("parent"),
                                         "datagen.filter": manifest.section("filter")})
        filtered: dict[str, int] = {}
        for shard in parent.shards:
            rows, rejects = _filter_shard(out, shard, parent.task, spec, filtered)
            writer.write_shard(shard.index, shard.seed_range, rows, rejects)
        counts = writer.finalize()
    return FilterSummary(dest, counts.rows, filtered, parent.counts.rows)


def check_filter_applies(task: str, spec: FilterSpec) -> None:
    """Refuse tier-order tests on a task with a single output (there is no order to hold).

    Raises:
        InputError: ``--require-tier-order`` or ``--min-margin`` on such a task.
    """
    if len(get_task(task).fields) < 2 and (spec.require_tier_order or spec.min_margin is not None):
        raise InputError(f"task '{task}' has one output, so rows have no tier order or margin; "
                         "drop --require-tier-order/--min-margin and filter by --max-overlap")


def _clear_dest(writer: DatasetWriter, overwrite: bool) -> None:
    if writer.existing() is not None or (writer.out / "data").exists():
        if not overwrite:
            raise ResumeError(f"{writer.out} already holds a dataset; pass --overwrite to replace it or choose "
                              "another --out")
        writer.clear(sidecars=(SCORES,))


def _child_manifest(out: Path, parent: Manifest, scores: dict, spec: FilterSpec) -> Manifest:
    inherited = parent.model_dump(exclude={"shards", "counts", "scores", "status"})
    return Manifest.model_validate(inherited | {
        "fingerprint": fingerprint({"parent": parent.fingerprint, "filter": asdict(spec),
                                    "scores": [f["sha256"] for f in scores["files"]]}),
        "parent": {"path": str(out.resolve()), "fingerprint": parent.fingerprint, "encoder": scores.get("encoder")},
        "filter": asdict(spec),
    })


def _filter_shard(out: Path, shard: ShardEntry, task: str, spec: FilterSpec,
                  filtered: dict[str, int]) -> tuple[list[dict], list[dict]]:
    """The kept rows of one parent shard, and its rejects plus one ``filtered_*`` reject per dropped row."""
    rows = pq.read_table(out / shard.data.path).to_pylist()
    rejects = pq.read_table(out / shard.rejects.path).to_pylist()
    score_rows = pq.read_table(out / SCORES / Path(shard.data.path).name).to_pylist() if rows else []
    if [r["id"] for r in rows] != [s["id"] for s in score_rows]:
        raise InputError(f"{out}/{SCORES} does not match {shard.data.path}; run `datagen score {out}` again")
    kept = []
    for row, scores in zip(rows, score_rows):
        reason = filter_reason(scores, spec)
        if reason is None:
            kept.append(row)
            continue
        filtered[reason] = filtered.get(reason, 0) + 1
        rejects.append(as_reject(row, reason, {k: v for k, v in scores.items() if k != "id"}, task))
    return kept, rejects


def as_reject(row: dict, reason: str, evidence: dict, task: str) -> dict:
    """A row dropped by a quality stage, as a reject: its outputs and the evidence that failed it in ``raw``."""
    fields = get_task(task).fields
    raw = {"outputs": {f: row[f] for f in fields}, "scores": evidence}
    return {"id": row["id"], "anchor": row["anchor"], "stage": "filter", "reason": reason,
            "raw": json.dumps(raw, ensure_ascii=False), "finish_reason": None,
            **{key: row[key] for key in ("model", "template_sha", "mode", "seed_index", "sample_index")}}
