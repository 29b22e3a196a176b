"""Stage: people check a seeded sample of rows by hand (``datagen audit``).

The judge (``datagen judge``) and the scores estimate whether labels are right; an audit measures it.
A person reads a fixed random sample of kept rows and marks every relation of each row (nli:
entailment, contradiction; sts: positive, intermediate, negative; pairs: positive) right, wrong or
unsure, following the labelling guide ``docs/labelling.md``. The report is the precision of each
relation and of whole rows, with a Wilson 95% interval.

Layout::

    OUT/audit/sample.json    the sample: seed, size, strata, the data it was drawn from, the row ids in
                             the order they are shown. Drawn once; every later sitting continues it.
    OUT/audit/labels.jsonl   one line per judged row: id, labels per relation, annotator, time, source.
                             Append-only (a whole line, flush, fsync), so a crash loses at most the row
                             being written; a line torn by a crash is ignored. The last line of an id wins.

A sitting does not hold ``OUT/.datagen.lock``: labelling takes an hour, and other stages (judge, score)
may run meanwhile. Only ``--report`` takes it, through ``DatasetWriter``, to record the manifest's
``audit`` section.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Literal, Sequence

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, ValidationError
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from datagen.dataset.manifest import Manifest
from datagen.dataset.shards import file_sha256, open_fresh, shard_path, write_atomically
from datagen.dataset.writer import DatasetWriter
from datagen.errors import InputError, StorageError
from datagen.quality.score import open_scorable
from datagen.tasks import TaskSpec, get_task

AUDIT = "audit"
AUDIT_FORMAT_VERSION = 1
SAMPLE_FILE = "sample.json"
LABELS_FILE = "labels.jsonl"
GUIDE = "docs/labelling.md"

Label = Literal["right", "wrong", "unsure"]
LABELS: tuple[Label, ...] = ("right", "wrong", "unsure")
# One key per label in the terminal, also accepted in imported files.
SHORT_LABELS: dict[str, Label] = {"r": "right", "w": "wrong", "u": "unsure"}
STRATA = ("shard", "mode", "none")
_STYLES = {"right": "green", "wrong": "red", "unsure": "yellow"}
_QUIT = -1  # what AuditScreen's row loop returns to stop: a position no row has

# 150 rows give a Wilson 95% interval of about +-0.05 around a precision of 0.9: enough to tell a
# 90%-right dataset from an 80%-right one, in about an hour of reading.
DEFAULT_SAMPLE_SIZE = 150
DEFAULT_SEED = 0
# Shards are written in seed order, so drawing from every shard in proportion spreads the sample over
# the whole seed file and over every restart of a long run.
DEFAULT_STRATIFY = "shard"
Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile

# What each relation claims, shown under its sentence (keyed by output field, like SHORT_NAMES in tasks/base.py).
RELATION_CLAIMS = {
    "entailment": "true whenever the anchor is true; nothing added",
    "contradiction": "same scene as the anchor, and both cannot be true of it",
    "positive": "same meaning and every detail; each entails the other",
    "intermediate": "anchor's meaning with fewer details; entailed by the anchor, nothing new",
    "negative": "not entailed by the anchor and not a paraphrase of it; shared topic is fine",
}


# --- records -----------------------------------------------------------------------------------------------------

class AuditSample(BaseModel):
    """``OUT/audit/sample.json``: which rows are audited, and what data they were drawn from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = AUDIT_FORMAT_VERSION
    task: str
    size: int  # requested; ``len(ids)`` is smaller when the dataset has fewer rows
    seed: int
    stratify: Literal["shard", "mode", "none"]
    data_fingerprint: str
    data_shards: dict[str, str]  # data shard path -> sha256 when drawn; another sha means other rows
    ids: list[str]  # in the order rows are shown (shuffled, so any prefix is itself a random sample)
    drawn_at: str


