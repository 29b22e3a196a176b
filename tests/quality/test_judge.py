"""The judge stage with a scripted logprobs engine (the real vLLM and server runs: test_judge_real.py)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from typer.testing import CliRunner

from datagen.cli import app
from datagen.config import load_config
from datagen.dataset.imports import import_rows
from datagen.dataset.shards import read_rows
from datagen.errors import ConfigError, InputError, TemplateError
from datagen.generation.run import generate
from datagen.quality.filter import FilterSpec, filter_dataset
from datagen.quality.judge import JUDGE, JudgeConfig, judge_dataset, judge_requests, load_judge_plan
from datagen.engines.base import Completion
from tests.support.fakes import FakeEngine, FakeJudge

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_model_preparation(monkeypatch):
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha-" + name))


def nli_p_yes(question: str) -> float | None:
    """Good fake rows pass, except the dogs' entailment; the lighthouse row gets no yes/no answer."""
    if "lighthouse" in question:
        return None
    if "claim anything" in question:  # `says_more`: the fake entailment claims nothing new, P(no) 0.9
        return 0.1
    if "Something related" in question:  # the fake entailment
        return 0.2 if "dogs" in question else 0.9
    if "true, false or unknown" in question:  # the three-way question: P(true) 0.2, so P(false) 0.8
        return 0.2
    return 0.1 if question.startswith("Premise:") else 0.8  # the fake contradiction: not entailed, contradicts


def make_nli(out: Path, seeds: Path, n: int = 1) -> Path:
    config = load_config(None, {"task": "nli", "mode": "joint", "shard_rows": 4, "sampling.n": n})
    engine = SampledEngine(n) if n > 1 else FakeEngine("nli")
    generate(config, seeds, out, engine_factory=lambda c, m: engine)
    return out


class SampledEngine(FakeEngine):
    """``n`` distinct samples per request (take 1, take 2, ...), as ``SamplingParams(n=...)`` gives."""

    def __init__(self, n: int):
        super().__init__("nli")
        self.n = n

    def generate(self, requests):
        completions = []
        for request in requests:
            anchor = request.messages[-1]["content"]
            for take in range(1, self.n + 1):
                text = json.dumps({"entailment": f"Something related to {anchor} happens, take {take}.",
                                   "contradiction": f"Nobody ever saw take {take}: " + anchor.lower()})
                completions.append(Completion(request.request_id, text, "stop", 100, 20, sample_index=take - 1))
        return completions


def judge(out: Path, p_yes=nli_p_yes, **config) -> tuple:
    engine = FakeJudge(p_yes)
    summary = judge_dataset(out, JudgeConfig(model="qwen2.5-0.5b", **config), engine_factory=lambda c, m: engine)
    return summary, engine


def test_judge_writes_one_part_per_data_shard_keyed_by_id(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file)
    summary, engine = judge(out)
    plan = load_judge_plan("nli")
    assert len(engine.requests) == 10 * plan.requests_per_row and engine.closed
    data, judged = read_rows(out), read_rows(out, JUDGE)
    assert judged.column("id").to_pylist() == data.column("id").to_pylist()
    assert sorted(p.name for p in (out / JUDGE).iterdir()) == sorted(p.name for p in (out / "data").iterdir())
    rows = {r["anchor"]: r for r in data.to_pylist()}
    by_id = {r["id"]: r for r in judged.to_pylist()}
    dogs = by_id[rows["Two dogs are running along the beach."]["id"]]
    assert dogs["p_entailment_entailed"] == pytest.approx(0.2) and dogs["judge_min"] == pytest.approx(0.2)
    good = by_id[rows["The bakery opens at six every morning."]["id"]]
    assert good["judge_contradiction"] == pytest.approx(min(0.9, 0.8)) and good["judge_min"] == pytest.approx(0.8)
    # a check that wants "no" (`says_more`) reads P(no): the fake's P(yes) 0.1; the relation takes its smallest check
    assert good["p_entailment_says_no_more"] == pytest.approx(0.9)
    assert good["judge_entailment"] == pytest.approx(min(good["p_entailment_entailed"], 0.9))
    assert math.isnan(by_id[rows["A girl is painting a picture of a lighthouse."]["id"]]["judge_min"])
    section = json.loads((out / "manifest.json").read_text())["judge"]
    assert section["rows"] == 10 and section["unanswered_checks"] == len(plan.checks)  # the lighthouse row's
    assert section["model"]["name"] == "qwen2.5-0.5b"
    assert section["pass_rates"]["p50"]["judge_min"] == pytest.approx(0.8)
    assert summary.shards_judged == 3 and summary.shards_kept == 0


