"""OpenAI-compatible engine: retry policy against a local stub, then a real vLLM server."""

from __future__ import annotations

import json
import logging
import math
import pickle
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest

from datagen.config import OpenAIConfig, SamplingConfig
from datagen.engines.base import Engine, GenerationRequest, LogprobsEngine, StreamingEngine
from datagen.engines.openai_server import OpenAIEngine
from datagen.engines.registry import served_model
from datagen.errors import ConfigError, EngineError
from datagen.engines.vllm_server import pick_free_port

# (status, json body, headers, delay_s) for one HTTP answer.
Reply = tuple[int, dict[str, Any], dict[str, str], float]
Policy = Callable[[dict[str, Any], int], Reply]  # (request body, attempt number for this prompt) -> reply


# What the stub answers to logprobs=True: (token, logprob) of the first token's alternatives, in no order.
STUB_TOP_LOGPROBS = [(" no", -2.0), ("Yes", -0.5), ("yes", -1.5), ("Maybe", -3.0), ("NO", -4.0)]


def logprobs_field(top_logprobs: int) -> dict[str, Any]:
    """OpenAI's ``choices[i].logprobs`` for one generated token with ``top_logprobs`` alternatives."""
    alternatives = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in STUB_TOP_LOGPROBS[:top_logprobs]]
    return {"content": [{"token": "Yes", "logprob": -0.5, "bytes": list(b"Yes"), "top_logprobs": alternatives}]}


def chat_reply(body: dict[str, Any]) -> dict[str, Any]:
    """A well-formed chat.completion echoing the last message, one choice per ``n`` (with logprobs if asked)."""
    n = body.get("n", 1)
    prompt = body["messages"][-1]["content"]
    if body.get("logprobs"):
        return {
            "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes"}, "finish_reason": "length",
                         "logprobs": logprobs_field(body.get("top_logprobs", 0))}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
        }  # fmt: skip
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": f"echo {prompt} #{i}"}, "finish_reason": "stop"}
            for i in range(n)
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3 * n, "total_tokens": 7 + 3 * n},
    }


def ok(body: dict[str, Any], attempt: int) -> Reply:
    return 200, chat_reply(body), {}, 0.0


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error", "code": None, "param": None}}


