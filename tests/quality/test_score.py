"""Scoring (datagen/scoring.py): pure lexical helpers, then a real shard scored with the real encoder.

The shards are written by the real pipeline writer (``datagen.generation.run.generate``) from hand-written
rows served by the scripted engine, so their contract is exactly that of a ``datagen sts|nli`` run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datagen.config import load_config
from datagen.errors import InputError, StorageError
from datagen.generation.run import generate
from datagen.quality.score import (
    distinct_n,
    edit_ratio,
    near_duplicate_rate,
    read_scores,
    score_dataset,
    token_jaccard,
    tokens,
    training_pairs,
)
from datagen.dataset.shards import LOCK, read_rows
from tests.support.fakes import FakeEngine

# Hand-written STS outputs per seed of the `seed_file` fixture (tests/conftest.py): three honest tiers, except
# the guitar row, whose "negative" is the positive with one word added (what the 0.5B model often writes).
STS_ROWS = {
    "A man is playing a guitar on a street corner.": (
        "On a street corner, a man plays the guitar.", "A man is playing music.",
        "On a street corner, a man happily plays the guitar."),
    "The bakery opens at six every morning.": (
        "Every morning at six, the bakery opens its doors.", "The bakery opens early.",
        "The hardware store closes at noon on Sundays."),
    "Two dogs are running along the beach.": (
        "A pair of dogs runs along the shore.", "Dogs are running.",
        "A cat is sleeping on a sofa indoors."),
    "The committee delayed its vote until next week.": (
        "The committee postponed its vote to next week.", "The committee delayed a vote.",
        "The orchestra performed a concert last night."),
    "A girl is painting a picture of a lighthouse.": (
        "A young girl paints a lighthouse picture.", "A girl is painting.",
        "A boy is fixing the chain of his bicycle."),
    "Heavy rain flooded the underground car park.": (
        "The underground car park was flooded by heavy rain.", "Rain caused flooding.",
        "The desert has not seen rain for many months."),
    "The old bridge was closed for repairs in May.": (
        "In May, the old bridge was shut so it could be repaired.", "The bridge was closed.",
        "A new shopping mall opened downtown in December."),
    "A chef is chopping onions in a small kitchen.": (
        "In a small kitchen, a chef chops onions.", "A chef is cooking.",
        "A pilot is landing a plane at a busy airport."),
    "Our train arrived twenty minutes early today.": (
        "Today our train got in twenty minutes ahead of schedule.", "The train was early.",
        "The football match was cancelled because of snow."),
    "Several students are studying in the quiet library.": (
        "In the quiet library, several students are studying.", "Students are studying.",
        "A crowd is cheering loudly at a rock concert."),
}
COPIED_NEGATIVE = "A man is playing a guitar on a street corner."
NOT_ONLY_ANCHOR = "A man is playing a guitar on a street corner."
NLI_NOT_ONLY = "A man is not playing a guitar on a street corner."


def sts_reply(name: str, anchor: str) -> str:
    positive, intermediate, negative = STS_ROWS[anchor]
    return json.dumps({"positive": positive, "intermediate": intermediate, "negative": negative})


def nli_reply(name: str, anchor: str) -> str:
    positive, _, negative = STS_ROWS[anchor]
    contradiction = NLI_NOT_ONLY if anchor == NOT_ONLY_ANCHOR else negative
    return json.dumps({"entailment": positive, "contradiction": contradiction})


def build_dataset(out: Path, seeds: Path, task: str, reply, monkeypatch) -> Path:
    """A real output dir (shards, rejects, manifest) written by the pipeline from scripted replies."""
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha-" + name))
    config = load_config(None, {"task": task, "mode": "joint", "shard_rows": 4})
    generate(config, seeds, out, engine_factory=lambda c, m: FakeEngine(task, reply))
    return out


# --- pure helpers ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("left, right, expected", [
    ("", "", 1.0),
    ("A cat sat.", "A cat sat.", 1.0),
    ("A cat sat.", "a CAT sat .", 1.0),  # case and spacing do not count
    ("red green", "blue yellow", 0.0),
    ("a b c", "a b d", 0.5),
    ("Łódź is big.", "Łódź is small.", 3 / 5),  # unicode words are words
])
def test_token_jaccard(left, right, expected):
    assert token_jaccard(left, right) == pytest.approx(expected)


def test_edit_ratio_exposes_an_inserted_not_more_than_jaccard_on_reordering():
    anchor = "The man is playing a guitar."
    assert edit_ratio(anchor, "The man is not playing a guitar.") == pytest.approx(14 / 15)
    reordered = "A guitar is playing the man."  # same token set, different order
    assert token_jaccard(anchor, reordered) == 1.0 and edit_ratio(anchor, reordered) < 0.75
    assert edit_ratio("", "") == 1.0 and edit_ratio("abc", "") == 0.0


def test_tokens_split_punctuation_and_contractions():
    assert tokens("Isn't it, Bob?") == ["isn", "'", "t", "it", ",", "bob", "?"]


@pytest.mark.parametrize("sentences, n, expected", [
    ([], 1, 0.0),
    (["a"], 2, 0.0),  # no bigram at all
    (["a b c"], 1, 1.0),
    (["a a a a"], 1, 0.25),
    (["a b", "a b"], 2, 0.5),
    (["a b c", "b c d"], 2, 3 / 4),
])
def test_distinct_n(sentences, n, expected):
    assert distinct_n(sentences, n) == pytest.approx(expected)


def test_near_duplicates_ignore_sentences_of_the_same_row():
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    assert near_duplicate_rate(vectors, np.array([0, 0, 1, 2])) == 0.0  # the only twins share a row
    assert near_duplicate_rate(vectors, np.array([0, 1, 2, 3])) == pytest.approx(0.5)
    assert near_duplicate_rate(vectors, np.array([0, 1, 2, 3]), block=1) == pytest.approx(0.5)


def test_training_pairs_use_the_intermediate_as_the_sts_positive():
    rows = {"anchor": ["a0", "a1"], "positive": ["p0", "p1"], "intermediate": ["i0", "i1"],
            "negative": ["n0", "a1"]}
    anchors, positives, flattened = training_pairs("sts", rows)
    assert anchors == ["a0", "a1"] and positives == ["i0", "i1"]
    assert flattened == ["a0", "i0", "p0", "n0", "a1", "i1", "p1"]  # row order, repeats within a row dropped


# --- the stage, real encoder ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sts_scored(tmp_path_factory, minilm):
    monkeypatch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("scoring")
    seeds = root / "seeds.txt"
    seeds.write_text("\n".join(STS_ROWS) + "\n", encoding="utf-8")
    out = build_dataset(root / "sts", seeds, "sts", sts_reply, monkeypatch)
    monkeypatch.undo()
    summary = score_dataset(out, encoder=minilm)
    return out, summary


@pytest.mark.model
def test_score_writes_one_sidecar_row_per_data_row(sts_scored):
    out, summary = sts_scored
    data, scores = read_rows(out), read_scores(out)
    assert scores.column("id").to_pylist() == data.column("id").to_pylist()
    assert sorted(p.name for p in (out / "scores").iterdir()) == sorted(p.name for p in (out / "data").iterdir())
    for column in ["cos_pos", "cos_int", "cos_neg", "margin_pos_int", "margin_int_neg", "margin", "tier_ok",
                   "jaccard_pos", "jaccard_int", "jaccard_neg", "edit_pos", "edit_int", "edit_neg", "overlap"]:
        assert column in scores.column_names
    assert summary["rows"] == 10 and summary["acceptance_rate"] == 1.0


@pytest.mark.model
def test_a_copied_negative_fails_the_tier_order_and_honest_rows_pass(sts_scored):
    out, summary = sts_scored
    rows = {r["anchor"]: r for r in read_rows(out).to_pylist()}
    scores = {r["id"]: r for r in read_scores(out).to_pylist()}
    copied = scores[rows[COPIED_NEGATIVE]["id"]]
    assert not copied["tier_ok"] and copied["cos_neg"] > copied["cos_int"] and copied["margin"] < 0
    honest = scores[rows["Two dogs are running along the beach."]["id"]]
    assert honest["tier_ok"] and honest["cos_pos"] > honest["cos_int"] > honest["cos_neg"]
    passing = sum(r["tier_ok"] for r in scores.values())
    assert summary["tier_consistency_rate"] == pytest.approx(passing / 10) and passing < 10


@pytest.mark.model
def test_manifest_carries_the_dataset_summary(sts_scored):
    out, summary = sts_scored
    stored = json.loads((out / "manifest.json").read_text())["scores"]
    assert stored["tier_consistency_rate"] == summary["tier_consistency_rate"]
    assert set(stored["margins"]) == {"margin_pos_int", "margin_int_neg", "margin"}
    assert set(stored["margins"]["margin"]) == {"mean", "min", "p05", "p25", "p50", "p75", "p95", "max"}
    assert 0 < stored["diversity"]["distinct_1"] <= stored["diversity"]["distinct_2"] <= 1
    difficulty = stored["difficulty"]
    assert difficulty["stsb_dev"]["pairs"] > 100 and difficulty["stsb_dev"]["uniformity_sentences"] == 1000
    assert difficulty["delta_alignment"] == pytest.approx(
        difficulty["generated"]["alignment"] - difficulty["stsb_dev"]["alignment"], abs=1e-3)
    assert [f["path"] for f in stored["files"]] == [f"scores/part-{i:05d}.parquet" for i in range(3)]


@pytest.mark.model
def test_rescoring_replaces_the_sidecar(sts_scored, minilm):
    out, first = sts_scored
    (out / "scores" / "part-00099.parquet").write_bytes(b"stale")  # a file no current score vouches for
    again = score_dataset(out, encoder=minilm)
    assert not (out / "scores" / "part-00099.parquet").exists()
    assert again["tier_consistency_rate"] == first["tier_consistency_rate"]
    assert not any(p.name.startswith(".scores") for p in out.iterdir())


@pytest.mark.model
def test_not_only_contradiction_has_high_overlap(tmp_path, seed_file, monkeypatch, minilm):
    out = build_dataset(tmp_path / "nli", seed_file, "nli", nli_reply, monkeypatch)
    summary = score_dataset(out, encoder=minilm)
    rows = {r["anchor"]: r["id"] for r in read_rows(out).to_pylist()}
    scores = {r["id"]: r for r in read_scores(out).to_pylist()}
    trivial = scores[rows[NOT_ONLY_ANCHOR]]
    assert trivial["edit_con"] > 0.9 and trivial["jaccard_con"] >= 0.9 and trivial["overlap"] > 0.9
    others = [s["edit_con"] for anchor, i in rows.items() if anchor != NOT_ONLY_ANCHOR for s in [scores[i]]]
    assert max(others) < 0.5
    assert {"cos_ent", "cos_con", "margin_ent_con", "tier_ok"} <= set(scores[rows[NOT_ONLY_ANCHOR]])
    assert summary["overlap"]["contradiction"]["max"] == pytest.approx(trivial["edit_con"], abs=1e-4)


def test_score_refuses_a_dir_without_manifest(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(InputError, match="no manifest"):
        score_dataset(tmp_path, encoder="minilm")


def test_score_refuses_a_dir_locked_by_a_live_run(tmp_path, seed_file, monkeypatch):
    out = build_dataset(tmp_path / "sts", seed_file, "sts", sts_reply, monkeypatch)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / LOCK).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        with pytest.raises(StorageError, match="in use by another datagen run"):
            score_dataset(out, encoder="minilm")
        assert not (out / "scores").exists()
    finally:
        holder.kill()
        holder.wait()


def test_score_cli_prints_one_line_errors(tmp_path):
    from typer.testing import CliRunner

    from datagen.cli import app

    result = CliRunner().invoke(app, ["score", str(tmp_path)])
    assert result.exit_code == 2 and "no manifest.json" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.model
def test_a_task_with_one_output_scores_filters_and_exports(tmp_path, seed_file, monkeypatch, minilm):
    """pairs: no tier order to hold, so no margin columns; overlap filtering and export still work."""
    from datagen.dataset.export import export_ngcse_jsonl
    from datagen.quality.filter import FilterSpec, filter_dataset
    from tests.support.fakes import good_reply

    def reply(name, anchor):  # joint mode: one JSON object per seed; the dogs' "paraphrase" is the anchor + 1 word
        if "dogs" in anchor:
            return json.dumps({"positive": anchor.replace(".", " indeed.")})
        return good_reply(name, anchor, "pairs")

    out = build_dataset(tmp_path / "pairs", seed_file, "pairs", reply, monkeypatch)
    summary = score_dataset(out, encoder=minilm)
    scores = read_scores(out)
    assert {"cos_pos", "jaccard_pos", "edit_pos", "overlap"} <= set(scores.column_names)
    assert not {"margin", "tier_ok"} & set(scores.column_names)
    assert summary["tier_consistency_rate"] is None and summary["margins"] == {}
    kept = filter_dataset(out, tmp_path / "kept", FilterSpec(max_overlap=0.9))
    assert kept.filtered == {"filtered_overlap": 1} and kept.kept == summary["rows"] - 1
    with pytest.raises(InputError, match="has one output"):
        filter_dataset(out, tmp_path / "tiers", FilterSpec(require_tier_order=True))
    lines = export_ngcse_jsonl(tmp_path / "kept", tmp_path / "train.jsonl")
    first = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])
    assert lines == kept.kept and first["5"] and first["4"] == "" and first["split"] == "aigen"
