"""``datagen sts``: three-tier STS tuples (anchor, positive, intermediate, negative)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationInfo, model_validator

from datagen.tasks.base import TaskSpec
from datagen.tasks.checks import Record, fail, settings_of


class STSTuple(Record):
    """Anchor with three similarity tiers: positive > intermediate > negative."""

    meaning_changing: ClassVar[frozenset[str]] = frozenset({"negative"})

    positive: str
    intermediate: str
    negative: str

    @model_validator(mode="after")
    def _intermediate_has_fewer_details(self, info: ValidationInfo) -> "STSTuple":
        if settings_of(info).require_shorter_intermediate and len(self.intermediate) >= len(self.positive):
            raise fail("intermediate", "intermediate_not_shorter", "intermediate is not shorter than positive")
        return self


TASK = TaskSpec(
    name="sts",
    description="Generate STS tuples: anchor, positive, intermediate (fewer details), negative.",
    record=STSTuple,
    # The paper's code uses the intermediate as the InfoNCE positive for STS groups (method.md §3).
    positive="intermediate",
    hierarchy=("positive", "intermediate", "negative"),
    ngcse_keys={"5": "positive", "4": "intermediate", "3": "negative"},
    reasons=frozenset({"intermediate_not_shorter"}),
)
