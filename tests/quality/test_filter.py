"""Filtering (datagen/filtering.py): a scored real shard in, a dataset with the same contract out."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from datagen.cli import app
from datagen.errors import InputError, ResumeError
from datagen.quality.filter import FilterSpec, filter_dataset, filter_reason
from datagen.dataset.inspect import inspect_output
from datagen.quality.score import read_scores, score_dataset
from datagen.dataset.shards import read_rows, verify_file
from datagen.train.data import read_shard_rows
from tests.quality.test_score import NOT_ONLY_ANCHOR, build_dataset, nli_reply, sts_reply


@pytest.mark.parametrize("scores, spec, expected", [
    ({"tier_ok": False, "margin": -0.1, "overlap": 0.2}, FilterSpec(), None),
    ({"tier_ok": False, "margin": -0.1, "overlap": 0.2}, FilterSpec(require_tier_order=True), "filtered_tier_order"),
    ({"tier_ok": True, "margin": 0.01, "overlap": 0.2}, FilterSpec(min_margin=0.05), "filtered_margin"),
    ({"tier_ok": True, "margin": 0.05, "overlap": 0.2}, FilterSpec(min_margin=0.05), None),  # the bound is kept
    ({"tier_ok": True, "margin": 0.2, "overlap": 0.95}, FilterSpec(max_overlap=0.9), "filtered_overlap"),
    ({"tier_ok": False, "margin": -0.2, "overlap": 0.95},
     FilterSpec(require_tier_order=True, min_margin=0.0, max_overlap=0.9), "filtered_tier_order"),  # first reason
])
def test_filter_reason(scores, spec, expected):
    assert filter_reason(scores, spec) == expected


@pytest.fixture
def scored_sts(tmp_path, seed_file, monkeypatch, minilm):
    out = build_dataset(tmp_path / "sts", seed_file, "sts", sts_reply, monkeypatch)
    score_dataset(out, encoder=minilm)
    return out


@pytest.mark.model
def test_filter_keeps_exactly_the_rows_that_pass_and_writes_a_valid_dataset(scored_sts, tmp_path):
    passing = [r["id"] for r in read_scores(scored_sts).to_pylist() if r["tier_ok"]]
    failing = [r["id"] for r in read_scores(scored_sts).to_pylist() if not r["tier_ok"]]
    assert passing and failing
    summary = filter_dataset(scored_sts, tmp_path / "kept", FilterSpec(require_tier_order=True))
    kept = read_rows(tmp_path / "kept")
    assert kept.column("id").to_pylist() == passing and summary.kept == len(passing)
    parent_rows = {r["id"]: r for r in read_rows(scored_sts).to_pylist()}
    assert kept.to_pylist() == [parent_rows[i] for i in passing]  # rows copied unchanged
    rejects = [r for r in read_rows(tmp_path / "kept", "rejects").to_pylist() if r["stage"] == "filter"]
    assert [r["id"] for r in rejects] == failing and {r["reason"] for r in rejects} == {"filtered_tier_order"}
    assert json.loads(rejects[0]["raw"])["scores"]["tier_ok"] is False

    manifest = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    parent = json.loads((scored_sts / "manifest.json").read_text())
    assert manifest["parent"] == {"path": str(scored_sts.resolve()), "fingerprint": parent["fingerprint"],
                                  "encoder": parent["scores"]["encoder"]}
    assert manifest["filter"] == {"require_tier_order": True, "min_margin": None, "max_overlap": None, "min_judge": None,
                                  "min_judge_by_relation": {}, "min_judge_by_check": {}, "best_per_seed": False,
                                  "recheck": {}, "max_samples": None}
    assert manifest["fingerprint"] != parent["fingerprint"] and "scores" not in manifest
    assert manifest["counts"]["reject_reasons"] == {"filtered_tier_order": len(failing)}
    assert all(verify_file(tmp_path / "kept", s[kind]) for s in manifest["shards"] for kind in ("data", "rejects"))

    report = inspect_output(tmp_path / "kept")  # what `datagen inspect` shows
    assert report["rows"] == len(passing) and report["acceptance_rate"] == pytest.approx(len(passing) / 10)
    train_rows = read_shard_rows(tmp_path / "kept", "sts")  # what `datagen train` reads
    assert [r.anchor for r in train_rows] == [parent_rows[i]["anchor"] for i in passing]
    assert score_dataset(tmp_path / "kept", encoder="minilm")["tier_consistency_rate"] == 1.0  # and it scores again


@pytest.mark.model
def test_max_overlap_drops_a_not_only_contradiction(tmp_path, seed_file, monkeypatch, minilm):
    out = build_dataset(tmp_path / "nli", seed_file, "nli", nli_reply, monkeypatch)
    score_dataset(out, encoder=minilm)
    summary = filter_dataset(out, tmp_path / "kept", FilterSpec(max_overlap=0.9))
    assert summary.filtered == {"filtered_overlap": 1} and summary.kept == 9
    assert NOT_ONLY_ANCHOR not in read_rows(tmp_path / "kept").column("anchor").to_pylist()
    assert len(read_shard_rows(tmp_path / "kept", "nli")) == 9


def test_filter_refuses_an_unscored_dataset(tmp_path, seed_file, monkeypatch):
    out = build_dataset(tmp_path / "sts", seed_file, "sts", sts_reply, monkeypatch)
    with pytest.raises(InputError, match=r"run `datagen score .*` first"):
        filter_dataset(out, tmp_path / "kept", FilterSpec(require_tier_order=True))
    result = CliRunner().invoke(app, ["filter", str(out), "--out", str(tmp_path / "kept"), "--require-tier-order"])
    assert result.exit_code == 2 and "datagen score" in result.output and not (tmp_path / "kept" / "data").exists()


@pytest.mark.model
def test_filter_refuses_stale_scores_and_an_occupied_destination(scored_sts, tmp_path):
    filter_dataset(scored_sts, tmp_path / "kept", FilterSpec())
    with pytest.raises(ResumeError, match="--overwrite"):
        filter_dataset(scored_sts, tmp_path / "kept", FilterSpec(min_margin=0.0))
    assert filter_dataset(scored_sts, tmp_path / "kept", FilterSpec(), overwrite=True).kept == 10
    sidecar = sorted((scored_sts / "scores").glob("part-*.parquet"))[0]
    sidecar.write_bytes(sidecar.read_bytes() + b"x")  # not the file the manifest vouches for
    with pytest.raises(InputError, match="score .* again"):
        filter_dataset(scored_sts, tmp_path / "other", FilterSpec())


@pytest.mark.model
def test_filter_and_score_cli(scored_sts, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["filter", str(scored_sts), "--out", str(tmp_path / "kept"),
                                 "--require-tier-order", "--min-margin", "0"])
    assert result.exit_code == 0, result.output
    assert "kept" in result.output and "filtered_tier_order" in result.output
    result = runner.invoke(app, ["score", str(tmp_path / "kept"), "--json", "--report", str(tmp_path / "png")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "score_cosines.png", "score_margins.png", "score_overlap.png", "score_reject_reasons.png"]
    assert (tmp_path / "png" / "score_margins.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recheck_applies_a_later_check_to_existing_rows_without_scores_or_judge(tmp_path, seed_file, monkeypatch):
    out = build_dataset(tmp_path / "sts", seed_file, "sts", sts_reply, monkeypatch)
    spec = FilterSpec(recheck={"close_paraphrase_outputs": ["positive"], "max_reworded_words": 2})
    summary = filter_dataset(out, tmp_path / "kept", spec)
    # The four positives that reword more than two content words ("delayed ... until" -> "postponed ... to").
    reworded = {"The committee delayed its vote until next week.", "The old bridge was closed for repairs in May.",
                "Two dogs are running along the beach.",
                "Our train arrived twenty minutes early today."}
    assert summary.filtered == {"filtered_recheck": 4} and summary.kept == 6
    assert not reworded & set(read_rows(tmp_path / "kept").column("anchor").to_pylist())
    rejects = [r for r in read_rows(tmp_path / "kept", "rejects").to_pylist() if r["stage"] == "filter"]
    assert {r["anchor"] for r in rejects} == reworded
    failed = json.loads(rejects[0]["raw"])["recheck"]
    assert failed["reason"] == "rewords_too_much" and failed["field"] == "positive" and "at most 2" in failed["message"]
    manifest = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    assert manifest["filter"]["recheck"] == spec.recheck and "judge_model" not in manifest["parent"]
    # The parent's own settings stay under the recheck: the budget alone names no output, so nothing is dropped.
    assert filter_dataset(out, tmp_path / "budget", FilterSpec(recheck={"max_reworded_words": 2})).kept == 10


@pytest.mark.parametrize("values, message", [
    (["close_paraphrase_outputs"], "write OPTION=VALUE"),
    (["no_such_check=positive"], "write OPTION=VALUE"),
    (["max_reworded_words=many"], "max_reworded_words"),
])
def test_recheck_refuses_a_malformed_option_with_the_fix_and_writes_nothing(tmp_path, seed_file, monkeypatch,
                                                                           values, message):
    out = build_dataset(tmp_path / "sts", seed_file, "sts", sts_reply, monkeypatch)
    args = ["filter", str(out), "--out", str(tmp_path / "kept")]
    for value in values:
        args += ["--recheck", value]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output and "ValidationConfig" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "kept" / "data").exists()


def test_recheck_cli_drops_what_the_option_names(tmp_path, seed_file, monkeypatch):
    out = build_dataset(tmp_path / "sts", seed_file, "sts", sts_reply, monkeypatch)
    result = CliRunner().invoke(app, ["filter", str(out), "--out", str(tmp_path / "kept"), "--recheck",
                                      "close_paraphrase_outputs=positive,intermediate", "--recheck",
                                      "max_reworded_words=2"])
    assert result.exit_code == 0, result.output
    assert "filtered_recheck" in result.output
    manifest = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    assert manifest["filter"]["recheck"] == {"close_paraphrase_outputs": ["positive", "intermediate"],
                                             "max_reworded_words": "2"}