class LabelRecord(BaseModel):
    """One line of ``OUT/audit/labels.jsonl``: a person's judgement of every relation of one row."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = AUDIT_FORMAT_VERSION
    id: str
    labels: dict[str, Label]
    annotator: str
    time: str
    source: str = "terminal"  # or "import:<file name>"


# --- pure helpers ----------------------------------------------------------------------------------------------

def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``.

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point at 0 or n
    successes, which matters for audits of 30-150 rows with precision near 1.

    Returns:
        (low, high); (0.0, 1.0) when ``n`` is 0 (nothing is known).

    Raises:
        ValueError: ``n`` is negative or ``successes`` is outside [0, n].
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At 0 or n successes a bound is exactly 0 or 1; rounding would leave 0.9999999999999999.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def allocate(counts: dict[str, int], size: int) -> dict[str, int]:
    """How many rows to draw from each stratum: proportional to its rows, summing to ``size``.

    Largest remainder: every stratum gets ``floor(size * n / total)``, and the rows left over go to the
    largest fractional parts (ties: the stratum listed first). No stratum gets more rows than it has.
    """
    total = sum(counts.values())
    size = min(size, total)
    if total == 0:
        return {name: 0 for name in counts}
    exact = {name: size * n / total for name, n in counts.items()}
    quota = {name: math.floor(value) for name, value in exact.items()}
    order = sorted(counts, key=lambda name: -(exact[name] - quota[name]))  # stable: listed order breaks ties
    for name in order[: size - sum(quota.values())]:
        quota[name] += 1
    return quota


def draw_sample(keyed: Sequence[tuple[str, str]], size: int, seed: int) -> list[str]:
    """A seeded sample of ``size`` row ids, drawn from every stratum in proportion.

    Args:
        keyed: ``(row id, stratum)`` for every row, in a fixed order (shard order).
        size: Rows to draw; all rows when there are fewer.
        seed: Same seed and rows -> same sample.

    Returns:
        The ids, shuffled: an annotator who stops early still has a random (if smaller) sample.
    """
    rng = random.Random(seed)
    strata: dict[str, list[str]] = {}
    for row_id, stratum in keyed:
        strata.setdefault(stratum, []).append(row_id)
    quota = allocate({name: len(ids) for name, ids in strata.items()}, size)
    drawn = [row_id for name, ids in strata.items() for row_id in rng.sample(ids, quota[name])]
    rng.shuffle(drawn)
    return drawn


def parse_label(value: object) -> Label:
    """``right``/``wrong``/``unsure`` (any case, or ``r``/``w``/``u``) as a label.

    Raises:
        ValueError: anything else.
    """
    text = str(value).strip().lower()
    if text in LABELS:
        return text  # type: ignore[return-value]
    if text in SHORT_LABELS:
        return SHORT_LABELS[text]
    raise ValueError(f"unknown value {str(value)!r}")


def row_verdict(labels: dict[str, Label]) -> Label:
    """A whole row: wrong if any relation is wrong, else unsure if any is unsure, else right."""
    values = set(labels.values())
    return "wrong" if "wrong" in values else "unsure" if "unsure" in values else "right"


def precision(labels: Iterable[Label]) -> dict:
    """Counts, precision = right / (right + wrong), and its Wilson 95% interval; unsure is left out."""
    counts = {label: 0 for label in LABELS}
    for label in labels:
        counts[label] += 1
    judged = counts["right"] + counts["wrong"]
    low, high = wilson_interval(counts["right"], judged)
    return {**counts, "judged": judged, "precision": round(counts["right"] / judged, 4) if judged else None,
            "ci95": [round(low, 4), round(high, 4)] if judged else None}


def summarise_labels(relations: Sequence[str], labelled: Sequence[LabelRecord]) -> dict:
    """Precision per relation and per row over ``labelled`` (one record per row)."""
    return {
        "relations": {name: precision(record.labels[name] for record in labelled) for name in relations},
        "rows": precision(row_verdict(record.labels) for record in labelled),
    }


def cohen_kappa(pairs: Sequence[tuple[Label, Label]]) -> float | None:
    """Cohen's kappa of two annotators' labels (1 = they always agree, 0 = as often as chance would)."""
    if not pairs:
        return None
    observed = sum(a == b for a, b in pairs) / len(pairs)
    expected = sum((sum(a == label for a, _ in pairs) / len(pairs)) * (sum(b == label for _, b in pairs) / len(pairs))
                   for label in LABELS)
    return round((observed - expected) / (1 - expected), 4) if expected < 1 else None


def agreement(relations: Sequence[str], first: dict[str, LabelRecord], second: dict[str, LabelRecord]) -> dict:
    """How two annotators' labels of the same rows agree, and the precision when a row needs both to call it right.

    ``first`` and ``second`` map row id to each annotator's latest labels. Per relation and per row: the rows both
    labelled, the share of equal labels and Cohen's kappa. ``strict``: a relation (or row) is right only when
    both said right, wrong when either said wrong; the figure to quote when one reader may be lenient.
    """
    both = [row_id for row_id in first if row_id in second]

    def compare(verdicts: list[tuple[Label, Label]]) -> dict:
        return {"rows": len(verdicts),
                "agreement": round(sum(a == b for a, b in verdicts) / len(verdicts), 4) if verdicts else None,
                "kappa": cohen_kappa(verdicts),
                "strict": precision(strictest(a, b) for a, b in verdicts)}

    return {
        "relations": {name: compare([(first[i].labels[name], second[i].labels[name]) for i in both])
                      for name in relations},
        "rows": compare([(row_verdict(first[i].labels), row_verdict(second[i].labels)) for i in both]),
    }


def strictest(a: Label, b: Label) -> Label:
    return row_verdict({"a": a, "b": b})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_annotator() -> str:
    """``$USER``, else the login name, else ``unknown``."""
    import getpass

    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


# --- OUT/audit/ ------------------------------------------------------------------------------------------------

def audit_dir(out: Path) -> Path:
    """``OUT/audit``, refused when it is a link (datagen writes only inside OUT)."""
    folder = out / AUDIT
    if folder.is_symlink():
        raise StorageError(f"{folder} is a symbolic link; datagen writes only inside the output directory — "
                           "remove the link")
    return folder


def read_labels(path: Path) -> list[LabelRecord]:
    """Every record of a labels file, in file order; lines torn by a crash (not JSON) are skipped.

    Raises:
        StorageError: a complete line is not a label record (the file was edited).
    """
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        try:
            raw = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # empty, or torn mid-append: it vouches for nothing
        try:
            records.append(LabelRecord.model_validate(raw))
        except ValidationError as exc:
            raise StorageError(f"{path}:{number}: not a label record ({exc.errors()[0]['msg']}); the file was "
                               "edited — fix or delete that line") from exc
    return records


def append_labels(path: Path, records: Sequence[LabelRecord]) -> None:
    """Append whole lines to the labels file, then fsync: earlier lines are never rewritten.

    A line torn by an earlier crash is closed with a newline first, so it stays a line of its own that
    readers skip, instead of swallowing the next record.

    Raises:
        StorageError: the disk is full or the folder is not writable.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            torn = not created and os.fstat(fd).st_size > 0 and _last_byte(path) != b"\n"
            blob = (b"\n" if torn else b"") + b"".join(r.model_dump_json().encode("utf-8") + b"\n" for r in records)
            os.write(fd, blob)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(path.parent)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}; free disk space and run "
                           "`datagen audit` again (labels saved so far are kept)") from exc


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_sample(path: Path, sample: AuditSample) -> None:
    write_atomically(path, sample.model_dump_json(indent=2).encode("utf-8"), fix="free disk space and rerun")


