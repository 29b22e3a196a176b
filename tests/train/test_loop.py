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
from datagen.train.loop import load_train_config, total_steps

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
    assert (config.temperature, config.margin1, config.margin2, config.beta, config.max_len) == (0.05, 5e-3, 5e-2, 1.0, 32)
    assert total_steps(config, 640) == 10
    spec = load_pipeline("pipelines/ngcse_small.yaml")
    assert spec.train.config.data == (spec.generate.out,)


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

    def fake_generate(config, seeds, out, *, overwrite=False):
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

    with pytest.raises(ConfigError, match="train"):
        parse_pipeline({"generate": {"seeds": "s", "out": "o", "task": "sts"}})
    with pytest.raises(ConfigError, match="batch_size"):
        parse_pipeline({"train": {"out": "r", "objective": "sts", "data": ["d"], "batch_size": 0}})
    with pytest.raises(ConfigError, match="cannot read"):
        load_pipeline(tmp_path / "missing.yaml")
