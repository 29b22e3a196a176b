"""Pipeline logic (chunking, accounting, resume) with a scripted engine; the real-engine runs are in
tests/generation/test_real_engine.py."""

import json

import pyarrow.parquet as pq
import pytest

from datagen.config import load_config
from datagen.errors import InputError, ResumeError
from datagen.generation.run import generate, plan_chunks
from datagen.dataset.shards import read_rows
from datagen.tasks import get_task
from tests.support.fakes import FakeEngine, good_reply


def config(task="sts", **overrides):
    return load_config(None, {"task": task, "shard_rows": 4, "mode": "separate", **overrides})


def run(cfg, seeds, out, engine=None, **kwargs):
    engine = engine or FakeEngine(cfg.task)
    summary = generate(cfg, seeds, out, engine_factory=lambda c, m: engine, **kwargs)
    return summary, engine


@pytest.fixture(autouse=True)
def no_model_preparation(monkeypatch):
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha-" + name))


@pytest.mark.parametrize("task, mode", [("nli", "separate"), ("nli", "joint"), ("sts", "separate"), ("sts", "joint"),
                                        ("pairs", "separate"), ("pairs", "joint")])
def test_every_seed_becomes_a_row(tmp_path, seed_file, task, mode):
    summary, engine = run(config(task, mode=mode), seed_file, tmp_path / "out")
    assert summary.rows == 10 and summary.rejects == 0 and summary.shards_written == 3
    table = read_rows(tmp_path / "out")
    assert table.num_rows == 10 and len(set(table.column("id").to_pylist())) == 10
    assert engine.closed
    # one engine call per shard-sized batch, never per row
    templates = 1 if mode == "joint" else len(get_task(task).fields)
    assert [len(batch) for batch in engine.batches] == [4 * templates, 4 * templates, 2 * templates]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["rows"] == 10
    assert [shard["seed_range"] for shard in manifest["shards"]] == [[0, 4], [4, 8], [8, 10]]


def test_rejects_keep_raw_text_reason_and_the_rows_id(tmp_path, seed_file):
    def reply(name, anchor):
        if "dogs" in anchor and name == "negative":
            return anchor  # a copied "negative", as the 0.5B model writes
        if "bakery" in anchor and name == "positive":
            return "Sure! Here is the sentence you asked for."
        return good_reply(name, anchor, "sts")

    summary, _ = run(config(), seed_file, tmp_path / "out", FakeEngine("sts", reply))
    assert summary.rows == 8 and summary.reject_reasons == {"copies_anchor": 1, "meta_text": 1}
    rejects = read_rows(tmp_path / "out", "rejects").to_pylist()
    by_reason = {r["reason"]: r for r in rejects}
    assert by_reason["copies_anchor"]["stage"] == "negative"
    assert "Two dogs" in json.loads(by_reason["copies_anchor"]["raw"])["negative"]
    assert by_reason["meta_text"]["stage"] == "positive"
    data_ids = set(read_rows(tmp_path / "out").column("id").to_pylist())
    assert not data_ids & {r["id"] for r in rejects}


def test_truncated_and_engine_errors_are_rejects(tmp_path, seed_file):
    summary, _ = run(config(), seed_file, tmp_path / "out", FakeEngine("sts", finish_reason="length"))
    assert summary.rows == 0 and summary.reject_reasons == {"truncated": 10}


def test_bad_and_duplicate_seeds_are_rejected_without_calling_the_llm(tmp_path):
    seeds = tmp_path / "s.jsonl"
    seeds.write_text('{"text": "A cat naps in the sun."}\n{"text": "a cat naps in the sun"}\n{broken\n', encoding="utf-8")
    summary, engine = run(config(), seeds, tmp_path / "out")
    assert summary.rows == 1 and summary.reject_reasons == {"duplicate_anchor": 1, "seed_bad_json": 1}
    assert sum(len(b) for b in engine.batches) == 3  # one seed x three templates


@pytest.mark.parametrize("sentence_seeds", [True, False])
def test_headings_and_fragments_are_refused_before_the_llm_when_asked(tmp_path, sentence_seeds):
    seeds = tmp_path / "s.txt"
    seeds.write_text("A cat naps in the sun.\nList of Eagle Award nominees and winners\nin the second round.\n"
                     "Talbot Lake has a length of , a width of and an altitude of .\n", encoding="utf-8")
    summary, engine = run(config(**{"validation.sentence_seeds": sentence_seeds}), seeds, tmp_path / "out")
    if sentence_seeds:
        assert summary.rows == 1
        assert summary.reject_reasons == {"seed_heading": 1, "seed_fragment": 1, "seed_value_gap": 1}
        assert sum(len(b) for b in engine.batches) == 3  # only the sentence reached the engine
        rejects = read_rows(tmp_path / "out", "rejects").to_pylist()
        assert {r["anchor"] for r in rejects if r["reason"] == "seed_heading"} == {"List of Eagle Award nominees and winners"}
    else:
        assert summary.rows == 4 and summary.rejects == 0


