"""Read back an output directory: counts, reject reasons, sample rows (``datagen inspect``)."""

from __future__ import annotations

from pathlib import Path

from datagen.errors import InputError
from datagen.dataset.manifest import read_manifest
from datagen.dataset.shards import read_rows
from datagen.tasks import get_task


def inspect_output(out: str | Path, *, samples: int = 3) -> dict:
    """Summarise a generation output directory.

    Returns:
        task, status, fingerprint, model, counts (rows, rejects, reasons), acceptance rate,
        shard count, and up to ``samples`` example rows and rejects.

    Raises:
        InputError: ``out`` is not a datagen output directory.
    """
    out = Path(out)
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is None:
        raise InputError(f"{out} is not a datagen output (no manifest.json); pass the --out of a datagen run "
                         "(datagen nli, sts, pairs or filter)")
    counts = manifest.counts
    total = counts.rows + counts.rejects
    fields = ["id", "anchor", *get_task(manifest.task).fields]
    return {
        "out": str(out),
        "task": manifest.task,
        "status": manifest.status,
        "mode": manifest.config["mode"],
        "model": (manifest.model or {}).get("name"),
        "fingerprint": manifest.fingerprint[:16],
        "shards": len(manifest.shards),
        "rows": counts.rows,
        "rejects": counts.rejects,
        "acceptance_rate": round(counts.rows / total, 4) if total else 0.0,
        "reject_reasons": counts.reject_reasons,
        "sample_rows": _head(out, "data", fields, samples) if counts.rows else [],
        "sample_rejects": _head(out, "rejects", ["anchor", "stage", "reason", "raw"], samples) if counts.rejects else [],
    }


def _head(out: Path, kind: str, columns: list[str], count: int) -> list[dict]:
    return read_rows(out, kind, columns).slice(0, count).to_pylist()