# --- the audit of one output dir -------------------------------------------------------------------------------

@dataclass
class Audit:
    """An output dir's audit: its sample, the sampled rows, and the labels given so far.

    Build it with :func:`open_audit`.
    """

    out: Path
    spec: TaskSpec
    sample: AuditSample
    rows: dict[str, dict]  # id -> anchor and outputs, for the sampled rows
    labels: dict[str, LabelRecord] = field(default_factory=dict)  # id -> latest record, sampled rows only
    history: list[LabelRecord] = field(default_factory=list)  # every record of the sampled rows, in file order

    @property
    def relations(self) -> tuple[str, ...]:
        return self.spec.fields

    @property
    def labels_path(self) -> Path:
        return self.out / AUDIT / LABELS_FILE

    def next_unlabelled(self, after: int = -1) -> int | None:
        """Position in the sample of the first row without labels after ``after`` (wrapping), or None."""
        ids = self.sample.ids
        for step in range(1, len(ids) + 1):
            position = (after + step) % len(ids)
            if ids[position] not in self.labels:
                return position
        return None

    def record(self, records: Sequence[LabelRecord]) -> None:
        """Save records (appended, fsynced) and take them as the rows' current labels."""
        append_labels(self.labels_path, records)
        self.history.extend(records)
        for record in records:
            self.labels[record.id] = record


