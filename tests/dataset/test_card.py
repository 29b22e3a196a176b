"""The dataset card ``OUT/README.md``: rendered from the manifest, written by every finalize, loadable by datasets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from datagen.config import load_config
from datagen.dataset.card import CARD, MARKER, render_card, size_category, write_card
from datagen.dataset.manifest import Counts, Manifest, read_manifest
from datagen.dataset.shards import read_rows
from datagen.dataset.writer import DatasetWriter
from datagen.generation.run import generate
from datagen.quality.filter import FilterSpec, filter_dataset
from datagen.quality.judge import JudgeConfig, judge_dataset
from datagen.tasks import all_tasks, get_task
from tests.quality.test_judge import nli_p_yes
from tests.support.fakes import FakeEngine, FakeJudge, good_reply

REPO = Path(__file__).resolve().parents[2]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
SECTIONS = {"parent": "## Parent dataset", "filter": "## Filter", "scores": "## Scores", "judge": "## LLM judge",
            "audit": "## Human audit"}


@pytest.fixture(autouse=True)
def no_model_preparation(monkeypatch):
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha-" + name))


def header(card: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", card, re.DOTALL)
    assert match, card[:200]
    return yaml.safe_load(match.group(1))


def manifest(task: str = "sts", rows: int = 3, reasons: dict[str, int] | None = None, **sections) -> Manifest:
    reasons = reasons or {}
    return Manifest.model_validate({
        "task": task, "fingerprint": "fp", "status": "complete",
        "config": {"mode": "joint", "engine": "vllm", "sampling": {"temperature": 0.8, "n": 1}},
        "model": {"name": "qwen2.5-0.5b", "sha256": "1d9614ff32"}, "templates": {"joint": "abc123"},
        "template_sha": "def456", "seeds": {"path": "seeds.txt", "sha256": "5eed", "count": rows},
        "counts": Counts(rows=rows, rejects=sum(reasons.values()), reject_reasons=reasons).model_dump(),
        **sections,
    })


def generated(out: Path, seeds: Path, task: str = "sts", reply=None) -> Path:
    config = load_config(None, {"task": task, "shard_rows": 4, "mode": "joint"})
    generate(config, seeds, out, engine_factory=lambda c, m: FakeEngine(task, reply))
    return out


def reject_some(task: str):
    """Good joint replies, except a refusal for the dogs' seed and a copied anchor for the bakery's."""
    def reply(name: str, anchor: str) -> str:
        if "dogs" in anchor:
            return "I'm sorry, but I cannot help with that."
        if "bakery" in anchor:
            return good_reply(name, anchor, task).replace("In other words, ", "")
        return good_reply(name, anchor, task)
    return reply


def load(out: Path, tmp_path: Path, monkeypatch, *config: str):
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return datasets.load_dataset(str(out), *config, split="train", cache_dir=str(tmp_path / "hf-cache"))


# --- render_card -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows, bucket", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (12_345, "10K<n<100K"),
                                          (10**6, "1M<n<10M"), (10**13, "n>1T")])
def test_size_category_uses_the_hubs_buckets(rows, bucket):
    assert size_category(rows) == bucket


def test_header_parses_with_a_train_split_a_rejects_config_and_the_hub_fields():
    meta = header(render_card(manifest(rows=1234, reasons={"refusal": 2})))
    configs = {config["config_name"]: config for config in meta["configs"]}
    assert configs["default"]["data_files"] == [{"split": "train", "path": "data/*.parquet"}]
    assert configs["default"]["default"] is True
    assert configs["rejects"]["data_files"] == [{"split": "train", "path": "rejects/*.parquet"}]
    assert meta["size_categories"] == ["1K<n<10K"] and meta["task_categories"] == ["sentence-similarity"]
    assert {"datagen", "synthetic"} <= set(meta["tags"])
    assert "language" not in meta  # datagen does not know the seeds' language


def test_a_run_without_rejects_has_no_rejects_config():
    """datasets refuses a split with no rows, so the config would only fail."""
    meta = header(render_card(manifest(reasons={})))
    assert [config["config_name"] for config in meta["configs"]] == ["default"]


def test_the_marker_follows_the_header():
    card = render_card(manifest())
    assert card.split("---\n", 2)[2].startswith(MARKER + "\n")


def test_counts_reasons_and_provenance_appear():
    card = render_card(manifest(rows=8, reasons={"refusal": 3, "copies_anchor": 1}))
    assert "| rows (split `train`) | 8 |" in card and "| rejects | 4 |" in card and "| acceptance | 66.7% |" in card
    assert "| `refusal` | 3 | 75.0% |" in card and "| `copies_anchor` | 1 | 25.0% |" in card
    assert "| model sha256 | `1d9614ff32` |" in card and "| mode | `joint` |" in card
    assert "| joint | `abc123` |" in card and "temperature 0.8 · n 1" in card


@pytest.mark.parametrize("spec", all_tasks(), ids=lambda spec: spec.name)
def test_every_generated_column_is_described_from_the_task_spec(spec):
    card = render_card(manifest(task=spec.name))
    for name in spec.fields:
        [line] = [line for line in card.splitlines() if line.startswith(f"| `{name}` | string |")]
        assert "generated" in line
        assert ("the positive in training" in line) == (name == spec.positive)
        assert ("meant to change" in line) == (name in spec.meaning_changing)
    train = ["anchor", spec.positive, *([spec.hard_negative] if spec.hard_negative else [])]
    assert f"rows.select_columns({train})".replace("'", '"') in card


def test_sections_appear_only_when_the_manifest_has_them():
    plain = render_card(manifest())
    assert not [title for title in SECTIONS.values() if title in plain]
    full = render_card(manifest(**{key: SECTION_EXAMPLES[key] for key in SECTIONS}))
    assert all(title in full for title in SECTIONS.values())


@pytest.mark.parametrize("key", sorted(SECTIONS))
def test_each_section_shows_its_figures(key):
    card = render_card(manifest(**{key: SECTION_EXAMPLES[key]}))
    assert [title for title in SECTIONS.values() if title in card] == [SECTIONS[key]]
    for expected in SECTION_FIGURES[key]:
        assert expected in card, expected


def test_an_unfinished_run_says_so():
    assert "Not finished" in render_card(manifest().model_copy(update={"status": "running"}))
    assert "Not finished" not in render_card(manifest())


def test_a_table_cell_cannot_break_the_table():
    card = render_card(manifest(reasons={"odd|reason\nhere": 1}))
    assert "| `odd\\|reason here` | 1 | 100.0% |" in card


# --- writing ----------------------------------------------------------------------------------------------------

def test_finalize_writes_the_card_and_every_stage_refreshes_it(tmp_path, seed_file):
    out = generated(tmp_path / "sts", seed_file)
    card = (out / CARD).read_text(encoding="utf-8")
    assert card == render_card(read_manifest(out)) and "## Scores" not in card
    with DatasetWriter(out) as writer:  # a quality stage: a manifest section, then finalize
        writer.open_existing()
        writer.set_section("scores", SECTION_EXAMPLES["scores"])
        writer.finalize(status=None)
    assert "## Scores" in (out / CARD).read_text(encoding="utf-8")
    assert not list(out.glob("*.tmp"))


def test_a_readme_the_user_wrote_is_left_alone(tmp_path, seed_file):
    (tmp_path / "sts").mkdir()
    mine = "# My dataset\n\nHand-written.\n"
    (tmp_path / "sts" / CARD).write_text(mine, encoding="utf-8")
    out = generated(tmp_path / "sts", seed_file)
    assert (out / CARD).read_text(encoding="utf-8") == mine
    assert write_card(out, read_manifest(out)) is False


def test_a_card_datagen_wrote_is_replaced_even_if_edited(tmp_path):
    (tmp_path / CARD).write_text(render_card(manifest(rows=1)) + "\nmy note\n", encoding="utf-8")
    assert write_card(tmp_path, manifest(rows=5)) is True
    assert (tmp_path / CARD).read_text(encoding="utf-8") == render_card(manifest(rows=5))


@pytest.mark.parametrize("ours", [True, False])
def test_overwrite_clears_datagens_card_but_not_the_users(tmp_path, ours):
    text = render_card(manifest()) if ours else "# Mine\n"
    (tmp_path / CARD).write_text(text, encoding="utf-8")
    with DatasetWriter(tmp_path) as writer:
        writer.clear()
    assert (tmp_path / CARD).exists() is not ours


def test_a_linked_readme_is_neither_replaced_nor_written_through(tmp_path):
    target = tmp_path / "elsewhere.md"
    target.write_text(render_card(manifest(rows=1)), encoding="utf-8")  # even one with the marker
    out = tmp_path / "out"
    out.mkdir()
    (out / CARD).symlink_to(target)
    assert write_card(out, manifest(rows=5)) is False
    assert (out / CARD).is_symlink() and target.read_text(encoding="utf-8") == render_card(manifest(rows=1))


# --- datasets.load_dataset ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["sts", "pairs"])
def test_load_dataset_reads_the_train_split_and_the_rejects_offline(tmp_path, seed_file, monkeypatch, task):
    out = generated(tmp_path / task, seed_file, task, reject_some(task))
    manifest = read_manifest(out)
    assert manifest.counts.reject_reasons == {"refusal": 1, "copies_anchor": 1}
    assert any(shard.rejects.rows == 0 for shard in manifest.shards)  # empty shards must load too
    rows = load(out, tmp_path, monkeypatch)
    assert rows.to_list() == read_rows(out).to_pylist()
    assert rows.column_names == list(pq.read_schema(out / "data" / "part-00000.parquet").names)
    rejects = load(out, tmp_path, monkeypatch, "rejects")
    assert rejects.to_list() == read_rows(out, "rejects").to_pylist()


def test_a_dataset_regenerated_in_place_is_not_served_from_the_old_cache(tmp_path, seed_file, monkeypatch):
    """datasets names its cache after the card's configs, not the files' times; the shards' digest is in them."""
    out = generated(tmp_path / "pairs", seed_file, "pairs")
    before = load(out, tmp_path, monkeypatch).to_list()
    config = load_config(None, {"task": "pairs", "shard_rows": 4, "mode": "joint", "sampling.temperature": 0.5})
    reply = lambda name, anchor: good_reply(name, anchor, "pairs").replace("In other words", "Put differently")
    generate(config, seed_file, out, engine_factory=lambda c, m: FakeEngine("pairs", reply), overwrite=True)
    after = load(out, tmp_path, monkeypatch).to_list()  # same shard names, same row count, other sentences
    assert after == read_rows(out).to_pylist() and len(after) == len(before) and after != before


