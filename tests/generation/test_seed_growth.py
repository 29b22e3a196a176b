"""A seed file that grows, shrinks or changes: a rerun keeps the shards whose own seeds still hold and
generates only what they leave uncovered. Each case is checked against a run made from scratch on the final
seed file. The scripted engine isolates the planning; tests/generation/test_real_engine.py runs it on vLLM."""

import json
import random

import pytest

from datagen.config import load_config
from datagen.dataset.shards import read_rows
from datagen.errors import ResumeError
from datagen.generation.run import generate
from tests.support.fakes import FakeEngine

SENTENCES = [f"Sentence number {i} talks about a {colour} {thing}." for i, (colour, thing) in enumerate(
    [(c, t) for c in ("red", "blue", "green", "grey", "pink") for t in ("kite", "boat", "lamp", "door", "cup")])]


@pytest.fixture(autouse=True)
def no_model_preparation(monkeypatch):
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha-" + name))


def run(seeds, out, **overrides):
    engine = FakeEngine("nli")
    cfg = load_config(None, {"task": "nli", "shard_rows": 4, "mode": "separate", **overrides})
    summary = generate(cfg, seeds, out, engine_factory=lambda c, m: engine)
    return summary, engine


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def anchors_generated(engine) -> list[str]:
    return sorted({request.messages[-1]["content"] for batch in engine.batches for request in batch})


def rows_of(out) -> list[tuple]:
    """Every kept and rejected row as (id, anchor, reason, texts), sorted: what a from-scratch run must match."""
    data = [(r["id"], r["anchor"], None, r["entailment"], r["contradiction"]) for r in read_rows(out).to_pylist()]
    rejects = [(r["id"], r["anchor"], r["reason"], None, None) for r in read_rows(out, "rejects").to_pylist()]
    return sorted(data + rejects, key=repr)


def shard_files(out) -> dict[tuple[int, int], str]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {tuple(s["seed_range"]): s["data"]["sha256"] for s in manifest["shards"]}


def assert_matches_scratch(tmp_path, seeds, out):
    scratch = tmp_path / "scratch"
    run(seeds, scratch)
    assert rows_of(out) == rows_of(scratch)


def test_appending_to_a_full_last_shard_generates_only_the_new_seeds(tmp_path):
    seeds, out = write(tmp_path / "s.txt", SENTENCES[:8]), tmp_path / "out"
    run(seeds, out)
    before = shard_files(out)
    write(seeds, SENTENCES[:11])
    summary, engine = run(seeds, out)
    assert anchors_generated(engine) == sorted(SENTENCES[8:11])
    assert summary.shards_skipped == 2 and summary.shards_written == 1 and not summary.already_complete
    assert "kept 2 shards (8 seeds)" in summary.resume_note and "generating 3 seeds" in summary.resume_note
    assert {k: v for k, v in shard_files(out).items() if k in before} == before  # old shards untouched
    assert_matches_scratch(tmp_path, seeds, out)


def test_appending_to_a_partial_last_shard_keeps_it(tmp_path):
    seeds, out = write(tmp_path / "s.txt", SENTENCES[:10]), tmp_path / "out"
    run(seeds, out)
    write(seeds, SENTENCES[:13])
    summary, engine = run(seeds, out)
    assert anchors_generated(engine) == sorted(SENTENCES[10:13])
    assert sorted(shard_files(out)) == [(0, 4), (4, 8), (8, 10), (10, 13)]
    assert_matches_scratch(tmp_path, seeds, out)


def test_editing_a_middle_line_regenerates_only_its_shard(tmp_path):
    seeds, out = write(tmp_path / "s.txt", SENTENCES[:12]), tmp_path / "out"
    run(seeds, out)
    before = shard_files(out)
    edited = list(SENTENCES[:12])
    edited[5] = "A brand new sentence replaced the sixth line."
    write(seeds, edited)
    summary, engine = run(seeds, out)
    assert anchors_generated(engine) == sorted(edited[4:8])
    assert "dropped 1 shards: their seeds changed" in summary.resume_note
    assert "regenerating 4 seeds" in summary.resume_note
    after = shard_files(out)
    assert after[(0, 4)] == before[(0, 4)] and after[(8, 12)] == before[(8, 12)] and after[(4, 8)] != before[(4, 8)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["index"] for s in manifest["shards"]] == [0, 1, 2]  # the regenerated range takes its index back
    assert [r["anchor"] for r in read_rows(out).to_pylist()] == edited  # rows stay in seed order
    assert_matches_scratch(tmp_path, seeds, out)


