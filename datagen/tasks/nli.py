"""``datagen nli``: NLI-style triples (anchor, an entailed sentence, a contradicting sentence)."""

from __future__ import annotations

from typing import ClassVar

from datagen.tasks.base import TaskSpec
from datagen.tasks.checks import Record


class NLITriple(Record):
    """Anchor (premise), an entailed hypothesis and a contradicting one."""

    meaning_changing: ClassVar[frozenset[str]] = frozenset({"contradiction"})

    entailment: str
    contradiction: str


TASK = TaskSpec(
    name="nli",
    description="Generate NLI triples: anchor, entailment, contradiction.",
    record=NLITriple,
    positive="entailment",
    hard_negative="contradiction",
    ngcse_keys={"5": "entailment", "4": "contradiction"},
)
