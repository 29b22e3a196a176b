"""Training rows for the downstream stage: read shards and plain sentences, split, batch.

Reads the generation stage's shard contract (``OUT/data/part-*.parquet``; nli:
``anchor, entailment, contradiction``; sts: ``anchor, positive, intermediate,
negative``) and turns every source into one ``TrainRow`` shape, so the loss
sees a mixed (hybrid) batch the same way as a pure one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import torch

from datagen.errors import InputError
from datagen.tasks import TaskSpec, get_task
from datagen.train.losses.groups import NO_TEXT, GroupLayout
from datagen.train.poolers import MASK_TEMPLATE_ALT
from datagen.dataset.seeds import read_seeds

# "simcse" (plain sentences, two dropout views) or the name of a registered task (datagen/tasks/).
Objective = str
SIMCSE = "simcse"


@dataclass(frozen=True)
class TrainRow:
    """One training example, whatever its source."""

    anchor: str
    positive: str  # the InfoNCE positive; equal to ``anchor`` for plain sentences (two dropout views)
    hard_negative: str | None = None  # the task's hard negative (nli: the contradiction)
    ht: tuple[str, str, str] | None = None  # the task's hierarchy (sts: positive, intermediate, negative)
    plain: bool = False

    def sentences(self) -> list[str]:
        """All distinct texts of the row, anchor first (the "flattened sentences" of method.md §4)."""
        texts = [self.anchor, self.positive, self.hard_negative, *(self.ht or ())]
        return list(dict.fromkeys(t for t in texts if t))


def shard_files(data_dir: Path) -> list[Path]:
    """``DIR/data/part-*.parquet`` (or ``DIR/part-*.parquet``), sorted.

    Raises:
        InputError: no shard found.
    """
    data_dir = Path(data_dir)
    files = sorted((data_dir / "data").glob("part-*.parquet")) or sorted(data_dir.glob("part-*.parquet"))
    if not files:
        raise InputError(
            f"no shards in {data_dir}; pass a generation output dir holding data/part-*.parquet "
            "(made by `datagen nli`, `datagen sts` or `datagen pairs`)"
        )
    return files


def _row_from_record(spec: TaskSpec, record: dict) -> TrainRow:
    hard = record[spec.hard_negative] if spec.hard_negative else None
    ht = tuple(record[name] for name in spec.hierarchy) if spec.hierarchy else None
    return TrainRow(record["anchor"], record[spec.positive], hard_negative=hard, ht=ht)  # type: ignore[arg-type]


def read_shard_rows(data_dir: Path, objective: str) -> list[TrainRow]:
    """Read generated rows of the task ``objective``; rows with an empty cell are skipped.

    Raises:
        InputError: missing shards or missing columns.
        ConfigError: ``objective`` is not a registered task.
    """
    spec = get_task(objective)
    columns = ("anchor", *spec.fields)
    rows: list[TrainRow] = []
    for path in shard_files(data_dir):
        table = pq.read_table(path)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise InputError(
                f"{path} lacks columns {missing} needed by objective '{objective}'; "
                f"it has {table.column_names} — pass the --objective of the task that wrote it, or other data"
            )
        for record in table.select(list(columns)).to_pylist():
            if all(isinstance(record[c], str) and record[c].strip() for c in columns):
                rows.append(_row_from_record(spec, record))
    return rows


def read_plain_rows(path: Path, *, limit: int | None = None) -> list[TrainRow]:
    """Plain sentences (SimCSE views) from a seed file; unusable seeds are skipped."""
    seeds = read_seeds(path, limit=limit)
    return [TrainRow(s.text, s.text, plain=True) for s in seeds if s.problem is None and s.text.strip()]


def split_heldout(rows: Sequence[TrainRow], fraction: float, seed: int) -> tuple[list[TrainRow], list[TrainRow]]:
    """Shuffle with ``seed`` and hold out ``fraction`` of rows (at least one) for alignment/uniformity.

    Raises:
        InputError: fewer than 2 rows.
    """
    if len(rows) < 2:
        raise InputError(f"need at least 2 training rows, got {len(rows)}; pass more --data or --plain sentences")
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    n_heldout = min(len(shuffled) - 1, max(1, round(fraction * len(shuffled))))
    return shuffled[n_heldout:], shuffled[:n_heldout]


def iterate_batches(rows: Sequence[TrainRow], batch_size: int, seed: int) -> Iterator[list[TrainRow]]:
    """Endless stream of batches; reshuffles every epoch; drops a last batch smaller than 2 (InfoNCE needs 2)."""
    epoch = 0
    while True:
        order = list(rows)
        random.Random(seed + epoch).shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            if len(batch) >= 2:
                yield batch
        epoch += 1


@dataclass(frozen=True)
class CollatedBatch:
    texts: list[str]
    templates: list[str | None]  # per text, for the mask pooler; None = default template
    layout: GroupLayout
    labels: torch.Tensor  # (batch_size, 6) group labels (datagen.train.losses.groups), what a GroupLoss takes


def collate(batch: Sequence[TrainRow]) -> CollatedBatch:
    """Flatten a batch into one list of texts plus the index layout (and group labels) the loss needs."""
    texts: list[str] = []
    templates: list[str | None] = []

    def add(text: str, template: str | None = None) -> int:
        texts.append(text)
        templates.append(template)
        return len(texts) - 1

    anchors = [add(row.anchor) for row in batch]
    # Plain rows: the second view uses the paper's second template (only matters for the mask pooler).
    positives = [add(row.positive, MASK_TEMPLATE_ALT if row.plain else None) for row in batch]
    hard = [add(row.hard_negative) if row.hard_negative else NO_TEXT for row in batch]
    ht = []
    for row, positive in zip(batch, positives):
        # A hierarchy text equal to the InfoNCE positive (the STS intermediate) is already embedded: reuse it.
        ht.append([positive if text == row.positive else add(text) for text in row.ht] if row.ht else [NO_TEXT] * 3)
    labels = torch.tensor([[a, p, h, *t] for a, p, h, t in zip(anchors, positives, hard, ht)], dtype=torch.long)
    labels = labels.reshape(-1, 6)  # (batch_size, 6)
    return CollatedBatch(texts, templates, GroupLayout.from_labels(labels), labels)
