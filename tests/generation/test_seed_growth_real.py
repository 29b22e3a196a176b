"""Seeds that grow, change and shrink, on real vLLM with the embedded model: append, edit a middle line,
truncate, each checked against a run made from scratch on the final seed file. One engine serves every run
(it is started once, ~50 s here); the planning itself is covered in test_seed_growth.py."""

from __future__ import annotations

import json

import pytest

from datagen.config import VLLMConfig, load_config
from datagen.dataset.shards import read_rows
from datagen.engines.base import StreamingEngine
from datagen.engines.vllm_engine import VLLMEngine
from datagen.generation.run import generate
from datagen.models import resolve_model

pytestmark = pytest.mark.model

KITE = "A boy is flying a red kite in the park."  # one seed more than the shared seed file holds


class SharedEngine:
    """The real engine, kept open across runs, noting which anchors it was asked about."""

    def __init__(self, engine: VLLMEngine) -> None:
        self.engine = engine
        self.name, self.model_name = engine.name, engine.model_name
        self.anchors: set[str] = set()

    def generate(self, requests):
        self.anchors.update(r.messages[-1]["content"] for r in requests)
        return self.engine.generate(requests)

    def generate_batches(self, batches):
        def noted():
            for requests in batches:
                self.anchors.update(r.messages[-1]["content"] for r in requests)
                yield requests

        return self.engine.generate_batches(noted())

    def close(self) -> None:
        """Left open for the next run; the fixture closes the engine."""


@pytest.fixture(scope="module")
def config():
    return load_config(None, {"task": "nli", "mode": "separate", "shard_rows": 4, "sampling.temperature": 0.0,
                              "sampling.max_tokens": 40, "vllm.kv_cache_gib": 1})


@pytest.fixture(scope="module")
def engine(embedded_model_path, config):
    started = VLLMEngine(resolve_model(config.model), sampling=config.sampling, settings=VLLMConfig(kv_cache_gib=1))
    yield started
    started.close()


def run(config, engine, seeds, out) -> tuple[object, set[str]]:
    shared = SharedEngine(engine)
    summary = generate(config, seeds, out, engine_factory=lambda c, m: shared)
    assert isinstance(shared, StreamingEngine)  # streamed as a plain vllm run would be
    return summary, shared.anchors


def ids(out) -> list[str]:
    return sorted(read_rows(out).column("id").to_pylist() + read_rows(out, "rejects").column("id").to_pylist())


def shard_sha(out) -> dict[tuple[int, int], str]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {tuple(s["seed_range"]): s["data"]["sha256"] for s in manifest["shards"]}


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_append_edit_and_truncate_resume_what_still_holds(tmp_path, seed_file, config, engine):
    sentences = seed_file.read_text(encoding="utf-8").splitlines()  # the ten seeds of tests/conftest.py
    first_eight, appended = sentences[:8], sentences[8:] + [KITE]
    seeds, out = tmp_path / "seeds.txt", tmp_path / "out"
    write(seeds, first_eight)
    run(config, engine, seeds, out)

    # append: only the new seeds are generated; the two shards already written stay byte for byte
    before = shard_sha(out)
    write(seeds, first_eight + appended)
    summary, asked = run(config, engine, seeds, out)
    assert asked == set(appended) and summary.shards_skipped == 2
    assert {k: shard_sha(out)[k] for k in before} == before
    scratch_appended = tmp_path / "scratch_appended"
    run(config, engine, seeds, scratch_appended)
    assert ids(out) == ids(scratch_appended)

    # edit a middle line: only its shard is generated again
    edited = first_eight + appended
    edited[5] = "A cyclist is repairing a flat tyre by the road."
    write(seeds, edited)
    summary, asked = run(config, engine, seeds, out)
    assert asked == set(edited[4:8]) and "their seeds changed" in summary.resume_note
    scratch_edited = tmp_path / "scratch_edited"
    run(config, engine, seeds, scratch_edited)
    assert ids(out) == ids(scratch_edited)

    # truncate: shards past the end are dropped, the part of a shard still in the file is generated again
    write(seeds, edited[:6])
    summary, asked = run(config, engine, seeds, out)
    assert asked == set(edited[4:6]) and "past the end of the seed file (now 6 seeds)" in summary.resume_note
    scratch_truncated = tmp_path / "scratch_truncated"
    run(config, engine, seeds, scratch_truncated)
    assert ids(out) == ids(scratch_truncated)
    assert sorted(shard_sha(out)) == [(0, 4), (4, 6)]
