"""Stage: keep the rows of a scored dataset that pass score thresholds (``datagen filter``).

Reads ``OUT`` (data shards + the sidecar ``OUT/scores/`` written by ``datagen score``) and writes a new
dataset ``OUT2`` with the same contract as a generation run: ``data/`` shards (the kept rows, unchanged),
``rejects/`` shards (the parent's rejects plus one reject per filtered row, reason ``filtered_*``, stage
``filter``) and a manifest that records the parent's path and fingerprint and the filter. ``datagen
inspect``, ``datagen export`` and ``datagen train`` read ``OUT2`` like any other output.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from datagen.config import fingerprint
from datagen.errors import InputError, ResumeError
from datagen.quality.score import SCORES, open_scorable
from datagen.dataset.shards import (
    data_schema,
    output_lock,
    read_manifest,
    rejects_schema,
    verify_file,
    write_manifest,
    write_shard,
)
from datagen.tasks import output_fields

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


def check_scores_current(out: Path, manifest: dict) -> dict:
    """The manifest's ``scores`` entry, if it describes the data shards as they are now.

    Raises:
        InputError: never scored, or scored before the data changed, or the sidecar files do not match.
    """
    scores = manifest.get("scores")
    if not scores:
        raise InputError(f"{out} is not scored; run `datagen score {out}` first")
    current = {s["data"]["path"]: s["data"]["sha256"] for s in manifest["shards"] if s["data"]["rows"] > 0}
    stale = scores.get("data_shards") != current or scores.get("data_fingerprint") != manifest["fingerprint"]
    if stale or not all(verify_file(out, written) for written in scores.get("files", [])):
        raise InputError(f"the scores of {out} do not match its data (changed or rescored meanwhile); "
                         f"run `datagen score {out}` again")
    return scores


def filter_dataset(out: str | Path, dest: str | Path, spec: FilterSpec, *, overwrite: bool = False) -> FilterSummary:
    """Write the rows of ``out`` that pass ``spec`` as a new dataset ``dest``.

    Raises:
        InputError: ``out`` is not a scored datagen output, or ``dest`` is ``out``.
        ResumeError: ``dest`` already holds a dataset and ``overwrite`` is false.
        StorageError: a lock is held or writing failed.
    """
    out, dest = Path(out), Path(dest)
    if dest.resolve() == out.resolve():
        raise InputError(f"--out {dest} is the scored dataset itself; choose a new directory")
    parent = open_scorable(out)
    with output_lock(out), output_lock(dest):
        parent = open_scorable(out)
        scores = check_scores_current(out, parent)
        _clear_dest(dest, overwrite)
        manifest = _child_manifest(out, parent, scores, spec)
        filtered: dict[str, int] = {}
        for shard in parent["shards"]:
            manifest["shards"].append(_filter_shard(out, dest, shard, parent, manifest, spec, filtered))
        manifest["counts"] = _counts(manifest["shards"])
        manifest["status"] = "complete"
        write_manifest(dest, manifest)
    kept = manifest["counts"]["rows"]
    return FilterSummary(dest, kept, filtered, parent["counts"].get("rows", 0))


def _clear_dest(dest: Path, overwrite: bool) -> None:
    if read_manifest(dest) is not None or (dest / "data").exists():
        if not overwrite:
            raise ResumeError(f"{dest} already holds a dataset; pass --overwrite to replace it or choose another --out")
        for kind in ("data", "rejects", SCORES):
            shutil.rmtree(dest / kind, ignore_errors=True)
        (dest / "manifest.json").unlink(missing_ok=True)


def _child_manifest(out: Path, parent: dict, scores: dict, spec: FilterSpec) -> dict:
    manifest = {key: value for key, value in parent.items() if key not in ("scores", "shards", "counts")}
    manifest["fingerprint"] = fingerprint({"parent": parent["fingerprint"], "filter": asdict(spec),
                                           "scores": [f["sha256"] for f in scores["files"]]})
    manifest["parent"] = {"path": str(out.resolve()), "fingerprint": parent["fingerprint"],
                          "encoder": scores.get("encoder")}
    manifest["filter"] = asdict(spec)
    manifest["status"] = "running"
    manifest["shards"] = []
    return manifest


def _filter_shard(out: Path, dest: Path, shard: dict, parent: dict, manifest: dict, spec: FilterSpec,
                  filtered: dict[str, int]) -> dict:
    task = parent["task"]
    rows = pq.read_table(out / shard["data"]["path"]).to_pylist()
    rejects = pq.read_table(out / shard["rejects"]["path"]).to_pylist()
    score_rows = pq.read_table(out / SCORES / Path(shard["data"]["path"]).name).to_pylist() if rows else []
    if [r["id"] for r in rows] != [s["id"] for s in score_rows]:
        raise InputError(f"{out}/{SCORES} does not match {shard['data']['path']}; run `datagen score {out}` again")
    kept = []
    for row, scores in zip(rows, score_rows):
        reason = filter_reason(scores, spec)
        if reason is None:
            kept.append(row)
            continue
        filtered[reason] = filtered.get(reason, 0) + 1
        rejects.append(_as_reject(row, reason, scores, task))
    metadata = {"datagen.fingerprint": manifest["fingerprint"], "datagen.config": manifest["config"],
                "datagen.parent": manifest["parent"], "datagen.filter": manifest["filter"]}
    written_rejects = write_shard(dest, "rejects", shard["index"], rejects, rejects_schema(), metadata)
    written_data = write_shard(dest, "data", shard["index"], kept, data_schema(task), metadata)
    reasons: dict[str, int] = {}
    for reject in rejects:
        reasons[reject["reason"]] = reasons.get(reject["reason"], 0) + 1
    return {"index": shard["index"], "seed_range": shard["seed_range"], "data": vars(written_data),
            "rejects": vars(written_rejects), "reject_reasons": reasons}


def _as_reject(row: dict, reason: str, scores: dict, task: str) -> dict:
    """A filtered row as a reject: its outputs and the scores that failed it in ``raw`` (JSON)."""
    fields = output_fields(task)  # type: ignore[arg-type]
    raw = {"outputs": {f: row[f] for f in fields},
           "scores": {k: v for k, v in scores.items() if k != "id"}}
    return {"id": row["id"], "anchor": row["anchor"], "stage": "filter", "reason": reason,
            "raw": json.dumps(raw, ensure_ascii=False), "finish_reason": None,
            **{key: row[key] for key in ("model", "template_sha", "mode", "seed_index", "sample_index")}}


def _counts(shards: list[dict]) -> dict:
    reasons: dict[str, int] = {}
    for shard in shards:
        for reason, count in shard["reject_reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    return {
        "rows": sum(shard["data"]["rows"] for shard in shards),
        "rejects": sum(shard["rejects"]["rows"] for shard in shards),
        "reject_reasons": dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
    }