def test_questions_share_a_byte_identical_prefix_and_end_with_the_pair(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file)
    rows = read_rows(out).to_pylist()[:2]
    requests = judge_requests(load_judge_plan("nli"), rows)
    entailed = [r for r in requests if r.request_id.endswith("/entailment_entailed")]
    assert entailed[0].messages[:-1] == entailed[1].messages[:-1]
    assert entailed[0].messages[-1]["content"].startswith(f"Premise: {rows[0]['anchor']}\nHypothesis: ")


def test_rerun_keeps_current_parts_and_judges_only_what_is_missing(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file)
    judge(out)
    again, engine = judge(out)
    assert engine.requests == [] and again.shards_kept == 3 and again.shards_judged == 0
    (out / JUDGE / "part-00001.parquet").unlink()
    again, engine = judge(out)
    assert again.shards_judged == 1 and len(engine.requests) == 4 * load_judge_plan("nli").requests_per_row  # shard 1: 4 rows


def test_other_judge_templates_rejudge_everything(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file)
    judge(out)
    custom = tmp_path / "templates"
    import shutil

    shutil.copytree(REPO / "datagen" / "prompts", custom)
    (custom / "judge" / "entails.jinja").write_text(
        (custom / "judge" / "entails.jinja").read_text().replace("Answer with one word", "Reply with one word"))
    summary, engine = judge(out, templates_dir=str(custom))
    assert summary.shards_judged == 3 and len(engine.requests) == 10 * load_judge_plan("nli").requests_per_row


def custom_templates(tmp_path: Path) -> Path:
    import shutil

    custom = tmp_path / "templates"
    shutil.copytree(REPO / "datagen" / "prompts", custom)
    return custom


def test_a_three_way_question_scores_the_wanted_answer_against_both_others(tmp_path):
    from datagen.engines.base import FirstTokenLogprobs, TokenLogprob
    from datagen.quality.judge import wanted_share

    plan = load_judge_plan("nli")
    assert plan.questions["truth"].answers == ("true", "false", "unknown")
    check = next(c for c in plan.checks if c.question == "truth")
    top = (TokenLogprob("false", math.log(0.5)), TokenLogprob("True", math.log(0.2)), TokenLogprob(" unknown", math.log(0.3)))
    assert wanted_share(plan, check, FirstTokenLogprobs("x", top)) == pytest.approx(0.5)  # 0.5 / (0.5 + 0.2 + 0.3)
    assert wanted_share(plan, check, FirstTokenLogprobs("x", (TokenLogprob("maybe", 0.0),))) is None
    assert wanted_share(plan, check, FirstTokenLogprobs("x", top, error="boom")) is None


def test_a_check_wanting_an_answer_its_question_cannot_give_is_refused(tmp_path):
    custom = custom_templates(tmp_path)
    plan = custom / "nli" / "judge.jinja"
    plan.write_text(plan.read_text().replace('"question": "truth", "premise": "anchor", "hypothesis": "contradiction", "want": "false"',
                                             '"question": "truth", "premise": "anchor", "hypothesis": "contradiction", "want": "yes"'))
    with pytest.raises(TemplateError, match="wants 'yes', which question 'truth' cannot answer"):
        load_judge_plan("nli", custom)


def test_a_question_with_malformed_answers_is_refused(tmp_path):
    custom = custom_templates(tmp_path)
    question = custom / "judge" / "truth.jinja"
    question.write_text(question.read_text().replace('{%- set answers = ["true", "false", "unknown"] -%}',
                                                     '{%- set answers = ["true"] -%}'))
    with pytest.raises(TemplateError, match="`answers` must list at least two"):
        load_judge_plan("nli", custom)


