"""A scripted engine, only for isolating pipeline units from a real LLM.

Every engine also has a test against the real thing (tests/engines/, tests/generation/test_real_engine.py).
"""

from __future__ import annotations

import json
from typing import Callable, Sequence

from datagen.engines.base import Completion, FirstTokenLogprobs, GenerationRequest, TokenLogprob
from datagen.tasks import get_task

# Good outputs per template, keyed by template name; "{anchor}" is replaced by the seed.
GOOD = {
    "entailment": "Something related to {anchor} happens.",
    "contradiction": "Nobody ever saw this: {reversed}",
    "positive": "In other words, {anchor}",
    "intermediate": "{first_words} indeed.",
    "negative": "On the moon instead, {reversed}",
}


def good_reply(name: str, anchor: str, task: str) -> str:
    """A reply that passes validation and differs per anchor (no duplicate outputs)."""
    words = anchor.rstrip(".").split()
    parts = {"anchor": anchor, "reversed": " ".join(reversed(words)).lower(), "first_words": " ".join(words[:3])}
    if name == "joint":
        return json.dumps({field: GOOD[field].format(**parts) for field in get_task(task).fields})
    return GOOD[name].format(**parts)


class FakeEngine:
    """Answers each request with ``reply(template_name, anchor)``; records the batches it saw."""

    name = "fake"
    model_name = "fake-model"

    def __init__(self, task: str, reply: Callable[[str, str], str] | None = None, finish_reason: str = "stop"):
        self.task = task
        self.reply = reply or (lambda name, anchor: good_reply(name, anchor, task))
        self.finish_reason = finish_reason
        self.batches: list[list[GenerationRequest]] = []
        self.closed = False

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.batches.append(list(requests))
        completions = []
        for request in requests:
            name = request.request_id.split("/", 1)[1]
            anchor = request.messages[-1]["content"]
            text = self.reply(name, anchor)
            completions.append(Completion(request.request_id, text, self.finish_reason, 100, len(text.split())))
        return completions

    def close(self) -> None:
        self.closed = True


class FakeJudge:
    """A logprobs engine answering judge questions by ``p_yes(question text)``; records the requests it saw.

    ``p_yes`` gets the last user turn (premise and hypothesis) and returns P(yes), or None to answer none of
    the question's answers. A three-way question (true / false / unknown) reads it as P(true), with
    P(false) = 1 - P(true): the hypothesis follows or it does not.
    """

    name = "fake-judge"
    model_name = "fake-judge-model"

    def __init__(self, p_yes: Callable[[str], float | None]):
        self.p_yes = p_yes
        self.requests: list[GenerationRequest] = []
        self.closed = False

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        raise AssertionError("a judge only asks for first-token logprobs")

    def first_token_logprobs(self, requests: Sequence[GenerationRequest], *, top_k: int = 20) -> list[FirstTokenLogprobs]:
        import math

        self.requests += requests
        results = []
        for request in requests:
            p = self.p_yes(request.messages[-1]["content"])
            top = () if p is None else tuple(sorted(
                (TokenLogprob(word, math.log(max(q, 1e-9)))
                 for word, q in (("yes", p), ("no", 1 - p), ("true", p), ("false", 1 - p))),
                key=lambda t: -t.logprob))
            results.append(FirstTokenLogprobs(request.request_id, top if p is not None else (TokenLogprob("maybe", 0.0),)))
        return results

    def close(self) -> None:
        self.closed = True
