"""Bring a dataset datagen did not write (a .parquet or .jsonl with a task's columns) into an output dir.

The rows become ordinary data shards with a manifest, so every quality stage (judge, audit, filter,
inspect, export) runs on them as on generated rows: e.g. checking a SynCSE-style public NLI set.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from datagen.config import fingerprint
from datagen.dataset.manifest import Manifest
from datagen.dataset.shards import file_sha256
from datagen.dataset.writer import DatasetWriter
from datagen.errors import InputError, ResumeError
from datagen.tasks import get_task

IMPORT_SHARD_ROWS = 1024


def read_table_rows(path: Path) -> list[dict]:
    """Rows of a .parquet or .jsonl file as dicts.

    Raises:
        InputError: missing file, another format, or a line that is not a JSON object.
    """
    if not path.is_file():
        raise InputError(f"dataset {path} does not exist; pass a .parquet or .jsonl file")
    if path.suffix == ".parquet":
        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise InputError(f"{path} is not a readable Parquet file ({exc}); pass a .parquet or .jsonl file") from exc
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number} is not JSON ({exc.msg}); a .jsonl file holds one object per line") from exc
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number} is not a JSON object; a .jsonl file holds one object per line")
            rows.append(row)
        return rows
    raise InputError(f"dataset {path} is neither .parquet nor .jsonl; convert it to one of those")


def import_rows(path: str | Path, task: str, out: str | Path, *, overwrite: bool = False) -> Manifest:
    """Write the rows of ``path`` (columns ``anchor`` and the task's outputs; ``id`` optional) into ``out``.

    Rows whose cells are not all non-empty strings are kept out and counted as rejects (``not_text``).

    Raises:
        InputError: unreadable file, no rows, or a column the task needs is missing.
        ResumeError: ``out`` already holds another dataset and ``overwrite`` is false.
    """
    path, out, spec = Path(path), Path(out), get_task(task)
    rows = read_table_rows(path)
    columns = ("anchor", *spec.fields)
    if not rows:
        raise InputError(f"{path} holds no rows; pass a dataset with columns {', '.join(columns)}")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise InputError(f"{path} lacks the column(s) {', '.join(missing)} that task '{task}' needs "
                         f"(it has {', '.join(map(str, rows[0]))}); rename them or pass another --task")
    source_sha = file_sha256(path)
    manifest = Manifest(task=task, fingerprint=fingerprint({"import": source_sha, "task": task}),
                        config={"mode": "imported", "source": str(path)},
                        model={"name": "imported", "path": str(path), "sha256": None},
                        seeds={"path": str(path), "sha256": source_sha, "count": len(rows)})
    with DatasetWriter(out) as writer:
        previous = writer.existing()
        if previous is not None and previous.fingerprint == manifest.fingerprint and previous.status == "complete":
            return previous
        if previous is not None or (out / "data").exists():
            if not overwrite:
                raise ResumeError(f"{out} already holds a dataset; pass --overwrite to replace it or choose another --out")
            writer.clear()
        writer.begin(manifest)
        for start in range(0, len(rows), IMPORT_SHARD_ROWS):
            chunk = rows[start : start + IMPORT_SHARD_ROWS]
            kept, rejects = [], []
            for offset, row in enumerate(chunk):
                record = _as_row(row, start + offset, columns, source_sha)
                (kept if all(isinstance(row.get(c), str) and row[c].strip() for c in columns) else rejects).append(record)
            writer.write_shard(start // IMPORT_SHARD_ROWS, (start, start + len(chunk)), kept,
                               [_as_reject(r) for r in rejects])
        writer.finalize()
        return writer.manifest


def _as_row(row: dict, index: int, columns: tuple[str, ...], source_sha: str) -> dict:
    texts = {c: row.get(c) if isinstance(row.get(c), str) else "" for c in columns}
    row_id = str(row["id"]) if row.get("id") is not None else hashlib.sha256(
        "\x1f".join([source_sha, str(index), *texts.values()]).encode()).hexdigest()[:32]
    return {"id": row_id, **texts, "model": "imported", "template_sha": source_sha[:16], "mode": "imported",
            "seed_index": index, "sample_index": 0, "prompt_tokens": 0, "completion_tokens": 0}


def _as_reject(row: dict) -> dict:
    return {"id": row["id"], "anchor": row["anchor"], "stage": "import", "reason": "not_text",
            "raw": json.dumps({k: v for k, v in row.items() if k not in ("id", "anchor")}, ensure_ascii=False),
            "finish_reason": None, **{k: row[k] for k in ("model", "template_sha", "mode", "seed_index", "sample_index")}}