def open_audit(out: str | Path, *, size: int | None = None, seed: int | None = None,
               stratify: str | None = None, draw: bool = True) -> Audit:
    """The audit of ``out``: the saved sample, or a new one drawn with these settings.

    Args:
        out: A datagen output dir (``datagen <task>``, ``filter``, or an import).
        size: Rows to sample (default 150); None: as saved.
        seed: Random seed (default 0); None: as saved.
        stratify: ``shard`` (draw from every shard in proportion), ``mode`` (from every generation
            mode) or ``none``; None: as saved (default ``shard``).
        draw: Draw a sample when there is none; False: refuse (a report has nothing to report).

    Raises:
        InputError: no manifest or no rows; no sample and ``draw`` is false; a setting differs from the
            saved sample's; the data changed since the sample was drawn.
        StorageError: the sample or labels file is damaged (or labels another task), or cannot be written.
    """
    out = Path(out)
    manifest = open_scorable(out)
    spec = get_task(manifest.task)
    if stratify is not None and stratify not in STRATA:
        raise InputError(f"unknown --stratify '{stratify}'; use one of: {', '.join(STRATA)}")
    if size is not None and size < 1:
        raise InputError(f"--sample {size} draws no rows; use a positive number (default {DEFAULT_SAMPLE_SIZE})")
    rows = _read_rows(out, manifest, spec)
    if not rows:
        raise InputError(f"{out} holds no rows to audit; generate some first (datagen {manifest.task} --out {out})")
    path = audit_dir(out) / SAMPLE_FILE
    sample = _read_sample(path) if path.is_file() else None
    if sample is None and not draw:
        raise InputError(f"{out} has no audit sample yet; run `datagen audit {out}` to draw one and label it")
    if sample is None:
        sample = _draw(manifest, rows, size or DEFAULT_SAMPLE_SIZE, DEFAULT_SEED if seed is None else seed,
                       stratify or DEFAULT_STRATIFY)
        _write_sample(path, sample)
    _check_sample(out, sample, manifest, {"sample": size, "seed": seed, "stratify": stratify})
    by_id = {row["id"]: row for row in rows}
    wanted = set(sample.ids)
    history = [r for r in read_labels(out / AUDIT / LABELS_FILE) if r.id in wanted]
    labels = {r.id: r for r in history}
    for record in labels.values():
        if set(record.labels) != set(spec.fields):
            raise StorageError(f"{out / AUDIT / LABELS_FILE}: row {record.id} is labelled {sorted(record.labels)}, "
                               f"{spec.name} rows have {list(spec.fields)}; the file was edited — fix or delete "
                               "its lines for that row")
    return Audit(out, spec, sample, {row_id: by_id[row_id] for row_id in sample.ids}, labels, history)


def _read_rows(out: Path, manifest: Manifest, spec: TaskSpec) -> list[dict]:
    columns = ["id", "anchor", *spec.fields, "mode"]
    rows = []
    for shard in manifest.data_shards():
        table = pq.read_table(shard_path(out, shard.data.path), columns=columns)
        rows += [row | {"shard": shard.data.path} for row in table.to_pylist()]
    return rows


def _draw(manifest: Manifest, rows: list[dict], size: int, seed: int, stratify: str) -> AuditSample:
    key = {"shard": lambda row: row["shard"], "mode": lambda row: str(row["mode"]), "none": lambda row: ""}[stratify]
    ids = draw_sample([(row["id"], key(row)) for row in rows], size, seed)
    return AuditSample(task=manifest.task, size=size, seed=seed, stratify=stratify,  # type: ignore[arg-type]
                       data_fingerprint=manifest.fingerprint, data_shards=_data_shards(manifest), ids=ids,
                       drawn_at=now())


