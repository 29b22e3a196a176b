"""``datagen pairs``: (anchor, positive) paraphrase pairs.

The format sentence-transformers' ``MultipleNegativesRankingLoss`` trains on: every other row's
positive in the batch is a negative, so no negative is generated.
"""

from __future__ import annotations

from datagen.tasks.base import TaskSpec
from datagen.tasks.checks import Record


class ParaphrasePair(Record):
    """Anchor and a sentence with the same meaning in other words."""

    positive: str


TASK = TaskSpec(
    name="pairs",
    description="Generate paraphrase pairs: anchor, positive (same meaning, other words).",
    record=ParaphrasePair,
    positive="positive",
    ngcse_keys={"5": "positive"},
)