def test_an_either_way_check_asks_both_ways_and_keeps_the_larger_probability():
    from datagen.quality.judge import check_probabilities

    plan = load_judge_plan("nli")
    check = next(c for c in plan.checks if c.relation == "contradiction")
    assert check.either_way and plan.requests_per_row == len(plan.checks) + 1
    rows = [{"id": f"r{i}", "anchor": f"Anchor {i}.", "entailment": f"Entailed {i}.", "contradiction": f"Denied {i}."}
            for i in range(4)]
    requests = {r.request_id: r.messages[-1]["content"] for r in judge_requests(plan, rows)}
    assert requests["r0/contradiction_false"].startswith("Premise: Anchor 0.\nHypothesis: Denied 0.")
    assert requests["r0/contradiction_false~reversed"].startswith("Premise: Denied 0.\nHypothesis: Anchor 0.")
    assert "r0/entailment_entailed~reversed" not in requests  # entailment is one way only
    answers = {"r0/contradiction_false": 0.3, "r0/contradiction_false~reversed": 0.9,  # seen from the other side
               "r1/contradiction_false": 0.7, "r1/contradiction_false~reversed": 0.2,
               "r2/contradiction_false": None, "r2/contradiction_false~reversed": 0.6,  # one side unanswered
               "r3/contradiction_false": None, "r3/contradiction_false~reversed": None}
    columns = check_probabilities(plan, rows, answers | {f"r{i}/entailment_entailed": 1.0 for i in range(4)})
    assert columns["p_contradiction_false"][:3].tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert math.isnan(columns["p_contradiction_false"][3]) and math.isnan(columns["judge_min"][3])


@pytest.mark.parametrize("value", ['"yes"', "1"])
def test_a_check_with_a_malformed_either_way_is_refused(tmp_path, value):
    custom = custom_templates(tmp_path)
    plan = custom / "nli" / "judge.jinja"
    plan.write_text(plan.read_text().replace('"either_way": true', f'"either_way": {value}'))
    with pytest.raises(TemplateError, match="may set either_way"):
        load_judge_plan("nli", custom)


def test_filter_min_judge_drops_rows_with_their_probabilities(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file)
    judge(out)
    summary = filter_dataset(out, tmp_path / "kept", FilterSpec(min_judge=0.5))
    assert summary.kept == 8 and summary.filtered == {"filtered_judge": 2}  # the dogs (0.2), the lighthouse (NaN)
    rejects = [r for r in read_rows(tmp_path / "kept", "rejects").to_pylist() if r["reason"] == "filtered_judge"]
    raw = {r["anchor"]: json.loads(r["raw"]) for r in rejects}
    assert raw["Two dogs are running along the beach."]["judge"]["judge_entailment"] == pytest.approx(0.2)
    assert set(raw["Two dogs are running along the beach."]["outputs"]) == {"entailment", "contradiction"}
    kept_manifest = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    assert kept_manifest["filter"]["min_judge"] == 0.5 and kept_manifest["parent"]["judge_model"] == "qwen2.5-0.5b"


def test_filter_min_judge_for_one_relation_checks_only_that_relation(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file)
    judge(out)  # contradiction P(false) 0.8 on every row but the unanswered lighthouse; the dogs' entailment 0.2
    lenient = filter_dataset(out, tmp_path / "con75", FilterSpec(min_judge_by_relation={"contradiction": 0.75}))
    assert lenient.kept == 9 and "Two dogs are running along the beach." in read_rows(lenient.out).column("anchor").to_pylist()
    assert filter_dataset(out, tmp_path / "con85", FilterSpec(min_judge_by_relation={"contradiction": 0.85})).kept == 0
    both = filter_dataset(out, tmp_path / "both", FilterSpec(min_judge=0.5, min_judge_by_relation={"contradiction": 0.75}))
    assert both.kept == 8 and both.filtered == {"filtered_judge": 2}
    assert json.loads((both.out / "manifest.json").read_text())["filter"]["min_judge_by_relation"] == {"contradiction": 0.75}
    with pytest.raises(InputError, match="task 'nli' has no relation of that name; use one of entailment, contradiction"):
        filter_dataset(out, tmp_path / "typo", FilterSpec(min_judge_by_relation={"positive": 0.5}))
    assert not (tmp_path / "typo" / "data").exists()