def _data_shards(manifest: Manifest) -> dict[str, str]:
    return {shard.data.path: shard.data.sha256 for shard in manifest.data_shards()}


def _read_sample(path: Path) -> AuditSample:
    try:
        return AuditSample.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise StorageError(f"{path} is damaged or of another datagen version; delete it to draw a new sample "
                           "(labels.jsonl is kept and reused for rows drawn again)") from exc


def _check_sample(out: Path, sample: AuditSample, manifest: Manifest, asked: dict) -> None:
    saved = {"sample": sample.size, "seed": sample.seed, "stratify": sample.stratify}
    differ = [name for name, value in asked.items() if value is not None and value != saved[name]]
    if differ:
        was = " ".join(f"--{name} {saved[name]}" for name in differ)
        asked_for = " ".join(f"--{name} {asked[name]}" for name in differ)
        raise InputError(f"{out / AUDIT / SAMPLE_FILE} was drawn with {was}, not {asked_for}; drop those flags to "
                         "continue that sample, or delete the file to draw a new one")
    if sample.data_fingerprint != manifest.fingerprint or sample.data_shards != _data_shards(manifest):
        raise InputError(f"the data of {out} changed since {out / AUDIT / SAMPLE_FILE} was drawn; delete that file "
                         "to draw a new sample (labels.jsonl is kept and reused for rows drawn again)")


# --- report ----------------------------------------------------------------------------------------------------

def audit_report(out: str | Path) -> dict:
    """Precision per relation and per row over the labelled rows of the sample; recorded in the manifest.

    A row is right when all its relations are right, wrong when any is wrong; rows (and relations)
    marked unsure are left out of the precision and counted. The sample is self-weighting (equal
    probability for every row, strata in proportion), so the plain proportion estimates the dataset's.

    Returns:
        The manifest's ``audit`` section.

    Raises:
        InputError: no row of the sample is labelled yet.
    """
    audit = open_audit(out, draw=False)
    labelled = [audit.labels[row_id] for row_id in audit.sample.ids if row_id in audit.labels]
    if not labelled:
        raise InputError(f"no row of the audit sample of {audit.out} is labelled yet; run `datagen audit {audit.out}` "
                         "to label some, or import labels with --import FILE")
    annotators: dict[str, int] = {}
    for record in labelled:
        annotators[record.annotator] = annotators.get(record.annotator, 0) + 1
    by_annotator = _latest_by_annotator(audit)
    folder = audit.out / AUDIT
    section = {
        "format_version": AUDIT_FORMAT_VERSION,
        "guide": GUIDE,
        "task": audit.spec.name,
        "sample": {"size": audit.sample.size, "drawn": len(audit.sample.ids), "seed": audit.sample.seed,
                   "stratify": audit.sample.stratify, "file": f"{AUDIT}/{SAMPLE_FILE}",
                   "sha256": file_sha256(folder / SAMPLE_FILE)},
        "labels": {"file": f"{AUDIT}/{LABELS_FILE}", "sha256": file_sha256(folder / LABELS_FILE)},
        "labelled_rows": len(labelled),
        "annotators": dict(sorted(annotators.items())),
        **summarise_labels(audit.relations, labelled),
        **({"agreement": {"annotators": names, **agreement(audit.relations, *(by_annotator[n] for n in names))}}
           if len(names := sorted(by_annotator, key=lambda n: (-len(by_annotator[n]), n))[:2]) == 2 else {}),
        "data_fingerprint": audit.sample.data_fingerprint,
        "reported_at": now(),
    }
    with DatasetWriter(audit.out) as writer:
        writer.open_existing()
        writer.set_section(AUDIT, section)
        writer.finalize(status=None)
    return section


def _latest_by_annotator(audit: Audit) -> dict[str, dict[str, LabelRecord]]:
    """annotator -> row id -> that annotator's latest labels, over the sampled rows."""
    latest: dict[str, dict[str, LabelRecord]] = {}
    for record in audit.history:
        latest.setdefault(record.annotator, {})[record.id] = record
    return latest


