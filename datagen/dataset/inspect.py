"""Read back an output directory: counts, reject reasons, sample rows (``datagen inspect``)."""

from __future__ import annotations

from pathlib import Path

from datagen.errors import InputError
from datagen.dataset.shards import read_manifest, read_rows
from datagen.tasks import output_fields


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
        raise InputError(f"{out} is not a datagen output (no manifest.json); pass the --out of a datagen nli/sts run")
    counts = manifest["counts"]
    total = counts.get("rows", 0) + counts.get("rejects", 0)
    fields = ["id", "anchor", *output_fields(manifest["task"])]
    return {
        "out": str(out),
        "task": manifest["task"],
        "status": manifest["status"],
        "mode": manifest["config"]["mode"],
        "model": manifest["model"]["name"],
        "fingerprint": manifest["fingerprint"][:16],
        "shards": len(manifest["shards"]),
        "rows": counts.get("rows", 0),
        "rejects": counts.get("rejects", 0),
        "acceptance_rate": round(counts.get("rows", 0) / total, 4) if total else 0.0,
        "reject_reasons": counts.get("reject_reasons", {}),
        "sample_rows": _head(out, "data", fields, samples) if counts.get("rows") else [],
        "sample_rejects": _head(out, "rejects", ["anchor", "stage", "reason", "raw"], samples)
        if counts.get("rejects")
        else [],
    }


def _head(out: Path, kind: str, columns: list[str], count: int) -> list[dict]:
    return read_rows(out, kind, columns).slice(0, count).to_pylist()