def test_load_dataset_reads_a_filter_output_and_its_filtered_rejects(tmp_path, seed_file, monkeypatch):
    parent = generated(tmp_path / "nli", seed_file, "nli")
    judge_dataset(parent, JudgeConfig(model="qwen2.5-0.5b"), engine_factory=lambda c, m: FakeJudge(nli_p_yes))
    assert "## LLM judge" in (parent / CARD).read_text(encoding="utf-8")
    kept = filter_dataset(parent, tmp_path / "kept", FilterSpec(min_judge=0.5)).out
    card = (kept / CARD).read_text(encoding="utf-8")
    assert "## Parent dataset" in card and "## Filter" in card and "| min_judge | 0.5 |" in card
    assert "## LLM judge" not in card  # the judge's results belong to the parent's rows
    rows = load(kept, tmp_path, monkeypatch)
    assert rows.to_list() == read_rows(kept).to_pylist() and 0 < rows.num_rows < 10
    rejects = load(kept, tmp_path, monkeypatch, "rejects")
    assert {row["reason"] for row in rejects} == {"filtered_judge"}
    assert rejects.num_rows + rows.num_rows == 10


# --- the README's training snippet --------------------------------------------------------------------------------

README_SNIPPET = "# README: train on an output"
README_BATCH = "per_device_train_batch_size=64"