# --- labels made elsewhere -------------------------------------------------------------------------------------

def import_labels(out: str | Path, source: str | Path, *, annotator: str | None = None,
                  **sample: int | str | None) -> tuple[int, int]:
    """Add labels from a .csv or .jsonl file (``id`` plus one column per relation) to the audit.

    Every line is checked before any is saved, so a bad file adds nothing. Rows whose relation cells
    are all empty (a sheet not filled in yet) are skipped. An ``annotator`` column, where present, wins
    over ``annotator``; a ``time`` column is kept.

    Args:
        sample: ``size``, ``seed``, ``stratify`` of :func:`open_audit` (the sample is drawn if need be).

    Returns:
        (rows imported, blank rows skipped).

    Raises:
        InputError: one line naming the file, the line and the fix (missing id column, unknown id,
            unknown value, a missing relation, not JSON / CSV).
    """
    audit, source = open_audit(out, **sample), Path(source)
    lines = _read_label_lines(source, audit.relations)
    who, stamp = annotator or default_annotator(), now()
    records, blank = [], 0
    for number, line in lines:
        record = _label_record(audit, source, number, line, who, stamp)
        if record is None:
            blank += 1
        else:
            records.append(record)
    if records:
        audit.record(records)
    return len(records), blank


def _read_label_lines(source: Path, relations: Sequence[str]) -> list[tuple[int, dict]]:
    """``(line number, cells)`` of a label file; the header (csv) must name id and every relation."""
    if not source.is_file():
        raise InputError(f"label file {source} does not exist; pass a .csv or .jsonl file")
    try:
        text = source.read_text(encoding="utf-8-sig")  # -sig: spreadsheet programs start CSV with a BOM
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not UTF-8 text; save it as UTF-8 (CSV UTF-8 in a spreadsheet)") from exc
    fix = f"one column per relation ({', '.join(relations)}) holding right, wrong or unsure"
    if source.suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        header = reader.fieldnames or []
        for column in ("id", *relations):
            if column not in header:
                raise InputError(f"{source}:1: no '{column}' column; the first line must name the columns: "
                                 f"id and {fix}")
        return [(reader.line_num, row) for row in reader]
    if source.suffix in (".jsonl", ".json"):
        lines = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                cells = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{source}:{number}: not JSON ({exc.msg}); write one object per line with id "
                                 f"and {fix}") from exc
            if not isinstance(cells, dict):
                raise InputError(f"{source}:{number}: not a JSON object; write one object per line with id and {fix}")
            # A labels.jsonl from another copy of the audit nests the relations under "labels".
            lines.append((number, {**cells, **cells["labels"]} if isinstance(cells.get("labels"), dict) else cells))
        return lines
    raise InputError(f"label file {source} is neither .csv nor .jsonl; save it as one of those")


def _label_record(audit: Audit, source: Path, number: int, cells: dict, annotator: str,
                  stamp: str) -> LabelRecord | None:
    where = f"{source}:{number}"
    row_id = cells.get("id")
    if row_id is None or str(row_id).strip() == "":
        raise InputError(f"{where}: no id; every line needs the id of a row of the audit sample")
    row_id = str(row_id).strip()
    values = {name: cells.get(name) for name in audit.relations}
    if all(value is None or str(value).strip() == "" for value in values.values()):
        return None
    if row_id not in audit.rows:
        raise InputError(f"{where}: id '{row_id}' is not in the audit sample of {audit.out}; label the rows of "
                         f"the sample (`datagen audit {audit.out} --sheet FILE.csv` lists them)")
    labels = {}
    for name, value in values.items():
        if value is None or str(value).strip() == "":
            raise InputError(f"{where}: no {name} label; fill in right, wrong or unsure, or leave every relation "
                             "of the row empty to skip it")
        try:
            labels[name] = parse_label(value)
        except ValueError as exc:
            raise InputError(f"{where}: {exc} for {name}; use right, wrong or unsure (or r, w, u)") from None
    who = str(cells.get("annotator") or "").strip() or annotator
    return LabelRecord(id=row_id, labels=labels, annotator=who, time=str(cells.get("time") or stamp),
                       source=f"import:{source.name}")


