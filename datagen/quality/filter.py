"""Stage: keep the rows of a scored dataset that pass score thresholds (``datagen filter``).

Reads ``OUT`` (data shards + the sidecar ``OUT/scores/`` written by ``datagen score``) and writes a new
dataset ``OUT2`` with the same contract as a generation run: ``data/`` shards (the kept rows, unchanged),
``rejects/`` shards (the parent's rejects plus one reject per filtered row, reason ``filtered_*``, stage
``filter``) and a manifest that records the parent's path and fingerprint and the filter. ``datagen
inspect``, ``datagen export`` and ``datagen train`` read ``OUT2`` like any other output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_origin

import pyarrow.parquet as pq
from pydantic import ValidationError

from datagen.config import ValidationConfig, fingerprint
from datagen.dataset.manifest import Manifest, ShardEntry, current_section
from datagen.dataset.shards import output_lock
from datagen.dataset.writer import DatasetWriter
from datagen.errors import InputError, ResumeError
from datagen.quality.judge import JUDGE, check_judge_current
from datagen.quality.score import SCORES, open_scorable
from datagen.tasks import get_task
from datagen.tasks.checks import first_failure

REASONS = ("filtered_extra_sample", "filtered_recheck", "filtered_tier_order", "filtered_margin", "filtered_overlap",
           "filtered_judge", "filtered_not_best")


def parse_relation_bars(values: list[str], *, option: str = "--min-judge-for", what: str = "RELATION",
                        example: str = "contradiction=0.6") -> dict[str, float]:
    """``["contradiction=0.8", ...]`` (``--min-judge-for``, or ``--min-check`` with its own words) as
    ``{"contradiction": 0.8}``.

    Raises:
        InputError: a value that is not ``NAME=P``.
    """
    bars = {}
    for value in values:
        name, _, number = value.partition("=")
        try:
            bars[name.strip()] = float(number)
        except ValueError:
            raise InputError(f"{option} {value!r}: write {what}=P, e.g. {example}") from None
    return bars


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
        min_judge: drop rows where any relation's judge probability (``judge_min``, from ``datagen judge``)
            is below this, or was not answered.
        min_judge_by_relation: per-relation thresholds (``{"contradiction": 0.6}``), on top of ``min_judge``:
            the judge's probability for one relation (``judge_<relation>``) must reach its own bar. The judge's
            questions are not equally sharp, so one bar for all either lets weak relations through or drops
            strong ones.
        min_judge_by_check: per-check thresholds (``{"intermediate_not_entails_anchor": 0.2}``), on top of the
            others: one judge question's own probability (``p_<check>``, the names in the task's ``judge.jinja``)
            must reach its bar. A relation's probability is the smallest of its checks, and its checks do not
            share one scale: the sts intermediate wants "the anchor entails it" near certain but "it entails the
            anchor" only not clearly so, which no single bar on their minimum can say.
        best_per_seed: of the rows that pass, keep one per seed: the sample that best passes the judge
            (highest ``judge_min``), then the scores (largest ``margin``, smallest ``overlap``), when present.
        recheck: generation checks to apply again, as ``ValidationConfig`` options over the parent's own
            (``{"close_paraphrase_outputs": ["positive"]}``): a check added after a run is tried on its rows
            without generating again. Rows that fail are dropped first, so ``best_per_seed`` picks among the rest.
        max_samples: use only each seed's first K samples (``sample_index`` below K), as a run with
            ``sampling.n: K`` would have drawn them: whether more candidates per seed pay off is measured on one
            run instead of two. The rest are dropped before any other test.
    """

    require_tier_order: bool = False
    min_margin: float | None = None
    max_overlap: float | None = None
    min_judge: float | None = None
    min_judge_by_relation: dict[str, float] = field(default_factory=dict)
    min_judge_by_check: dict[str, float] = field(default_factory=dict)
    best_per_seed: bool = False
    recheck: dict[str, Any] = field(default_factory=dict)
    max_samples: int | None = None

    @property
    def uses_scores(self) -> bool:
        return self.require_tier_order or self.min_margin is not None or self.max_overlap is not None

    @property
    def uses_judge(self) -> bool:
        return (self.min_judge is not None or bool(self.min_judge_by_relation) or bool(self.min_judge_by_check)
                or self.best_per_seed)

    def bars_per_check(self, checks: Iterable[tuple[str, str]]) -> dict[str, float]:
        """The bar each judge check (``(name, relation)`` pairs) must reach for a row to be kept: the highest of
        ``min_judge``, its relation's and its own. Checks without any bar are left out."""
        bars = {}
        for name, relation in checks:
            found = [bar for bar in (self.min_judge, self.min_judge_by_relation.get(relation),
                                     self.min_judge_by_check.get(name)) if bar is not None]
            if found:
                bars[name] = max(found)
        return bars


