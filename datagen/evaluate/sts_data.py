"""Read the SentEval STS files (STS12-16, STS-B, SICK-R) exactly as SentEval does.

Shared by training (STS-B dev for model selection) and evaluation (the test
protocol), so both stages read the same bytes the same way. Sentences are
re-joined from whitespace tokens, as SentEval's ``batcher`` in SimCSE does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datagen.errors import InputError

# Subsets per year, in SentEval's order; STS13 SMT is absent (LDC licence), as in SentEval.
STS_YEAR_SUBSETS: dict[str, tuple[str, ...]] = {
    "STS12": ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    "STS13": ("FNWN", "headlines", "OnWN"),
    "STS14": ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    "STS15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "STS16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}
DATA_ENV = "DATAGEN_DATA"
HOW_TO_GET_DATA = (
    "set $DATAGEN_DATA or pass --data-dir to a SentEval 'downstream' folder (STS/, SICK/), "
    "e.g. the one SimCSE's data/download_senteval.sh unpacks"
)


@dataclass(frozen=True)
class STSPairs:
    """Sentence pairs with gold similarity scores for one task."""

    task: str
    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray  # (num_pairs,) float gold scores

    def __len__(self) -> int:
        return len(self.scores)


def default_data_dir() -> Path:
    """``$DATAGEN_DATA`` if set, else ``../shared/data/senteval_processed`` beside a source checkout.

    The fallback only exists in a checkout (tests, benchmarks); an installed datagen gets its data from
    ``$DATAGEN_DATA`` or a ``--data-dir`` flag.
    """
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "senteval_processed"


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"STS file {path} is missing; {HOW_TO_GET_DATA}")
    return path.read_text(encoding="utf-8").splitlines()


def _join_tokens(text: str) -> str:
    return " ".join(text.split())


def load_sts_year(data_dir: Path, year: str) -> STSPairs:
    """Load all subsets of one STS year, dropping pairs whose gold line is empty, concatenated ("all").

    Raises:
        InputError: unknown year or missing files.
    """
    if year not in STS_YEAR_SUBSETS:
        raise InputError(f"unknown STS year '{year}'; choose one of {', '.join(STS_YEAR_SUBSETS)}")
    folder = Path(data_dir) / "STS" / f"{year}-en-test"
    first: list[str] = []
    second: list[str] = []
    scores: list[float] = []
    for subset in STS_YEAR_SUBSETS[year]:
        inputs = _read_lines(folder / f"STS.input.{subset}.txt")
        gold = _read_lines(folder / f"STS.gs.{subset}.txt")
        if len(inputs) != len(gold):
            raise InputError(f"{folder}/STS.*.{subset}.txt: {len(inputs)} inputs but {len(gold)} gold lines")
        for line, score in zip(inputs, gold):
            if score.strip() == "":
                continue  # SentEval skips unscored pairs
            left, right = line.split("\t")[:2]
            first.append(_join_tokens(left))
            second.append(_join_tokens(right))
            scores.append(float(score))
    return STSPairs(year, first, second, np.asarray(scores, dtype=np.float64))


def _load_tsv_pairs(task: str, path: Path, *, score_field: int, first_field: int, skip_header: bool) -> STSPairs:
    lines = _read_lines(path)[1 if skip_header else 0 :]
    first, second, scores = [], [], []
    for number, line in enumerate(lines, start=2 if skip_header else 1):
        fields = line.strip().split("\t")
        if len(fields) <= max(score_field, first_field + 1):
            raise InputError(f"{path}:{number} has {len(fields)} tab-separated fields; is this the SentEval file?")
        first.append(_join_tokens(fields[first_field]))
        second.append(_join_tokens(fields[first_field + 1]))
        scores.append(float(fields[score_field]))
    return STSPairs(task, first, second, np.asarray(scores, dtype=np.float64))


def load_stsb(data_dir: Path, split: str = "test") -> STSPairs:
    """STS-B ``sts-{split}.csv``: score field 4, sentences fields 5-6 (0-based)."""
    path = Path(data_dir) / "STS" / "STSBenchmark" / f"sts-{split}.csv"
    return _load_tsv_pairs("STS-B", path, score_field=4, first_field=5, skip_header=False)


def load_sickr(data_dir: Path, split: str = "test") -> STSPairs:
    """SICK-R: header skipped, sentences fields 1-2, relatedness field 3."""
    name = {"test": "SICK_test_annotated.txt", "train": "SICK_train.txt", "trial": "SICK_trial.txt"}[split]
    return _load_tsv_pairs("SICK-R", Path(data_dir) / "SICK" / name, score_field=3, first_field=1, skip_header=True)