def test_truncating_drops_the_shards_past_the_end(tmp_path):
    seeds, out = write(tmp_path / "s.txt", SENTENCES[:12]), tmp_path / "out"
    run(seeds, out)
    write(seeds, SENTENCES[:8])
    summary, engine = run(seeds, out)
    assert engine.batches == [] and not summary.already_complete
    assert summary.rows == 8 and summary.shards_skipped == 2
    assert "dropped 1 shards: past the end of the seed file (now 8 seeds)" in summary.resume_note
    assert not (out / "data" / "part-00002.parquet").exists()
    assert_matches_scratch(tmp_path, seeds, out)


def test_truncating_inside_a_shard_regenerates_what_is_left_of_it(tmp_path):
    seeds, out = write(tmp_path / "s.txt", SENTENCES[:12]), tmp_path / "out"
    run(seeds, out)
    write(seeds, SENTENCES[:6])
    summary, engine = run(seeds, out)
    assert anchors_generated(engine) == sorted(SENTENCES[4:6])
    assert sorted(shard_files(out)) == [(0, 4), (4, 6)]
    assert_matches_scratch(tmp_path, seeds, out)


def test_an_edit_that_makes_a_later_seed_a_repeat_regenerates_that_seeds_shard_too(tmp_path):
    seeds, out = write(tmp_path / "s.txt", SENTENCES[:12]), tmp_path / "out"
    run(seeds, out)
    edited = list(SENTENCES[:12])
    edited[1] = SENTENCES[10]  # line 10 now repeats an earlier anchor: a duplicate_anchor reject
    write(seeds, edited)
    summary, engine = run(seeds, out)
    assert anchors_generated(engine) == sorted(set(edited[0:4]) | set(edited[8:10]) | {edited[11]})
    assert summary.reject_reasons == {"duplicate_anchor": 1}
    assert_matches_scratch(tmp_path, seeds, out)


def test_a_rerun_on_unchanged_seeds_is_still_a_noop(tmp_path):
    seeds, out = write(tmp_path / "s.txt", SENTENCES[:9]), tmp_path / "out"
    run(seeds, out)
    summary, engine = run(seeds, out)
    assert summary.already_complete and engine.batches == []
    assert summary.resume_note == "kept 3 shards (9 seeds) whose seeds are unchanged"


def test_a_config_change_is_still_refused(tmp_path):
    seeds, out = write(tmp_path / "s.txt", SENTENCES[:9]), tmp_path / "out"
    run(seeds, out)
    write(seeds, SENTENCES[:12])
    with pytest.raises(ResumeError, match="--overwrite"):
        run(seeds, out, **{"sampling.temperature": 0.5})


@pytest.mark.parametrize("trial", range(8))
def test_random_edits_appends_and_truncations_match_a_run_from_scratch(tmp_path, trial):
    rng = random.Random(trial)
    lines = list(SENTENCES[: rng.randint(3, 14)])
    seeds, out = write(tmp_path / "s.txt", lines), tmp_path / "out"
    run(seeds, out)
    for step in range(4):
        change = rng.choice(["append", "edit", "truncate", "repeat"])
        if change == "append":
            lines += [f"Appended line {step} number {k} in trial {trial}." for k in range(rng.randint(1, 6))]
        elif change == "edit":
            lines[rng.randrange(len(lines))] = f"Edited line {step} in trial {trial}."
        elif change == "truncate" and len(lines) > 1:
            lines = lines[: rng.randint(1, len(lines) - 1)]
        else:
            lines[rng.randrange(len(lines))] = rng.choice(lines)
        write(seeds, lines)
        run(seeds, out)
    assert_matches_scratch(tmp_path, seeds, out)
    manifest = json.loads((out / "manifest.json").read_text())
    ranges = sorted(tuple(s["seed_range"]) for s in manifest["shards"])
    assert [r[0] for r in ranges] == [0] + [r[1] for r in ranges[:-1]] and ranges[-1][1] == len(lines)