def test_filter_min_check_bars_one_judge_question_and_refuses_a_check_the_judge_did_not_ask(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file)
    judge(out)  # entailment_entailed: 0.2 for the dogs, NaN for the lighthouse; contradiction_false 0.8
    kept = filter_dataset(out, tmp_path / "ent", FilterSpec(min_judge_by_check={"entailment_entailed": 0.5}))
    assert kept.kept == 8 and kept.filtered == {"filtered_judge": 2}
    assert "Two dogs are running along the beach." not in read_rows(kept.out).column("anchor").to_pylist()
    assert json.loads((kept.out / "manifest.json").read_text())["filter"]["min_judge_by_check"] == {"entailment_entailed": 0.5}
    lenient = filter_dataset(out, tmp_path / "low", FilterSpec(min_judge_by_check={"entailment_entailed": 0.1}))
    assert lenient.kept == 9  # only the unanswered lighthouse fails
    with pytest.raises(InputError, match="--min-check entailment_entails: the judge asked no check of that name; "
                                         "use one of entailment_entailed, entailment_says_no_more, contradiction_false"):
        filter_dataset(out, tmp_path / "typo", FilterSpec(min_judge_by_check={"entailment_entails": 0.5}))
    assert not (tmp_path / "typo" / "data").exists()


@pytest.mark.parametrize("option, bars, malformed, hint", [
    ("--min-judge-for", ["contradiction=0.75", "entailment=0.5"], "contradiction",
     "write RELATION=P, e.g. contradiction=0.6"),
    ("--min-check", ["entailment_entailed=0.5", "contradiction_false=0.75"], "entailment_entailed",
     "write CHECK=P, e.g. intermediate_not_entails_anchor=0.2"),
])
def test_filter_cli_takes_bars_and_refuses_a_malformed_one(tmp_path, seed_file, option, bars, malformed, hint):
    out = make_nli(tmp_path / "nli", seed_file)
    judge(out)
    result = CliRunner().invoke(app, ["filter", str(out), "--out", str(tmp_path / "kept"),
                                      *(arg for bar in bars for arg in (option, bar))])
    assert result.exit_code == 0, result.output
    assert "kept 8 of 10 rows (filtered: filtered_judge 2)" in result.output
    result = CliRunner().invoke(app, ["filter", str(out), "--out", str(tmp_path / "bad"), option, malformed])
    assert result.exit_code == 2 and hint in result.output
    assert not (tmp_path / "bad").exists()


def test_best_per_seed_keeps_the_sample_the_judge_likes_most(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file, n=2)
    assert read_rows(out).num_rows == 20

    def p_yes(question):  # the second take of every seed is the better entailment
        if question.startswith("Premise:") and "Something related" in question and "claim anything" not in question:
            return 0.95 if "take 2." in question else 0.6
        return nli_p_yes(question.replace("lighthouse", "lamp"))

    judge(out, p_yes)
    summary = filter_dataset(out, tmp_path / "best", FilterSpec(best_per_seed=True))
    kept = read_rows(tmp_path / "best").to_pylist()
    assert summary.kept == 10 and summary.filtered == {"filtered_not_best": 10}
    assert sorted(r["seed_index"] for r in kept) == list(range(10))
    judged = {r["id"]: r for r in read_rows(out, JUDGE).to_pylist()}
    assert all(judged[r["id"]]["p_entailment_entailed"] == pytest.approx(0.95) for r in kept)


def test_max_samples_picks_among_the_first_samples_as_a_smaller_run_would(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file, n=2)

    def p_yes(question):  # the second take of every seed is the better entailment
        if question.startswith("Premise:") and "Something related" in question and "claim anything" not in question:
            return 0.95 if "take 2." in question else 0.6
        return nli_p_yes(question.replace("lighthouse", "lamp"))

    judge(out, p_yes)
    summary = filter_dataset(out, tmp_path / "first", FilterSpec(best_per_seed=True, max_samples=1))
    kept = read_rows(tmp_path / "first").to_pylist()
    # With one sample per seed the better second take is out of reach: each seed keeps its first.
    assert summary.kept == 10 and summary.filtered == {"filtered_extra_sample": 10}
    assert {r["sample_index"] for r in kept} == {0} and sorted(r["seed_index"] for r in kept) == list(range(10))
    rejects = [r for r in read_rows(tmp_path / "first", "rejects").to_pylist() if r["stage"] == "filter"]
    assert {r["sample_index"] for r in rejects} == {1} and {r["reason"] for r in rejects} == {"filtered_extra_sample"}
    assert json.loads((tmp_path / "first" / "manifest.json").read_text())["filter"]["max_samples"] == 1
    # A cap at the run's own n changes nothing.
    assert filter_dataset(out, tmp_path / "all", FilterSpec(best_per_seed=True, max_samples=2)).filtered == {
        "filtered_not_best": 10}


