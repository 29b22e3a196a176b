"""Stage: evaluate an encoder with the SentEval STS protocol SimCSE reports.

Score = cosine of the two embeddings (no regressor, also for STS-B and SICK-R);
STS12-16 concatenate their subsets into one Spearman ("all"); STS-B and SICK-R
use the test split. Each result is Spearman x100 rounded to 2 decimals and Avg
is the mean of the rounded values, so tables add up exactly as published.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datagen.encoders import load_encoder
from datagen.errors import InputError
from datagen.evaluate.measures import cosine_spearman, encode_unique
from datagen.evaluate.sts_data import (
    STS_YEAR_SUBSETS,
    STSPairs,
    default_data_dir,
    load_sickr,
    load_stsb,
    load_sts_year,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

TASKS: tuple[str, ...] = (*STS_YEAR_SUBSETS, "STS-B", "SICK-R")
RESULTS_FILE = "sts_results.json"


def load_task(task: str, data_dir: Path | None = None) -> STSPairs:
    """Load the test pairs of one task (``STS12`` ... ``STS16``, ``STS-B``, ``SICK-R``).

    Raises:
        InputError: unknown task name or missing files.
    """
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    if task in STS_YEAR_SUBSETS:
        return load_sts_year(data_dir, task)
    if task == "STS-B":
        return load_stsb(data_dir, "test")
    if task == "SICK-R":
        return load_sickr(data_dir, "test")
    raise InputError(f"unknown task '{task}'; choose from {', '.join(TASKS)}")


def score_pairs(model: SentenceTransformer, pairs: STSPairs, *, batch_size: int = 128) -> float:
    """Cosine Spearman of ``model`` on ``pairs`` (a fraction in [-1, 1], unrounded)."""
    cache = encode_unique(model, pairs.sentences1 + pairs.sentences2, batch_size=batch_size)
    return _spearman_from_cache(cache, pairs)


def _spearman_from_cache(cache: dict, pairs: STSPairs) -> float:
    left = np.stack([cache[s] for s in pairs.sentences1])  # (num_pairs, dim)
    right = np.stack([cache[s] for s in pairs.sentences2])  # (num_pairs, dim)
    return cosine_spearman(left, right, pairs.scores)


def evaluate_model(
    model: SentenceTransformer,
    *,
    tasks: Sequence[str] = TASKS,
    data_dir: Path | None = None,
    batch_size: int = 128,
) -> dict[str, float]:
    """Run the STS protocol and return ``{"STS12": 68.4, ..., "Avg": ...}`` (x100, 2 decimals).

    Every distinct sentence across all tasks is embedded once, then scored per task.

    Args:
        model: Any ``SentenceTransformer``; its own pooling is used.
        tasks: Subset of ``TASKS`` to run, in report order.
        data_dir: SentEval ``downstream`` folder; default ``$DATAGEN_DATA`` or ``../shared/data/senteval_processed``.
        batch_size: Encoding batch size.

    Raises:
        InputError: unknown task or missing data files.
    """
    if not tasks:
        raise InputError(f"no tasks given; choose from {', '.join(TASKS)}")
    all_pairs = [load_task(task, data_dir) for task in tasks]
    sentences = [s for pairs in all_pairs for s in pairs.sentences1 + pairs.sentences2]
    cache = encode_unique(model, sentences, batch_size=batch_size)
    results = {pairs.task: round(100 * _spearman_from_cache(cache, pairs), 2) for pairs in all_pairs}
    results["Avg"] = round(sum(results.values()) / len(results), 2)
    return results


def evaluate_path(
    model_path: str,
    *,
    tasks: Sequence[str] = TASKS,
    data_dir: Path | None = None,
    batch_size: int = 128,
    save_to: Path | None = None,
) -> dict[str, float]:
    """Load an encoder (registry name, folder or hub id), evaluate it, optionally save the results JSON.

    Args:
        model_path: What ``datagen.encoders.load_encoder`` accepts, e.g. a ``datagen train`` run dir.
        save_to: Write the results as JSON here (a file, or a directory that gets ``sts_results.json``).
    """
    results = evaluate_model(load_encoder(model_path), tasks=tasks, data_dir=data_dir, batch_size=batch_size)
    if save_to is not None:
        target = Path(save_to) / RESULTS_FILE if Path(save_to).is_dir() else Path(save_to)
        target.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def format_table(results: dict[str, float]) -> str:
    """One header line and one value line, tab-free, aligned for a terminal."""
    names = list(results)
    widths = [max(len(name), 6) for name in names]
    header = "  ".join(name.rjust(w) for name, w in zip(names, widths))
    values = "  ".join(f"{results[name]:.2f}".rjust(w) for name, w in zip(names, widths))
    return f"{header}\n{values}"