class StubServer:
    """A tiny OpenAI-shaped HTTP server on 127.0.0.1 whose answers a test scripts via ``policy``."""

    def __init__(self) -> None:
        self.policy: Policy = ok
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # lower-cased names
        self.attempts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]}, {})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, payload, reply_headers, delay = stub._record_and_decide(body, headers)
                time.sleep(delay)
                with stub._lock:
                    stub.in_flight -= 1
                self._send(status, payload, reply_headers)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left: that is the point of the timeout test

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _record_and_decide(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        prompt = body["messages"][-1]["content"]
        with self._lock:
            self.bodies.append(body)
            self.headers.append(headers)
            self.attempts[prompt] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            attempt = self.attempts[prompt]
        return self.policy(body, attempt)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.close()


def make_engine(base_url: str, *, sampling: SamplingConfig | None = None, **settings: Any) -> OpenAIEngine:
    config = OpenAIConfig(base_url=base_url, **{"max_retries": 3, "timeout_s": 5.0, **settings})
    return OpenAIEngine(
        served_model("stub-model"),
        settings=config,
        sampling=sampling or SamplingConfig(max_tokens=16),
        backoff_initial_s=0.01,  # keep the unit tests fast; the policy is what is under test
        backoff_max_s=0.05,
    )


def ask(*prompts: str, schema: dict[str, Any] | None = None) -> list[GenerationRequest]:
    return [GenerationRequest(f"r{i}", ({"role": "user", "content": p},), schema) for i, p in enumerate(prompts)]


def test_engine_satisfies_protocol(stub):
    engine = make_engine(stub.base_url)
    assert isinstance(engine, Engine)
    assert engine.name == "openai" and engine.model_name == "stub-model"
    assert engine.generate([]) == []


def test_engine_declares_logprobs_but_not_streaming(stub):
    engine = make_engine(stub.base_url)
    assert isinstance(engine, LogprobsEngine) and not isinstance(engine, StreamingEngine)


def test_completion_fields_and_order(stub):
    completions = make_engine(stub.base_url).generate(ask("a", "b", "c"))
    assert [c.request_id for c in completions] == ["r0", "r1", "r2"]
    assert [c.text for c in completions] == ["echo a #0", "echo b #0", "echo c #0"]
    first = completions[0]
    assert (first.finish_reason, first.prompt_tokens, first.completion_tokens, first.error) == ("stop", 7, 3, None)
    sent = stub.bodies[0]
    assert sent["model"] == "stub-model" and sent["max_tokens"] == 16 and sent["seed"] == 0
    assert "response_format" not in sent


def test_500_then_200_is_retried(stub):
    stub.policy = lambda body, attempt: (500, error_body("boom"), {}, 0.0) if attempt == 1 else ok(body, attempt)
    [completion] = make_engine(stub.base_url).generate(ask("x"))
    assert completion.error is None and completion.text == "echo x #0"
    assert stub.attempts["x"] == 2


def test_429_honours_retry_after(stub):
    def policy(body: dict[str, Any], attempt: int) -> Reply:
        if attempt <= 2:
            return 429, error_body("slow down"), {"Retry-After": "0.2"}, 0.0
        return ok(body, attempt)

    stub.policy = policy
    started = time.monotonic()
    [completion] = make_engine(stub.base_url).generate(ask("x"))
    assert completion.error is None
    assert stub.attempts["x"] == 3
    assert time.monotonic() - started >= 0.4  # two waits of the server's 0.2 s, not the 0.01 s backoff


def test_retries_exhausted_raise_so_the_batch_is_not_written(stub):
    # A server fault is not the row's fault: a reject would mark the seed done and lose it.
    stub.policy = lambda body, attempt: (
        (503, error_body("overloaded"), {}, 0.0) if body["messages"][-1]["content"] == "bad" else ok(body, attempt)
    )
    with pytest.raises(EngineError, match=r"failed after 2 retries \(HTTP 503: overloaded\).*rerun the same command"):
        make_engine(stub.base_url, max_retries=2).generate(ask("good", "bad", "good too"))
    assert stub.attempts["bad"] == 3  # first try + max_retries


def test_timeout_is_retried(stub):
    stub.policy = lambda body, attempt: (200, chat_reply(body), {}, 2.0 if attempt == 1 else 0.0)
    [completion] = make_engine(stub.base_url, timeout_s=0.5).generate(ask("slow"))
    assert completion.error is None
    assert stub.attempts["slow"] == 2


def test_400_is_not_retried(stub):
    stub.policy = lambda body, attempt: (400, error_body("prompt too long"), {}, 0.0)
    [completion] = make_engine(stub.base_url).generate(ask("x"))
    assert completion.error == "HTTP 400: prompt too long"
    assert stub.attempts["x"] == 1


@pytest.mark.parametrize("status", [401, 404])
def test_auth_or_model_errors_raise(stub, status):
    stub.policy = lambda body, attempt: (status, error_body("nope"), {}, 0.0)
    with pytest.raises(EngineError, match=stub.base_url):
        make_engine(stub.base_url).generate(ask("x"))
    assert stub.attempts["x"] == 1


def test_nothing_listening_raises_at_start():
    url = f"http://127.0.0.1:{pick_free_port()}/v1"
    with pytest.raises(EngineError, match=f"no OpenAI-compatible server at {url}.*start one"):
        make_engine(url)


def test_connection_lost_after_start_raises_with_the_fix():
    url = f"http://127.0.0.1:{pick_free_port()}/v1"
    config = OpenAIConfig(base_url=url, max_retries=1, timeout_s=2.0)
    engine = OpenAIEngine(served_model("m"), settings=config, sampling=SamplingConfig(), backoff_initial_s=0.01,
                          probe=False)
    with pytest.raises(EngineError, match=f"server at {url} still failed after 1 retries \\(connection error"):
        engine.generate(ask("x"))


def test_concurrency_is_bounded(stub):
    stub.policy = lambda body, attempt: (200, chat_reply(body), {}, 0.2)
    completions = make_engine(stub.base_url, concurrency=2).generate(ask(*[f"p{i}" for i in range(6)]))
    assert len(completions) == 6 and all(c.error is None for c in completions)
    assert stub.max_in_flight == 2


def test_n_samples_and_json_schema_request(stub):
    schema = {"type": "object", "properties": {"positive": {"type": "string"}}, "required": ["positive"]}
    engine = make_engine(stub.base_url, sampling=SamplingConfig(n=3, temperature=0.7))
    completions = engine.generate(ask("a", "b", schema=schema))
    assert [(c.request_id, c.sample_index) for c in completions] == [(f"r{r}", i) for r in range(2) for i in range(3)]
    assert [c.completion_tokens for c in completions[:3]] == [3, 3, 3]  # usage 9 split over 3 choices
    response_format = stub.bodies[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == schema
    assert stub.bodies[0]["n"] == 3


def test_failed_request_still_returns_n_completions(stub):
    stub.policy = lambda body, attempt: (400, error_body("bad"), {}, 0.0)
    completions = make_engine(stub.base_url, sampling=SamplingConfig(n=2)).generate(ask("x"))
    assert [(c.sample_index, c.error) for c in completions] == [(0, "HTTP 400: bad"), (1, "HTTP 400: bad")]


def test_api_key_only_from_env_and_never_kept(stub, monkeypatch, caplog):
    secret = "sk-test-do-not-leak-123"
    monkeypatch.setenv("DATAGEN_TEST_KEY", secret)
    stub.policy = lambda body, attempt: (500, error_body("boom"), {}, 0.0) if attempt == 1 else ok(body, attempt)
    engine = make_engine(stub.base_url, api_key_env="DATAGEN_TEST_KEY")
    with caplog.at_level(logging.DEBUG):
        engine.generate(ask("x"))
    assert stub.headers[0]["authorization"] == f"Bearer {secret}"
    assert secret not in caplog.text
    assert secret.encode() not in pickle.dumps(engine)
    assert secret not in repr(engine) and secret not in repr(vars(engine))


def test_missing_key_env_sends_placeholder(stub, monkeypatch):
    monkeypatch.delenv("DATAGEN_TEST_KEY", raising=False)
    make_engine(stub.base_url, api_key_env="DATAGEN_TEST_KEY").generate(ask("x"))
    assert stub.headers[0]["authorization"] == "Bearer EMPTY"  # local servers accept any key


# ---------------------------------------------------------------- first-token logprobs (stub)


def test_first_token_logprobs_request_and_answer(stub):
    schema = {"type": "object"}
    engine = make_engine(stub.base_url, sampling=SamplingConfig(n=3, temperature=0.9, max_tokens=64))
    answers = engine.first_token_logprobs(ask("is it?", "and this?", schema=schema), top_k=4)
    sent = stub.bodies[0]
    assert (sent["logprobs"], sent["top_logprobs"], sent["max_tokens"], sent["temperature"], sent["n"]) == (
        True, 4, 1, 0.0, 1)  # one greedy token whatever the generation sampling says
    assert "response_format" not in sent  # the judge reads the unconstrained distribution
    assert [a.request_id for a in answers] == ["r0", "r1"] and all(a.error is None for a in answers)
    assert [(t.token, t.logprob) for t in answers[0].top] == [("Yes", -0.5), ("yes", -1.5), (" no", -2.0),
                                                               ("Maybe", -3.0)]
    yes, no = math.exp(-0.5) + math.exp(-1.5), math.exp(-2.0)
    assert answers[0].probability("yes") == pytest.approx(yes)
    assert answers[0].share(["yes"], ["no"]) == pytest.approx(yes / (yes + no))


def test_first_token_logprobs_of_a_refused_request_is_an_error_not_a_crash(stub):
    stub.policy = lambda body, attempt: (
        (400, error_body("prompt too long"), {}, 0.0) if body["messages"][-1]["content"] == "long" else ok(body, attempt)
    )
    answers = make_engine(stub.base_url).first_token_logprobs(ask("short", "long"), top_k=2)
    assert answers[0].error is None and len(answers[0].top) == 2
    assert answers[1].error == "HTTP 400: prompt too long" and answers[1].top == ()


def test_server_that_ignores_logprobs_raises_with_the_fix(stub):
    stub.policy = lambda body, attempt: (200, chat_reply({**body, "logprobs": False}), {}, 0.0)
    with pytest.raises(EngineError, match="answered without logprobs.*vllm.entrypoints.openai.api_server"):
        make_engine(stub.base_url).first_token_logprobs(ask("x"))


@pytest.mark.parametrize("top_k", [0, 21])
def test_top_k_outside_what_servers_return_is_refused(stub, top_k):
    with pytest.raises(ConfigError, match="use 1..20"):
        make_engine(stub.base_url).first_token_logprobs(ask("x"), top_k=top_k)
    assert stub.bodies == []


def test_no_requests_no_logprobs_and_no_http(stub):
    assert make_engine(stub.base_url).first_token_logprobs([]) == []
    assert stub.bodies == []


# ---------------------------------------------------------------- real vLLM server


def real_engine(url: str, **sampling: Any) -> OpenAIEngine:
    return OpenAIEngine(
        served_model("qwen2.5-0.5b"),
        settings=OpenAIConfig(base_url=url, concurrency=8, timeout_s=120.0),
        sampling=SamplingConfig(**{"max_tokens": 48, **sampling}),
    )


@pytest.mark.server
def test_real_server_chat_completions(vllm_server_url):
    prompts = [
        "Rewrite in other words: A man is playing a guitar on stage.",
        "Rewrite in other words: Two children are building a sandcastle.",
        "Write the opposite of: The train arrived early this morning.",
        "Write the opposite of: She is reading a book in the library.",
    ]
    started = time.monotonic()
    completions = real_engine(vllm_server_url).generate(ask(*prompts))
    seconds = time.monotonic() - started
    assert [c.request_id for c in completions] == ["r0", "r1", "r2", "r3"]
    for completion in completions:
        assert completion.error is None
        assert completion.text.strip()
        assert completion.finish_reason in {"stop", "length"}
        assert completion.prompt_tokens > 10 and completion.completion_tokens > 0
    tokens = sum(c.completion_tokens for c in completions)
    print(f"real server: {tokens} tokens in {seconds:.1f}s = {tokens / seconds:.0f} tok/s")


@pytest.mark.server
def test_real_server_json_schema(vllm_server_url):
    schema = {
        "type": "object",
        "properties": {"entailment": {"type": "string"}, "contradiction": {"type": "string"}},
        "required": ["entailment", "contradiction"],
        "additionalProperties": False,
    }
    prompt = (
        "For the sentence 'A dog runs through the park.' give one sentence it entails "
        "and one it contradicts, as JSON."
    )
    [completion] = real_engine(vllm_server_url, max_tokens=120).generate(ask(prompt, schema=schema))
    assert completion.error is None and completion.finish_reason == "stop"
    parsed = json.loads(completion.text)
    assert set(parsed) == {"entailment", "contradiction"}
    assert all(isinstance(value, str) and value for value in parsed.values())


@pytest.mark.server
def test_real_server_n_samples(vllm_server_url):
    completions = real_engine(vllm_server_url, n=2, temperature=0.8, max_tokens=24).generate(
        ask("Describe a sunny day in one sentence.")
    )
    assert [c.sample_index for c in completions] == [0, 1]
    assert all(c.text and c.error is None for c in completions)


@pytest.mark.server
def test_real_server_unknown_model_name_raises(vllm_server_url):
    engine = OpenAIEngine(served_model("no-such-model"), settings=OpenAIConfig(base_url=vllm_server_url),
                          sampling=SamplingConfig())
    with pytest.raises(EngineError, match="404 for model 'no-such-model'"):
        engine.generate(ask("hi"))


@pytest.mark.server
def test_datagen_sts_through_real_server_matches_contract(vllm_server_url, tmp_path, seed_file):
    """The whole pipeline on the openai engine: same shard contract as the vllm engine."""
    import json
    import subprocess
    import sys

    import pyarrow.parquet as pq

    out = tmp_path / "sts_openai"
    args = [sys.executable, "-m", "datagen.cli", "sts", "--seeds", str(seed_file), "--out", str(out),
            "--engine", "openai", "--base-url", vllm_server_url, "--model", "qwen2.5-0.5b", "--shard-rows", "4"]
    env = {**__import__("os").environ, "OPENAI_API_KEY": "sk-test-secret-never-written"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["rows"] + manifest["counts"]["rejects"] == 10
    assert manifest["config"]["engine"] == "openai"
    # How many of the 0.5B model's 10 tuples pass validation depends on the dtype the CPU computes in (3 or more
    # in bfloat16 on an AMX Xeon, 2 in float32 on an AVX2-only EPYC): the contract needs some rows, not a count.
    assert "engine_error" not in manifest["counts"]["reject_reasons"] and manifest["counts"]["rows"] >= 1
    import pyarrow.parquet as pq

    assert sum(pq.read_metadata(out / shard["data"]["path"]).num_rows for shard in manifest["shards"]) == \
        manifest["counts"]["rows"]
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"sk-test-secret-never-written" not in written
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert rerun.returncode == 0 and "already complete" in rerun.stderr


JUDGE = "Premise: {premise} Hypothesis: {hypothesis} Does the premise entail the hypothesis? Answer yes or no."


@pytest.mark.server
def test_real_server_first_token_logprobs_judge_an_entailment(vllm_server_url):
    premise = "A man is playing a guitar."
    hypotheses = ["A person is playing music.", "A cat is sleeping on the sofa."]
    questions = ask(*(JUDGE.format(premise=premise, hypothesis=h) for h in hypotheses))
    entailed, unrelated = real_engine(vllm_server_url).first_token_logprobs(questions, top_k=20)
    for answer in (entailed, unrelated):
        assert answer.error is None and len(answer.top) == 20
        assert [t.logprob for t in answer.top] == sorted((t.logprob for t in answer.top), reverse=True)
    p_entailed, p_unrelated = entailed.share(["yes"], ["no"]), unrelated.share(["yes"], ["no"])
    print(f"real server: P(yes) entailed {p_entailed:.3f}, unrelated {p_unrelated:.3f}")
    assert p_entailed is not None and p_unrelated is not None
    assert p_entailed > p_unrelated
