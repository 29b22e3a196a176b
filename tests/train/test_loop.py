"""Training: data plumbing on shard fixtures, config validation, and a real short train -> eval -> rfd -> report run."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from datagen.errors import ConfigError, InputError
from datagen.train.poolers import MASK_TEMPLATE_ALT
from datagen.train.data import TrainRow, collate, iterate_batches, read_shard_rows, split_heldout
from datagen.train.loop import TrainConfig, load_rows, load_train_config, text_columns, total_steps

from tests.conftest import CORPUS, write_shards


def test_shards_become_rows_with_the_papers_positive_choice(sts_shards, nli_shards):
    sts = read_shard_rows(sts_shards, "sts")
    assert len(sts) == 300
    assert sts[0].positive == sts[0].ht[1]  # STS: the intermediate is the InfoNCE positive
    nli = read_shard_rows(nli_shards, "nli")
    assert nli[0].hard_negative and nli[0].ht is None


def test_rows_with_empty_cells_are_skipped(tmp_path):
    rows = [{"id": "1", "anchor": "a b c", "entailment": "a b", "contradiction": "x y"},
            {"id": "2", "anchor": "d e f", "entailment": "", "contradiction": "x y"},
            {"id": "3", "anchor": "g h i", "entailment": None, "contradiction": "x y"}]
    assert [r.anchor for r in read_shard_rows(write_shards(tmp_path, rows), "nli")] == ["a b c"]


def test_wrong_shards_say_which_columns_are_missing(tmp_path, nli_shards):
    with pytest.raises(InputError, match="intermediate"):
        read_shard_rows(nli_shards, "sts")
    with pytest.raises(InputError, match="part-"):
        read_shard_rows(tmp_path, "sts")


def test_collate_lays_out_a_mixed_batch():
    batch = [TrainRow("a0", "m0", ht=("p0", "m0", "n0")), TrainRow("s1", "s1", plain=True),
             TrainRow("a2", "e2", hard_negative="c2")]
    collated = collate(batch)
    layout, texts = collated.layout, collated.texts
    assert [texts[i] for i in layout.anchor] == ["a0", "s1", "a2"]
    assert [texts[i] for i in layout.positive] == ["m0", "s1", "e2"]
    assert [texts[i] for i in layout.hard_negative] == ["c2"]
    assert [[texts[i] for i in row] for row in layout.ht.tolist()] == [["a0", "p0", "m0", "n0"]]
    assert collated.templates[layout.positive[1]] == MASK_TEMPLATE_ALT  # plain rows' second view


def test_heldout_split_and_batches():
    rows = [TrainRow(f"s{i}", f"s{i}", plain=True) for i in range(101)]
    train, heldout = split_heldout(rows, 0.1, seed=0)
    assert len(heldout) == 10 and len(train) == 91 and not set(train) & set(heldout)
    batches = iterate_batches(train, 32, seed=0)
    first_epoch = [next(batches) for _ in range(3)]
    assert [len(b) for b in first_epoch] == [32, 32, 27]
    with pytest.raises(InputError):
        split_heldout(rows[:1], 0.1, seed=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"objective": "sts"}, "needs --data"), ({"objective": "simcse"}, "needs --plain"),
     ({"objective": "sts", "data": ("x",), "batch_size": 1}, "batch_size"),
     ({"objective": "sts", "data": ("x",), "pooler": "max"}, "pooler")],
)
def test_invalid_train_settings_raise_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(None, overrides)


def test_pipeline_yaml_defaults_load():
    from datagen.workflow import load_pipeline

    config = load_train_config("pipelines/train_sts.yaml", {"data": ("x",)})
    loss = config.loss
    assert (loss.temperature, loss.margin1, loss.margin2, loss.beta, config.max_len) == (0.05, 5e-3, 5e-2, 1.0, 32)
    assert total_steps(config, 640) == 10
    spec = load_pipeline("pipelines/ngcse_small.yaml")
    assert spec.train.config.data == (spec.generate.out,)


def test_simcse_reads_only_the_anchors_of_whatever_task_wrote_the_data(tmp_path, nli_shards):
    rows = load_rows(TrainConfig(objective="simcse", data=(str(nli_shards),)))
    assert len(rows) == 300 and all(r.plain and r.positive == r.anchor for r in rows)
    # Any task's shards, even one datagen does not know: only the anchor column is read, empty anchors skipped.
    odd = write_shards(tmp_path / "odd", [{"id": "1", "anchor": "a b c", "paraphrase": None},
                                          {"id": "2", "anchor": " ", "paraphrase": "x"}])
    assert [r.anchor for r in load_rows(TrainConfig(objective="simcse", data=(str(odd),)))] == ["a b c"]
    no_anchor = write_shards(tmp_path / "no_anchor", [{"id": "1", "text": "a b c"}])
    with pytest.raises(InputError, match="anchor"):
        load_rows(TrainConfig(objective="simcse", data=(str(no_anchor),)))


def test_objective_is_simcse_or_a_registered_task():
    from datagen.tasks import all_tasks

    for spec in all_tasks():
        assert load_train_config(None, {"objective": spec.name, "data": ("x",)}).objective == spec.name
    with pytest.raises(ConfigError, match="unknown task 'no_such_task'"):
        load_train_config(None, {"objective": "no_such_task", "data": ("x",)})


def test_flat_loss_flags_are_shorthands_for_the_loss_section():
    config = load_train_config(None, {"objective": "sts", "data": ("x",), "temperature": 0.1, "margin1": 0.01,
                                      "margin2": 0.1, "beta": 0.5})
    assert config.loss.model_dump() == {"name": "ngcse", "temperature": 0.1, "margin1": 0.01, "margin2": 0.1,
                                        "beta": 0.5}
    # Flags not given (None) keep the YAML's values; given ones override them.
    config = load_train_config("pipelines/train_nli.yaml", {"data": ("x",), "temperature": None, "beta": 0.0})
    assert (config.loss.name, config.loss.temperature, config.loss.beta) == ("ngcse", 0.05, 0.0)


def test_loss_section_picks_the_loss(tmp_path):
    yaml_file = tmp_path / "t.yaml"
    yaml_file.write_text("train:\n  objective: nli\n  data: [x]\n  loss:\n    name: mnrl\n    scale: 30\n")
    config = load_train_config(yaml_file, {})
    assert (config.loss.name, config.loss.scale) == ("mnrl", 30.0)
    with pytest.raises(ConfigError, match="loss 'mnrl' has no setting temperature; its settings: scale"):
        load_train_config(yaml_file, {"temperature": 0.05})  # --temp means nothing to mnrl
    yaml_file.write_text("train:\n  objective: nli\n  data: [x]\n  loss: {name: circle}\n")
    with pytest.raises(ConfigError, match="circle"):
        load_train_config(yaml_file, {})


def test_flat_loss_keys_in_a_yaml_say_to_move_them(tmp_path):
    from datagen.workflow import parse_pipeline

    yaml_file = tmp_path / "old.yaml"
    yaml_file.write_text("train:\n  objective: sts\n  data: [x]\n  margin2: 0.1\n")
    with pytest.raises(ConfigError, match="margin2 moved into the loss section"):
        load_train_config(yaml_file, {})
    with pytest.raises(ConfigError, match="beta moved into the loss section"):
        parse_pipeline({"train": {"out": "r", "objective": "sts", "data": ["d"], "beta": 1.0}})


def test_every_shipped_train_config_has_a_loss_section():
    from datagen.workflow import load_pipeline

    for objective in ("simcse", "nli", "sts"):
        config = load_train_config(f"pipelines/train_{objective}.yaml", {"data": ("x",), "plain": "p"})
        assert config.objective == objective and config.loss.name == "ngcse"
    assert load_pipeline("pipelines/ngcse_small.yaml").train.config.loss.margin2 == 5e-2


def test_column_batches_keep_hard_negatives_only_when_every_row_has_one():
    triples = [TrainRow("a0", "e0", hard_negative="c0"), TrainRow("a1", "e1", hard_negative="c1")]
    collated = collate(triples)
    assert [[collated.texts[i] for i in c] for c in text_columns(collated)] == [["a0", "a1"], ["e0", "e1"],
                                                                                  ["c0", "c1"]]
    hybrid = collate([*triples, TrainRow("s2", "s2", plain=True), TrainRow("a3", "m3", ht=("p3", "m3", "n3"))])
    columns = text_columns(hybrid)
    assert [[hybrid.texts[i] for i in c] for c in columns] == [["a0", "a1", "s2", "a3"], ["e0", "e1", "s2", "m3"]]
    assert hybrid.templates[columns[1][2]] == MASK_TEMPLATE_ALT  # plain rows keep their second view's template


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.model
def test_real_short_run_train_eval_rfd_report(tmp_path, sts_shards, minilm):
    from sentence_transformers import SentenceTransformer

    from datagen.cli import app

    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, [
        "train", "--data", str(sts_shards), "--plain", str(CORPUS), "--plain-limit", "200", "--objective", "sts",
        "--out", str(run), "--batch-size", "16", "--steps", "8", "--eval-every", "4", "--dev-limit", "200",
        "--lr", "3e-5", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "steps/s" in result.stdout

    # Logs in the paper's layout.
    assert _csv(run / "metrics")[0] == ["step", "loss", "stsb", "sickr", "avg"]
    assert [row[0] for row in _csv(run / "metrics")[1:]] == ["4", "8"]
    for name in ("train_alignment_and_uniformity", "eval_alignment_and_uniformity"):
        rows = _csv(run / name)
        assert rows[0] == ["step", "alignment", "uniformity"] and [r[0] for r in rows[1:]] == ["0", "4", "8"]
        assert all(0 <= float(r[1]) <= 4 and float(r[2]) < 0 for r in rows[1:])
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["best_step"] in (4, 8) and summary["steps_per_second"] > 0

    # The run dir is a sentence-transformers model; word embeddings stayed frozen, the rest moved.
    trained = SentenceTransformer(str(run), local_files_only=True)
    base_words = minilm[0].auto_model.get_input_embeddings().weight
    assert torch.equal(trained[0].auto_model.get_input_embeddings().weight, base_words)
    base_layer = minilm[0].auto_model.encoder.layer[0].attention.self.query.weight
    assert not torch.equal(trained[0].auto_model.encoder.layer[0].attention.self.query.weight, base_layer)
    assert trained.encode(["a short sentence ."]).shape == (1, 384)

    evaluated = runner.invoke(app, ["eval", str(run), "--tasks", "STS-B", "--json", "--save", str(run)])
    assert evaluated.exit_code == 0, evaluated.output
    scores = json.loads(evaluated.stdout)
    assert set(scores) == {"STS-B", "Avg"} and scores["STS-B"] > 70

    rfd = json.loads(runner.invoke(app, ["rfd", str(run), "--json"]).stdout)
    assert set(rfd) == {"RFD_a", "RFD_u", "stsb_top5"} and rfd["stsb_top5"] > 70

    report = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == [
        "alignment_uniformity.png", "rfd_scatter.png", "sts_results.png"]


@pytest.mark.model
@pytest.mark.parametrize(("objective", "pooler"), [("nli", "cls"), ("simcse", "mask")])
def test_other_objectives_and_poolers_train_and_reload(tmp_path, nli_shards, objective, pooler):
    from datagen.encoders import load_encoder
    from datagen.train.loop import TrainConfig, train

    config = TrainConfig(
        data=(str(nli_shards),) if objective == "nli" else (), plain=str(CORPUS) if objective == "simcse" else None,
        plain_limit=120, objective=objective, pooler=pooler, batch_size=8, steps=2, eval_every=2, dev_limit=50,
        heldout_anchors=20, uniformity_sentences=40,
    )
    result = train(config, tmp_path / "run", progress=False)
    assert result.best_step == 2
    assert result.train_rows + result.heldout_rows == (300 if objective == "nli" else 120)
    model = load_encoder(str(tmp_path / "run"))
    assert model.encode(["two sentences here .", "and another one ."]).shape == (2, 384)


@pytest.mark.model
def test_pipeline_chains_generate_train_eval_rfd_report(tmp_path, monkeypatch, sts_shards, seed_file):
    """`datagen run`: generation is stood in for by copying real shards; everything after it runs for real."""
    import shutil

    import yaml

    import datagen.generation.run
    from datagen.cli import app

    calls = []

    def fake_generate(config, seeds, out, *, overwrite=False, engine_factory=None, on_status=None):
        assert callable(engine_factory) and callable(on_status)  # the CLI's session builds the engine and shows progress
        calls.append((config.task, config.limit, seeds, out))
        shutil.copytree(sts_shards, out)
        return {"rows": 300}

    monkeypatch.setattr(datagen.generation.run, "generate", fake_generate)
    pipeline = {
        "generate": {"seeds": str(seed_file), "out": str(tmp_path / "gen"), "task": "sts", "limit": 10},
        "train": {"out": str(tmp_path / "run"), "objective": "sts", "batch_size": 8, "steps": 2, "eval_every": 2,
                  "dev_limit": 50, "heldout_anchors": 20, "uniformity_sentences": 40},
        "eval": {"tasks": ["STS-B"]},
        "report": {"out": str(tmp_path / "report")},
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "p.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert calls == [("sts", 10, seed_file, tmp_path / "gen")]
    assert json.loads((tmp_path / "run" / "sts_results.json").read_text())["STS-B"] > 70
    rfd_line = next(line for line in result.stdout.splitlines() if line.startswith("rfd "))
    assert set(json.loads(rfd_line[4:])) == {"RFD_a", "RFD_u", "stsb_top5"}
    assert (tmp_path / "report" / "rfd_scatter.png").is_file()


def test_pipeline_errors_are_config_errors(tmp_path):
    from datagen.workflow import load_pipeline, parse_pipeline

    assert parse_pipeline({"generate": {"seeds": "s", "out": "o", "task": "sts"}}).train is None  # generation alone
    with pytest.raises(ConfigError, match="batch_size"):
        parse_pipeline({"train": {"out": "r", "objective": "sts", "data": ["d"], "batch_size": 0}})
    with pytest.raises(ConfigError, match="cannot read"):
        load_pipeline(tmp_path / "missing.yaml")


@pytest.mark.model
def test_a_sentence_transformers_loss_runs_the_whole_loop(tmp_path, nli_shards):
    from datagen.train.loop import CONFIG_FILE, RUN_FORMAT_VERSION, train

    config = TrainConfig(data=(str(nli_shards),), objective="nli", loss={"name": "mnrl", "scale": 20.0},
                         batch_size=8, steps=2, eval_every=2, dev_limit=50, heldout_anchors=20, uniformity_sentences=40)
    result = train(config, tmp_path / "run", progress=False)
    assert result.best_step == 2 and result.steps_per_second > 0
    recorded = json.loads((tmp_path / "run" / CONFIG_FILE).read_text())
    assert recorded["format_version"] == RUN_FORMAT_VERSION
    assert recorded["loss"] == {"name": "mnrl", "scale": 20.0} and "temperature" not in recorded
    assert float(_csv(tmp_path / "run" / "metrics")[1][1]) > 0  # the logged training loss