def test_duplicate_outputs_across_rows_are_rejected(tmp_path, seed_file):
    summary, _ = run(config(), seed_file, tmp_path / "out", FakeEngine("sts", lambda n, a: good_reply(n, "same", "sts")))
    assert summary.rows == 1 and summary.reject_reasons == {"duplicate_output": 9}


def test_rerun_of_finished_run_is_a_noop(tmp_path, seed_file):
    run(config(), seed_file, tmp_path / "out")
    summary, engine = run(config(), seed_file, tmp_path / "out")
    assert summary.already_complete and engine.batches == [] and summary.rows == 10


def test_resume_regenerates_only_missing_corrupt_and_orphan_shards(tmp_path, seed_file):
    out = tmp_path / "out"
    run(config(), seed_file, out)
    before = read_rows(out).to_pylist()
    manifest = json.loads((out / "manifest.json").read_text())
    # shard 1: bytes flipped; shard 2: dropped from the manifest (crash before the manifest update)
    shard1 = out / "data" / "part-00001.parquet"
    blob = bytearray(shard1.read_bytes())
    blob[100] ^= 0xFF
    shard1.write_bytes(bytes(blob))
    manifest["shards"] = manifest["shards"][:2]
    (out / "manifest.json").write_text(json.dumps(manifest))
    summary, engine = run(config(), seed_file, out)
    assert summary.shards_skipped == 1 and summary.shards_written == 2
    assert [len(b) for b in engine.batches] == [12, 6]
    assert read_rows(out).to_pylist() == before


def test_different_config_is_refused_unless_overwrite(tmp_path, seed_file):
    run(config(), seed_file, tmp_path / "out")
    with pytest.raises(ResumeError, match="--overwrite"):
        run(config(**{"sampling.temperature": 0.7}), seed_file, tmp_path / "out")
    summary, _ = run(config(**{"sampling.temperature": 0.7}), seed_file, tmp_path / "out", overwrite=True)
    assert summary.rows == 10 and summary.shards_skipped == 0


def test_larger_limit_extends_a_finished_run(tmp_path, seed_file):
    run(config(limit=4), seed_file, tmp_path / "out")
    summary, engine = run(config(limit=10), seed_file, tmp_path / "out")
    assert summary.shards_skipped == 1 and summary.rows == 10 and len(engine.batches) == 2


def test_smaller_limit_on_a_finished_run_loses_nothing(tmp_path, seed_file):
    run(config(), seed_file, tmp_path / "out")
    before = read_rows(tmp_path / "out").to_pylist()
    summary, engine = run(config(limit=6), seed_file, tmp_path / "out")
    assert summary.already_complete and engine.batches == []
    assert read_rows(tmp_path / "out").to_pylist() == before


def test_n_samples_give_distinct_ids(tmp_path, seed_file):
    class TwoSamples(FakeEngine):
        def generate(self, requests):
            from dataclasses import replace

            first = super().generate(requests)
            second = [replace(c, text="Moreover " + c.text, sample_index=1) for c in first]
            return [c for pair in zip(first, second) for c in pair]

    summary, _ = run(config(limit=2, **{"sampling.n": 2}), seed_file, tmp_path / "out", TwoSamples("sts"))
    table = pq.read_table(tmp_path / "out" / "data" / "part-00000.parquet")
    assert summary.rows == 4 and sorted(table.column("sample_index").to_pylist()) == [0, 0, 1, 1]
    assert len(set(table.column("id").to_pylist())) == 4


# ---------------------------------------------------------------- streaming seeds


def test_seed_scan_fingerprints_like_the_whole_list_and_finds_repeats(tmp_path):
    from datagen.config import fingerprint
    from datagen.generation.run import scan_seeds

    texts = ["A cat sleeps.", "Ünïcode “quotes” and \\ backslash.", "a  CAT sleeps.", "Dogs bark.", "A cat sleeps."]
    path = tmp_path / "seeds.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    scan = scan_seeds(path)
    assert scan.count == 5
    assert scan.sha256 == fingerprint([" ".join(t.split()) for t in texts])  # as when the seeds were a list: old runs resume
    assert scan.duplicates == {2, 4}  # normalised repeats of seed 0; the first one is kept


def test_plan_chunks_covers_every_seed_once():
    chunks = plan_chunks(10, 4)
    assert [(c.index, c.seed_range) for c in chunks] == [(0, (0, 4)), (1, (4, 8)), (2, (8, 10))]
    assert plan_chunks(0, 4) == []


def test_seed_file_that_shrinks_during_a_run_is_a_clear_error(tmp_path, seed_file):
    """The seeds are streamed twice (scan, then generation); a file cut in between must not pass silently."""
    def truncate_then_build_engine(cfg, model):  # runs after the scan, before the second pass
        seed_file.write_text("\n".join(seed_file.read_text().splitlines()[:5]) + "\n")
        return FakeEngine("sts")

    with pytest.raises(InputError, match="changed during the run .*now 5 seeds, 10 when it started"):
        generate(config("sts", shard_rows=3), seed_file, tmp_path / "out", engine_factory=truncate_then_build_engine)
    rerun, _ = run(config("sts", shard_rows=3), seed_file, tmp_path / "out", overwrite=True)
    assert rerun.rows + rerun.rejects == 5