@pytest.mark.parametrize("cap", ["0", "-2"])
def test_max_samples_under_one_is_refused_with_the_fix_and_writes_nothing(tmp_path, seed_file, cap):
    out = make_nli(tmp_path / "nli", seed_file, n=2)
    judge(out)
    result = CliRunner().invoke(app, ["filter", str(out), "--out", str(tmp_path / "kept"), "--min-judge", "0.5",
                                      "--max-samples", cap])
    assert result.exit_code == 2 and f"--max-samples {cap}: use at least 1 sample per seed" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "kept" / "data").exists()


def test_filter_refuses_judge_results_of_other_data(tmp_path, seed_file):
    fresh = make_nli(tmp_path / "fresh", seed_file)
    with pytest.raises(InputError, match="has no `datagen judge` results; run `datagen judge"):
        filter_dataset(fresh, tmp_path / "x", FilterSpec(min_judge=0.5))
    out = make_nli(tmp_path / "nli", seed_file)
    judge(out)
    (out / JUDGE / "part-00000.parquet").write_bytes(b"edited")
    with pytest.raises(InputError, match="do not match its data"):
        filter_dataset(out, tmp_path / "y", FilterSpec(min_judge=0.5))


def test_an_engine_without_logprobs_is_refused_with_the_fix(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file)
    with pytest.raises(ConfigError, match="cannot return first-token logprobs; use --engine vllm or --engine openai"):
        judge_dataset(out, JudgeConfig(model="m"), engine_factory=lambda c, m: FakeEngine("nli"))
    assert not (out / JUDGE).exists()


def test_empty_dataset_is_refused(tmp_path, seed_file):
    out = tmp_path / "empty"
    config = load_config(None, {"task": "nli", "mode": "joint", "shard_rows": 4})
    generate(config, seed_file, out, engine_factory=lambda c, m: FakeEngine("nli", lambda name, anchor: "no json"))
    with pytest.raises(InputError, match="holds no rows to judge"):
        judge(out)


def test_a_dataset_datagen_did_not_write_is_imported_and_judged(tmp_path):
    source = tmp_path / "public.jsonl"
    rows = [{"anchor": "A man is cooking.", "entailment": "Someone is cooking.", "contradiction": "Nobody is cooking."},
            {"anchor": "A dog runs.", "entailment": "An animal moves.", "contradiction": ""}]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    manifest = import_rows(source, "nli", tmp_path / "out")
    assert (manifest.counts.rows, manifest.counts.rejects, manifest.counts.reject_reasons) == (1, 1, {"not_text": 1})
    summary, _ = judge(tmp_path / "out", lambda q: 0.9 if "Someone" in q else 0.3)
    assert summary.rows == 1
    assert read_rows(tmp_path / "out", JUDGE).column("p_entailment_entailed").to_pylist() == [pytest.approx(0.9)]


@pytest.mark.parametrize("content, message", [
    ("", "holds no rows"),
    ('{"anchor": "a b c", "entailment": "x"}\n', "lacks the column\\(s\\) contradiction"),
    ("not json\n", "is not JSON"),
])  # fmt: skip
def test_bad_foreign_datasets_get_one_line_errors(tmp_path, content, message):
    source = tmp_path / "bad.jsonl"
    source.write_text(content)
    with pytest.raises(InputError, match=message) as caught:
        import_rows(source, "nli", tmp_path / "out")
    assert "\n" not in str(caught.value)