@dataclass(frozen=True)
class FilterSummary:
    out: Path
    kept: int
    filtered: dict[str, int]  # reason -> rows
    parent_rows: int


def parse_recheck(values: list[str]) -> dict[str, Any]:
    """``OPTION=VALUE`` strings as ``ValidationConfig`` options; a list option takes comma-separated names.

    Raises:
        InputError: a value without ``=``, or an option ``ValidationConfig`` does not have.
    """
    options: dict[str, Any] = {}
    for value in values:
        name, sep, text = (part.strip() for part in value.partition("="))
        if not sep or name not in ValidationConfig.model_fields:
            raise InputError(f"--recheck {value!r}: write OPTION=VALUE with a validation option, e.g. "
                             "close_paraphrase_outputs=positive (options: datagen/config.py ValidationConfig)")
        is_list = get_origin(ValidationConfig.model_fields[name].annotation) is tuple
        options[name] = [item.strip() for item in text.split(",") if item.strip()] if is_list else text
    return options


def recheck_settings(parent: Manifest, options: dict[str, Any]) -> ValidationConfig:
    """The parent run's validation settings with ``options`` over them (defaults for a dataset datagen did not
    generate).

    Raises:
        InputError: an option ``ValidationConfig`` does not have, or a value it refuses.
    """
    base = (parent.config or {}).get("validation") or {}
    try:
        return ValidationConfig.model_validate({**base, **options})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InputError(f"filter recheck {where}: {error['msg']}; use the options of ValidationConfig "
                         "(datagen/config.py)") from None


def recheck_failure(task: str, row: dict, settings: ValidationConfig) -> dict | None:
    """The check a row fails under ``settings`` (``{"reason", "field", "message"}``), or None if it passes."""
    record = get_task(task).record
    try:
        record.model_validate({"anchor": row["anchor"], **{name: row[name] for name in record.output_fields()}},
                              context=settings)
    except ValidationError as exc:
        field_name, reason, message = first_failure(exc)
        return {"reason": reason, "field": field_name, "message": message}
    return None


def filter_reason(scores: dict, spec: FilterSpec, judged: dict | None = None) -> str | None:
    """The ``filtered_*`` reason a row fails (its score row, its judge row), or None if it is kept."""
    if spec.require_tier_order and not scores["tier_ok"]:
        return "filtered_tier_order"
    if spec.min_margin is not None and scores["margin"] < spec.min_margin:
        return "filtered_margin"
    if spec.max_overlap is not None and scores["overlap"] > spec.max_overlap:
        return "filtered_overlap"
    if spec.min_judge is not None and not (judged or {}).get("judge_min", math.nan) >= spec.min_judge:
        return "filtered_judge"  # NaN (no answer) never passes
    for relation, threshold in spec.min_judge_by_relation.items():
        if not (judged or {}).get(f"judge_{relation}", math.nan) >= threshold:
            return "filtered_judge"
    for check, threshold in spec.min_judge_by_check.items():
        if not (judged or {}).get(f"p_{check}", math.nan) >= threshold:
            return "filtered_judge"
    return None


def best_sample_key(scores: dict, judged: dict) -> tuple[float, float, float]:
    """Sort key of a seed's samples, best last: judge first, then the tier margin, then less overlap."""
    judge_min = judged.get("judge_min", math.nan)
    return (-1.0 if math.isnan(judge_min) else judge_min, scores.get("margin", 0.0), -scores.get("overlap", 0.0))


def check_scores_current(out: Path, manifest: Manifest) -> dict:
    """The manifest's ``scores`` entry, if it describes the data shards as they are now.

    Raises:
        InputError: never scored, or scored before the data changed, or the sidecar files do not match.
    """
    return current_section(out, manifest, SCORES, "score")