def write_sheet(out: str | Path, dest: str | Path, **sample: int | str | None) -> int:
    """Write the sample as a CSV to label elsewhere: id, anchor, ``<relation>_text`` and an empty
    ``<relation>`` column per relation (filled in rows keep their labels); read back with ``--import``.

    Args:
        sample: ``size``, ``seed``, ``stratify`` of :func:`open_audit` (the sample is drawn if need be).

    Returns:
        Rows written.
    """
    audit, dest = open_audit(out, **sample), Path(dest)
    header = ["id", "anchor"] + [c for name in audit.relations for c in (f"{name}_text", name)] + ["annotator"]
    try:
        with open(dest, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row_id in audit.sample.ids:
                row, done = audit.rows[row_id], audit.labels.get(row_id)
                cells = [c for name in audit.relations for c in (row[name], done.labels[name] if done else "")]
                writer.writerow([row_id, row["anchor"], *cells, done.annotator if done else ""])
    except OSError as exc:
        raise StorageError(f"cannot write {dest}: {exc.strerror or exc}; choose another file") from exc
    return len(audit.sample.ids)


# --- the terminal sitting --------------------------------------------------------------------------------------

@dataclass
class Sitting:
    """What one terminal sitting did."""

    saved: int
    labelled: int
    total: int
    finished: bool


class AuditScreen:
    """Label the sample in a terminal, one row at a time, one key per relation.

    Keys: ``r`` right, ``w`` wrong, ``u`` unsure for each relation in order; the row is saved when its
    last relation is marked. ``b`` goes back (the last key of this row, or the previous row to label it
    again); ``q`` (or Ctrl-C) quits; every finished row is already saved.

    Args:
        audit: From :func:`open_audit`.
        annotator: Written into every label.
        console: Where the screen is drawn (a real terminal, or a recording console in tests).
        read_key: Returns the next key pressed ("" at end of input): ``TerminalKeys.read``, or a script.
    """

    def __init__(self, audit: Audit, *, annotator: str, console: Console, read_key: Callable[[], str]) -> None:
        self.audit = audit
        self.annotator = annotator
        self.console = console
        self.read_key = read_key
        self.saved = 0
        self.message = ""

    def run(self) -> Sitting:
        """Show rows until every row is labelled or the annotator quits."""
        position = self.audit.next_unlabelled()
        try:
            while position is not None and position != _QUIT:
                position = self._label_row(position)
        except KeyboardInterrupt:
            position = _QUIT
        return Sitting(self.saved, len(self.audit.labels), len(self.audit.sample.ids), finished=position is None)

    def _label_row(self, position: int) -> int | None:
        """Collect one row's labels; returns the next position, ``_QUIT``, or None when all are labelled."""
        row_id = self.audit.sample.ids[position]
        pending: list[Label] = []
        while len(pending) < len(self.audit.relations):
            self.draw(position, pending)
            key = self.read_key().lower()
            if key in ("q", "\x03", "\x04", ""):
                return _QUIT
            if key == "b":
                if pending:
                    pending.pop()
                elif position > 0:
                    self.message = "back one row: label it again, or press q to keep its saved labels"
                    return position - 1
                else:
                    self.message = "this is the first row"
            elif key in SHORT_LABELS:
                pending.append(SHORT_LABELS[key])
                self.message = ""
            else:
                self.message = f"key {key!r} does nothing here; use r, w, u, b or q"
        labels = dict(zip(self.audit.relations, pending))
        self.audit.record([LabelRecord(id=row_id, labels=labels, annotator=self.annotator, time=now())])
        self.saved += 1
        self.message = f"saved row {position + 1}: " + ", ".join(f"{k} {v}" for k, v in labels.items())
        return self.audit.next_unlabelled(position)

    def draw(self, position: int, pending: Sequence[Label]) -> None:
        """Clear the screen and show the row at ``position`` with the labels given so far."""
        self.console.clear()
        self.console.print(self.screen(position, pending))

    def screen(self, position: int, pending: Sequence[Label]) -> Group:
        """The screen for one row: title, guide path, anchor, each relation's sentence and label, keys."""
        audit = self.audit
        row_id = audit.sample.ids[position]
        row, saved = audit.rows[row_id], audit.labels.get(row_id)
        title = (f"datagen audit {audit.out} · {audit.spec.name} · row {position + 1} of {len(audit.sample.ids)} · "
                 f"{len(audit.labels)} labelled · annotator {self.annotator}")
        table = Table(show_header=False, box=None, expand=True, padding=(0, 1))
        table.add_column("relation", style="bold", no_wrap=True)
        table.add_column("sentence", ratio=1)
        table.add_column("label", no_wrap=True)
        for index, name in enumerate(audit.relations):
            claim = Text(f"\n{RELATION_CLAIMS.get(name, '')}", style="dim")
            if index < len(pending):
                label = Text(pending[index], style=_STYLES[pending[index]])
            elif index == len(pending):
                label = Text("r / w / u ?", style="reverse")
            else:
                label = Text("")
            table.add_row(name, Text(row[name]) + claim, label)
        was = f"saved before: {', '.join(f'{k} {v}' for k, v in saved.labels.items())}" if saved else ""
        keys = Text("keys: r right  w wrong  u unsure  (each relation in order)   b back   q quit & save",
                    style="bold")
        return Group(
            Text(title, style="bold"),
            Text(f"Labelling guide: {GUIDE} (what makes each label right; when to say unsure)", style="dim"),
            Panel(Text(row["anchor"]), title="anchor", title_align="left"),
            table, Text(""), keys, Text(was, style="dim"), Text(self.message, style="yellow"))



class TerminalKeys:
    """Single key presses from the terminal on stdin, as a context manager: inside it the terminal is in
    cbreak mode (no Enter needed, no echo, Ctrl-C still interrupts); leaving restores it.

    Raises:
        InputError: stdin is not a terminal.
    """

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno()
        self._saved = None
        self._ahead: list[str] = []
        if not os.isatty(self.fd):
            raise InputError("datagen audit labels rows in a terminal and stdin is not one; run it in a terminal, "
                             "or label a sheet (--sheet FILE.csv) and bring it back with --import FILE")

    def __enter__(self) -> "TerminalKeys":
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        # TCSAFLUSH drops keys typed before the first row is on the screen: they judge nothing seen.
        tty.setcbreak(self.fd, termios.TCSAFLUSH)
        return self

    def __exit__(self, *exc) -> None:
        import termios

        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read(self) -> str:
        """The next key; "" at end of input. Keys typed ahead of the screen arrive in one read and are
        handed out one by one; an arrow or function key (an escape sequence) comes back as one "\\x1b"."""
        if not self._ahead:
            text = os.read(self.fd, 64).decode("utf-8", errors="replace")
            if text.startswith("\x1b"):
                return "\x1b"
            self._ahead = list(text)
        return self._ahead.pop(0) if self._ahead else ""


def label_in_terminal(out: str | Path, *, annotator: str | None = None, size: int | None = None,
                      seed: int | None = None, stratify: str | None = None,
                      console: Console | None = None, read_key: Callable[[], str] | None = None) -> Sitting:
    """Open (or draw) the audit of ``out`` and label it in the terminal; see :class:`AuditScreen`.

    Args:
        read_key: Key source for tests; default: the terminal on stdin.
    """
    audit = open_audit(out, size=size, seed=seed, stratify=stratify)
    who, console = annotator or default_annotator(), console or Console()
    if read_key is not None:
        return AuditScreen(audit, annotator=who, console=console, read_key=read_key).run()
    with TerminalKeys() as keys:
        return AuditScreen(audit, annotator=who, console=console, read_key=keys.read).run()


__all__ = ["AUDIT", "Audit", "AuditScreen", "LabelRecord", "AuditSample", "open_audit", "audit_report",
           "import_labels", "write_sheet", "label_in_terminal", "wilson_interval", "draw_sample", "allocate"]