def test_sigkill_mid_judge_then_resume_judges_only_the_rest(tmp_path, seed_file):
    """A real SIGKILL of a judge run (scripted engine, slow), then the same call again."""
    out = make_nli(tmp_path / "nli", seed_file)
    script = REPO / "tests" / "support" / "fake_judge_run.py"
    child = subprocess.Popen([sys.executable, str(script), str(out), "1.0"], cwd=REPO)
    deadline = time.monotonic() + 300  # the child imports torch-heavy modules first; slow on a busy machine
    while not (out / JUDGE / "part-00000.parquet").exists():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    written = sorted(p.name for p in (out / JUDGE).glob("part-*.parquet"))
    assert 1 <= len(written) < 3 and not list((out / JUDGE).glob("*.tmp"))
    summary, engine = judge(out)
    assert summary.shards_kept == len(written) and summary.shards_judged == 3 - len(written)
    checks = load_judge_plan("nli").requests_per_row
    assert len(engine.requests) == sum(pq.read_metadata(out / "data" / f"part-{i:05d}.parquet").num_rows * checks
                                       for i in range(3) if f"part-{i:05d}.parquet" not in written)
    assert read_rows(out, JUDGE).column("id").to_pylist() == read_rows(out).column("id").to_pylist()


def test_early_stops_ask_later_checks_only_of_rows_still_passing_and_keep_the_same_rows(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file)
    bars = FilterSpec(min_judge_by_check={"entailment_entailed": 0.5}, min_judge_by_relation={"contradiction": 0.7})
    _, full = judge(out)
    asked_everything = read_rows(filter_dataset(out, tmp_path / "full", bars).out).column("id").to_pylist()
    summary, stopped = judge(out, stop_below={"entailment_entailed": 0.5, "contradiction_false": 0.7})
    assert summary.shards_judged == 3  # results judged without stops are not reused
    # 10 rows asked `entails`; the dogs (0.2) and the lighthouse (no answer) stop there, so 8 rows are asked
    # `says_more` and the contradiction both ways
    assert len(full.requests) == 40 and len(stopped.requests) == 10 + 8 * 3
    assert summary.skipped_checks == 2 * 2
    section = json.loads((out / "manifest.json").read_text())["judge"]
    assert section["skipped_checks"] == 4 and section["unanswered_checks"] == 1  # the lighthouse's `entails`
    assert section["stop_below"] == {"entailment_entailed": 0.5}  # a bar on the last check stops nothing
    by_anchor = {r["anchor"]: r["id"] for r in read_rows(out).to_pylist()}
    dogs = {r["id"]: r for r in read_rows(out, JUDGE).to_pylist()}[by_anchor["Two dogs are running along the beach."]]
    assert dogs["p_entailment_entailed"] == pytest.approx(0.2) and math.isnan(dogs["p_contradiction_false"])
    kept = read_rows(filter_dataset(out, tmp_path / "stopped", bars).out).column("id").to_pylist()
    assert kept == asked_everything and len(kept) == 8


@pytest.mark.parametrize("spec", [FilterSpec(min_judge_by_check={"entailment_entailed": 0.1}),
                                  FilterSpec(best_per_seed=True)])
def test_a_filter_below_the_judges_early_stops_is_refused(tmp_path, seed_file, spec):
    out = make_nli(tmp_path / "nli", seed_file)
    judge(out, stop_below={"entailment_entailed": 0.5})
    with pytest.raises(InputError, match=r"the judge stopped asking rows whose entailment_entailed fell below 0.5.*"
                                         r"raise it to 0.5 .*or judge again without --stop-below"):
        filter_dataset(out, tmp_path / "low", spec)
    assert not (tmp_path / "low" / "data").exists()
    assert filter_dataset(out, tmp_path / "ok", FilterSpec(min_judge=0.5)).kept == 8


def test_an_early_stop_naming_no_check_is_refused(tmp_path, seed_file):
    out = make_nli(tmp_path / "nli", seed_file)
    with pytest.raises(InputError, match="--stop-below entailment_entails: the nli judge asks no check of that name; "
                                         "use one of entailment_entailed, entailment_says_no_more, contradiction_false"):
        judge(out, stop_below={"entailment_entails": 0.5})
    assert not (out / JUDGE).exists()
