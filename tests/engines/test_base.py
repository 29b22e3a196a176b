"""The engine protocols: capabilities checked by type, the streaming adapter, reading first-token logprobs."""

from __future__ import annotations

import math

import pytest

from datagen.engines.base import (
    MAX_TOP_LOGPROBS,
    Completion,
    Engine,
    FirstTokenLogprobs,
    GenerationRequest,
    LogprobsEngine,
    StreamingEngine,
    TokenLogprob,
    check_top_k,
    require_logprobs,
    stream_batches,
    top_candidates,
)
from datagen.errors import ConfigError


def request(request_id: str) -> GenerationRequest:
    return GenerationRequest(request_id, ({"role": "user", "content": request_id},))


class PlainEngine:
    """An ``Engine`` and nothing more: echoes each request id."""

    name, model_name = "plain", "m"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def generate(self, requests):
        self.calls.append([r.request_id for r in requests])
        return [Completion(r.request_id, f"text {r.request_id}", "stop", 1, 1) for r in requests]

    def close(self) -> None:
        pass


class OwnStreamEngine(PlainEngine):
    """Declares ``StreamingEngine``; answers batches last first, so its own path is recognisable."""

    def generate_batches(self, batches):
        batches = list(batches)
        for position in reversed(range(len(batches))):
            yield position, self.generate(batches[position])


class JudgeEngine(PlainEngine):
    def first_token_logprobs(self, requests, *, top_k=MAX_TOP_LOGPROBS):
        return [FirstTokenLogprobs(r.request_id, (TokenLogprob("yes", 0.0),)) for r in requests]


def test_capabilities_are_declared_by_what_an_engine_implements():
    plain, streaming, judge = PlainEngine(), OwnStreamEngine(), JudgeEngine()
    assert all(isinstance(engine, Engine) for engine in (plain, streaming, judge))
    assert [isinstance(e, StreamingEngine) for e in (plain, streaming, judge)] == [False, True, False]
    assert [isinstance(e, LogprobsEngine) for e in (plain, streaming, judge)] == [False, False, True]
    assert not isinstance(object(), Engine)


def test_a_plain_engine_is_streamed_one_generate_per_batch_pulled_lazily():
    engine, pulled = PlainEngine(), []

    def batches():
        for position, ids in enumerate([["a0", "a1"], [], ["c0"]]):
            pulled.append(position)
            yield [request(i) for i in ids]

    stream = stream_batches(engine, batches())
    assert pulled == []  # nothing is read before the caller asks
    position, completions = next(stream)
    assert (position, [c.request_id for c in completions], pulled) == (0, ["a0", "a1"], [0])
    assert [(p, len(c)) for p, c in stream] == [(1, 0), (2, 1)]
    assert engine.calls == [["a0", "a1"], [], ["c0"]]


def test_a_streaming_engine_is_streamed_through_its_own_generate_batches():
    finished = list(stream_batches(OwnStreamEngine(), [[request("a")], [request("b")]]))
    assert [position for position, _ in finished] == [1, 0]


def test_require_logprobs_names_the_engines_that_have_them():
    judge = JudgeEngine()
    assert require_logprobs(judge) is judge
    with pytest.raises(ConfigError, match="plain engine cannot return first-token logprobs; use --engine vllm"):
        require_logprobs(PlainEngine())


@pytest.mark.parametrize("top_k, ok", [(0, False), (1, True), (MAX_TOP_LOGPROBS, True), (MAX_TOP_LOGPROBS + 1, False)])
def test_top_k_bounds(top_k, ok):
    if ok:
        check_top_k(top_k)
    else:
        with pytest.raises(ConfigError, match=f"top_k={top_k}.*use 1..20"):
            check_top_k(top_k)


def test_top_candidates_sorts_and_cuts():
    candidates = [TokenLogprob("b", -2.0), TokenLogprob("a", -0.1), TokenLogprob("c", -5.0)]
    assert top_candidates(candidates, 2) == (TokenLogprob("a", -0.1), TokenLogprob("b", -2.0))
    assert top_candidates([], 5) == ()


def answer(*pairs: tuple[str, float]) -> FirstTokenLogprobs:
    return FirstTokenLogprobs("r", tuple(TokenLogprob(token, logprob) for token, logprob in pairs))


@pytest.mark.parametrize(
    "pairs, expected",
    [
        ([], None),  # no candidates at all (e.g. an error)
        ([("Maybe", -0.1)], None),  # the model answered something else
        ([("Yes", math.log(0.6)), (" yes", math.log(0.2)), ("no", math.log(0.2))], 0.8),  # spellings add up
        ([(" NO\n", math.log(0.5))], 0.0),
        ([("Ja", math.log(0.5)), ("Nein", math.log(0.5)), ("yes", math.log(0.25))], 1.0),  # unicode, other words
    ],
    ids=["empty", "neither", "spellings", "only-no", "other-words"],
)
def test_share_of_yes_against_no(pairs, expected):
    share = answer(*pairs).share(["yes"], ["no"])
    assert share == (None if expected is None else pytest.approx(expected))


def test_probability_sums_the_listed_words_only():
    first = answer(("Oui", math.log(0.3)), ("yes", math.log(0.4)), ("é", math.log(0.1)))
    assert first.probability("yes", "oui") == pytest.approx(0.7)
    assert first.probability("É") == pytest.approx(0.1)  # lower-cased like the candidates
    assert first.probability() == 0.0