def readme_snippet() -> str:
    """The python block of README.md that starts with the marker comment."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.DOTALL)
    [block] = [block for block in blocks if block.startswith(README_SNIPPET)]
    return block


def test_the_readme_snippet_is_found_and_reads_the_output_it_names():
    snippet = readme_snippet()
    assert 'load_dataset("outputs/pairs"' in snippet and "MultipleNegativesRankingLoss(model)" in snippet


@pytest.mark.model
def test_the_readme_snippet_trains_minilm_on_an_output(tmp_path, corpus_sentences, minilm):
    """The README's block, run as it is but for a smaller batch (cwd holds outputs/pairs), trains the real
    MiniLM for three steps: ~48 rows, batches of 16 (a step of 64 takes 2-8 s on two busy cores)."""
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("\n".join(corpus_sentences[:48]) + "\n", encoding="utf-8")
    out = generated(tmp_path / "outputs" / "pairs", seeds, "pairs")
    assert 32 < read_manifest(out).counts.rows <= 48  # three steps of 16
    snippet = readme_snippet()
    assert snippet.count(README_BATCH) == 1, f"the README's snippet no longer sets {README_BATCH}"
    (tmp_path / "snippet.py").write_text(snippet.replace(README_BATCH, "per_device_train_batch_size=16"),
                                         encoding="utf-8")
    env = {**os.environ, **OFFLINE, "HF_HOME": str(tmp_path / "hf"), "CUDA_VISIBLE_DEVICES": ""}
    # sentence-transformers 6 moved its modules; a deprecated import in the README fails here, not for a reader.
    moved = "error:Importing from 'sentence_transformers:DeprecationWarning"
    result = subprocess.run([sys.executable, "-W", moved, "snippet.py"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    from sentence_transformers import SentenceTransformer

    trained = SentenceTransformer(str(tmp_path / "runs" / "pairs_mnrl" / "final"), device="cpu")
    probe = ["A man is playing a guitar on a street corner."]
    assert abs(trained.encode(probe) - minilm.encode(probe)).max() > 1e-4  # the weights moved


# --- example sections, as the stages write them ---------------------------------------------------------------------

SECTION_EXAMPLES = {
    "parent": {"path": "/data/nli", "fingerprint": "parentfp", "encoder": None, "judge_model": "qwen2.5-1.5b"},
    "filter": {"require_tier_order": False, "min_margin": None, "max_overlap": None, "min_judge": 0.5,
               "best_per_seed": True},
    "scores": {
        "encoder": "minilm", "rows": 3, "tier_consistency_rate": 0.6667,
        "cosines": {f: {"mean": 0.81, "p05": 0.5, "p50": 0.8, "p95": 0.95} for f in get_task("sts").fields},
        "margins": {"margin_pos_int": {"mean": 0.02, "p05": -0.1, "p50": 0.03, "p95": 0.2}},
        "overlap": {f: {"p50": 0.7, "jaccard_mean": 0.55} for f in get_task("sts").fields},
        "diversity": {"distinct_1": 0.42, "distinct_2": 0.77, "near_duplicate_rate": 0.01},
        "difficulty": {"generated": {"alignment": 0.31, "uniformity": -2.5}, "delta_alignment": 0.12,
                       "delta_uniformity": None},
    },
    "judge": {"model": {"name": "qwen2.5-1.5b", "sha256": "judgesha"}, "templates_sha256": "jt", "rows": 3,
              "unanswered_checks": 1,
              "pass_rates": {"p50": {"judge_positive": 0.9, "judge_min": 0.5},
                             "p70": {"judge_positive": 0.8, "judge_min": 0.4},
                             "p90": {"judge_positive": 0.3, "judge_min": 0.1}}},
    "audit": {"labelled_rows": 40, "annotators": {"ana": 40}, "guide": "docs/labelling.md",
              "sample": {"drawn": 50, "seed": 0},
              "relations": {"positive": {"right": 30, "wrong": 8, "unsure": 2, "precision": 0.7895,
                                         "ci95": [0.6365, 0.8893]}},
              "rows": {"right": 28, "wrong": 10, "unsure": 2, "precision": 0.7368, "ci95": [0.5799, 0.8503]}},
}
SECTION_FIGURES = {
    "parent": ["| path | `/data/nli` |", "| judge_model | `qwen2.5-1.5b` |"],
    "filter": ["| min_judge | 0.5 |", "| best_per_seed | yes |"],
    "scores": ["| tier order holds | 66.7% |", "| `negative` | 0.81 | 0.5 | 0.8 | 0.95 | 0.7 | 0.55 |",
               "| `margin_pos_int` | 0.02 | -0.1 | 0.03 | 0.2 |", "| distinct-1 / distinct-2 | 0.42 / 0.77 |"],
    "judge": ["| judge model sha256 | `judgesha` |", "| relation | P ≥ 0.5 | P ≥ 0.7 | P ≥ 0.9 |",
              "| `positive` | 90.0% | 80.0% | 30.0% |", "| row (every relation) | 50.0% | 40.0% | 10.0% |"],
    "audit": ["| rows labelled | 40 |", "| `positive` | 30 | 8 | 2 | 79.0% | [63.6%, 88.9%] |",
              "| row (every relation right) | 28 | 10 | 2 | 73.7% | [58.0%, 85.0%] |"],
}
