"""Export shards to other formats: the NGCSE paper's training JSONL (method.md §2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from datagen.errors import InputError, StorageError
from datagen.dataset.seeds import read_seeds
from datagen.dataset.manifest import JOURNAL, MANIFEST, read_manifest
from datagen.dataset.shards import open_fresh, read_rows
from datagen.tasks import get_task

# The paper's train.py keys: "5" is the most similar tier, "0" the least; unused keys are "".
# Which output goes under which key is the task's ``ngcse_keys``.
NGCSE_KEYS = ("5", "4", "3", "2", "1", "0")


def to_ngcse_record(row: dict, task: str) -> dict:
    """One generated row in the paper's layout (``split`` = ``aigen``)."""
    tiers = get_task(task).ngcse_keys
    record = {"sentence": row["anchor"]}
    record.update({key: row[tiers[key]] if key in tiers else "" for key in NGCSE_KEYS})
    record["split"] = "aigen"
    return record


def plain_ngcse_record(sentence: str) -> dict:
    """An unlabeled sentence in the paper's layout (trained with two dropout views)."""
    return {"sentence": sentence, **{key: "" for key in NGCSE_KEYS}, "split": "other"}


def export_ngcse_jsonl(out: str | Path, dest: str | Path, *, plain: str | Path | None = None) -> int:
    """Write every data row of ``out`` (plus optional plain sentences) as NGCSE JSONL.

    Args:
        plain: A seed file (.txt/.jsonl/.parquet) of unlabeled sentences; unusable rows are skipped.

    Returns:
        Number of lines written.

    Raises:
        InputError: ``out`` is not a datagen output.
        StorageError: ``dest`` cannot be written.
    """
    out, dest = Path(out), Path(dest)
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is None:
        raise InputError(f"{out} is not a datagen output (no manifest.json); pass the --out of a datagen run "
                         "(datagen nli, sts, pairs or filter)")
    _check_dest(out, dest)
    rows = read_rows(out, "data").to_pylist()
    records = [to_ngcse_record(row, manifest.task) for row in rows]
    if plain is not None:
        records += [plain_ngcse_record(seed.text) for seed in read_seeds(plain) if not seed.problem]
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open_fresh(tmp, "w") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {dest}: {exc.strerror or exc}; choose another destination") from exc
    return len(records)


def _check_dest(out: Path, dest: Path) -> None:
    """Refuse a destination that would overwrite the run it exports (its manifest or shard folders).

    Raises:
        InputError: ``dest`` is a directory, or lies inside ``OUT``'s manifest or shard folders.
    """
    if dest.is_dir():
        raise InputError(f"export destination {dest} is a directory; pass a file name such as train.jsonl")
    target, root = dest.resolve(), out.resolve()
    protected = [root / MANIFEST, root / JOURNAL] + [path for path in root.iterdir() if path.is_dir()]
    if any(target == path or path in target.parents for path in protected):
        raise InputError(
            f"export destination {dest} lies inside the run {out} it exports and would overwrite it; "
            "write it outside, e.g. --dest train.jsonl"
        )
