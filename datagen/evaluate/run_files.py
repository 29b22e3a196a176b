"""The run-dir log files shared by training (writes them) and RFD / reports (read them).

Names and columns are the NGCSE paper's own logs (no extension), so the readers
take the paper's log dirs as they are.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from datagen.errors import InputError

METRICS_FILE = "metrics"
TRAIN_AU_FILE = "train_alignment_and_uniformity"
EVAL_AU_FILE = "eval_alignment_and_uniformity"
METRICS_COLUMNS = ("step", "loss", "stsb", "sickr", "avg")
AU_COLUMNS = ("step", "alignment", "uniformity")


class RunLog:
    """Appends rows to a run's three CSVs; creating it writes the headers (a fresh log)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._start(METRICS_FILE, METRICS_COLUMNS)
        self._start(TRAIN_AU_FILE, AU_COLUMNS)
        self._start(EVAL_AU_FILE, AU_COLUMNS)

    def _start(self, name: str, header: Sequence[str]) -> None:
        with open(self.run_dir / name, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(header)

    def append(self, name: str, row: Sequence[float]) -> None:
        with open(self.run_dir / name, "a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(row)


def find_log(run_dir: Path, name: str) -> Path | None:
    """The paper's files have no extension; accept ``NAME`` or ``NAME.csv``."""
    for candidate in (Path(run_dir) / name, Path(run_dir) / f"{name}.csv"):
        if candidate.is_file():
            return candidate
    return None


def read_log(path: Path, columns: Sequence[str]) -> dict[int, dict[str, float]]:
    """Read a ``step,...`` CSV into ``{step: {column: value}}``.

    Raises:
        InputError: missing columns or non-numeric values.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("step", *columns) if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path} lacks columns {missing}; expected a header 'step,{','.join(columns)}'")
        try:
            return {int(float(row["step"])): {c: float(row[c]) for c in columns} for row in reader}
        except ValueError as exc:
            raise InputError(f"{path} holds a non-numeric value ({exc}); is the file truncated?") from exc