def filter_dataset(out: str | Path, dest: str | Path, spec: FilterSpec, *, overwrite: bool = False) -> FilterSummary:
    """Write the rows of ``out`` that pass ``spec`` as a new dataset ``dest``.

    Raises:
        InputError: ``out`` lacks the current scores or judge results ``spec`` needs, ``dest`` is ``out``, or
            ``spec`` asks for a tier order of a task with one output.
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
        recheck = recheck_settings(parent, spec.recheck) if spec.recheck else None
        scores = (check_scores_current(out, parent)
                  if spec.uses_scores or not (spec.uses_judge or recheck or spec.max_samples is not None) else None)
        judged = check_judge_current(out, parent) if spec.uses_judge else None
        if judged is not None:
            check_judge_has_checks(judged, spec)
            check_bars_reach_stops(judged, spec)
        manifest = _child_manifest(out, parent, scores, judged, spec)
        if (done := _same_filter_done(writer, manifest)) is not None:
            return FilterSummary(dest, done.counts.rows, {reason: count for reason, count in
                                 done.counts.reject_reasons.items() if reason in REASONS}, parent.counts.rows)
        _clear_dest(writer, overwrite)
        writer.begin(manifest, metadata={"datagen.parent": manifest.section("parent"),
                                         "datagen.filter": manifest.section("filter")})
        filtered: dict[str, int] = {}
        for shard in parent.shards:
            rows, rejects = _filter_shard(out, shard, parent.task, spec, filtered, recheck)
            writer.write_shard(shard.index, shard.seed_range, rows, rejects)
        counts = writer.finalize()
    return FilterSummary(dest, counts.rows, filtered, parent.counts.rows)


def check_filter_applies(task: str, spec: FilterSpec) -> None:
    """Refuse tier-order tests on a task with a single output (there is no order to hold), thresholds for
    relations the task does not have, and a sample cap under 1.

    Raises:
        InputError: ``--require-tier-order`` or ``--min-margin`` on such a task, ``--min-judge-for`` naming
            no output of the task, or ``--max-samples`` below 1.
    """
    fields = get_task(task).fields
    if spec.max_samples is not None and spec.max_samples < 1:
        raise InputError(f"--max-samples {spec.max_samples}: use at least 1 sample per seed, "
                         "or leave it out to use all")
    if unknown := sorted(set(spec.min_judge_by_relation) - set(fields)):
        raise InputError(f"--min-judge-for {unknown[0]}: task '{task}' has no relation of that name; "
                         f"use one of {', '.join(fields)}")
    if len(fields) < 2 and (spec.require_tier_order or spec.min_margin is not None):
        raise InputError(f"task '{task}' has one output, so rows have no tier order or margin; "
                         "drop --require-tier-order/--min-margin and filter by --max-overlap")


def check_judge_has_checks(judged: dict, spec: FilterSpec) -> None:
    """Refuse a per-check bar for a check the judge did not ask (a typo, or another ``judge.jinja``).

    Raises:
        InputError: ``--min-check`` names no check of the manifest's judge section.
    """
    asked = [check["name"] for check in judged.get("checks", [])]
    if unknown := sorted(set(spec.min_judge_by_check) - set(asked)):
        raise InputError(f"--min-check {unknown[0]}: the judge asked no check of that name; use one of "
                         f"{', '.join(asked)}, or judge again with templates that have it")


def check_bars_reach_stops(judged: dict, spec: FilterSpec) -> None:
    """Refuse bars lower than the judge's early stops: rows under a stop were never asked the later checks, so a
    lower bar would drop rows that a judge asking every check would have let through.

    Raises:
        InputError: a check's bar is below the ``stop_below`` bar the judge ran with.
    """
    bars = spec.bars_per_check((check["name"], check["relation"]) for check in judged.get("checks", []))
    for name, stop in (judged.get("stop_below") or {}).items():
        if bars.get(name, -math.inf) < stop:
            raise InputError(f"the judge stopped asking rows whose {name} fell below {stop}, so this filter's bar for "
                             f"it ({bars.get(name, 'none')}) needs every check asked: raise it to {stop} (--min-check "
                             f"{name}={stop}), or judge again without --stop-below")


def _same_filter_done(writer: DatasetWriter, manifest: Manifest) -> Manifest | None:
    """The dataset already in ``dest`` if it is this very filter of this very parent, complete and intact: a
    rerun (``datagen run`` again) is then a no-op."""
    existing = writer.existing()
    if (existing is None or existing.status != "complete" or existing.fingerprint != manifest.fingerprint
            or len(writer.verified(existing.shards)) != len(existing.shards)):
        return None
    return existing


def _clear_dest(writer: DatasetWriter, overwrite: bool) -> None:
    if writer.existing() is not None or (writer.out / "data").exists():
        if not overwrite:
            raise ResumeError(f"{writer.out} already holds a dataset; pass --overwrite to replace it or choose "
                              "another --out")
        writer.clear()


def _child_manifest(out: Path, parent: Manifest, scores: dict | None, judged: dict | None, spec: FilterSpec) -> Manifest:
    inherited = parent.model_dump(exclude={"shards", "counts", SCORES, JUDGE, "status"})
    evidence = {"scores": [f["sha256"] for f in scores["files"]] if scores else None,
                "judge": [f["sha256"] for f in judged["files"]] if judged else None}
    return Manifest.model_validate(inherited | {
        "fingerprint": fingerprint({"parent": parent.fingerprint, "filter": asdict(spec), **evidence}),
        "parent": {"path": str(out.resolve()), "fingerprint": parent.fingerprint,
                   "encoder": scores.get("encoder") if scores else None,
                   **({"judge_model": judged["model"]["name"]} if judged else {})},
        "filter": asdict(spec),
    })


def _sidecar_rows(out: Path, folder: str, shard: ShardEntry, rows: list[dict], stage: str) -> list[dict]:
    """The sidecar rows of ``shard`` from ``OUT/<folder>/``, checked to line up with its data rows."""
    side = pq.read_table(out / folder / Path(shard.data.path).name).to_pylist() if rows else []
    if [r["id"] for r in rows] != [s["id"] for s in side]:
        raise InputError(f"{out}/{folder} does not match {shard.data.path}; run `datagen {stage} {out}` again")
    return side


def _filter_shard(out: Path, shard: ShardEntry, task: str, spec: FilterSpec, filtered: dict[str, int],
                  recheck: ValidationConfig | None = None) -> tuple[list[dict], list[dict]]:
    """The kept rows of one parent shard, and its rejects plus one ``filtered_*`` reject per dropped row."""
    rows = pq.read_table(out / shard.data.path).to_pylist()
    rejects = pq.read_table(out / shard.rejects.path).to_pylist()
    no_evidence = [{} for _ in rows]
    score_rows = _sidecar_rows(out, SCORES, shard, rows, "score") if spec.uses_scores else no_evidence
    judge_rows = _sidecar_rows(out, JUDGE, shard, rows, "judge") if spec.uses_judge else no_evidence
    passed: list[tuple[dict, dict, dict]] = []

    def drop(row: dict, reason: str, scores: dict, judged: dict, failed_check: dict | None = None) -> None:
        filtered[reason] = filtered.get(reason, 0) + 1
        evidence = {"scores": _without_id(scores), "judge": _without_id(judged) or None,
                    **({"recheck": failed_check} if failed_check else {})}
        rejects.append(as_reject(row, reason, evidence, task))

    for row, scores, judged in zip(rows, score_rows, judge_rows):
        if spec.max_samples is not None and row.get("sample_index", 0) >= spec.max_samples:
            drop(row, "filtered_extra_sample", scores, judged)
            continue
        if recheck is not None and (failed_check := recheck_failure(task, row, recheck)):
            drop(row, "filtered_recheck", scores, judged, failed_check)
            continue
        reason = filter_reason(scores, spec, judged)
        if reason is None:
            passed.append((row, scores, judged))
        else:
            drop(row, reason, scores, judged)
    if spec.best_per_seed:
        best: dict[int, tuple[dict, dict, dict]] = {}
        for candidate in passed:
            current = best.get(candidate[0]["seed_index"])
            if current is None or best_sample_key(*candidate[1:]) > best_sample_key(*current[1:]):
                best[candidate[0]["seed_index"]] = candidate
        winners = {id(entry[0]) for entry in best.values()}
        for row, scores, judged in passed:
            if id(row) not in winners:
                drop(row, "filtered_not_best", scores, judged)
        passed = [entry for entry in passed if id(entry[0]) in winners]
    return [row for row, _, _ in passed], rejects


def _without_id(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "id"}


def as_reject(row: dict, reason: str, evidence: dict, task: str) -> dict:
    """A row dropped by a quality stage, as a reject: its outputs and the evidence that failed it (``scores``,
    ``judge`` probabilities) in ``raw``."""
    fields = get_task(task).fields
    raw = {"outputs": {f: row[f] for f in fields}, **evidence}
    return {"id": row["id"], "anchor": row["anchor"], "stage": "filter", "reason": reason,
            "raw": json.dumps(raw, ensure_ascii=False), "finish_reason": None,
            **{key: row[key] for key in ("model", "template_sha", "mode", "seed_index", "sample_index")}}
