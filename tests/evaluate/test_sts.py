"""The SentEval STS protocol: pair counts on the real files, rounding, and agreement with sentence-transformers."""

from __future__ import annotations

import numpy as np
import pytest

from datagen.errors import InputError
from datagen.evaluate.sts import TASKS, evaluate_model, format_table, load_task, score_pairs
from datagen.evaluate.measures import alignment, uniformity
from datagen.evaluate.sts_data import load_stsb

from tests.conftest import SENTEVAL

# Pairs SentEval scores (non-empty gold lines), from the SentEval/SimCSE papers and the data README.
PAIR_COUNTS = {"STS12": 3108, "STS13": 1500, "STS14": 3750, "STS15": 3000, "STS16": 1186, "STS-B": 1379, "SICK-R": 4927}


@pytest.mark.parametrize("task", TASKS)
def test_pair_counts_on_the_real_files(task):
    pairs = load_task(task, SENTEVAL)
    assert len(pairs) == PAIR_COUNTS[task]
    assert len(pairs.sentences1) == len(pairs.sentences2) == len(pairs.scores)
    assert all(s and s == " ".join(s.split()) for s in pairs.sentences1[:50])
    assert 0.0 <= pairs.scores.min() and pairs.scores.max() <= 5.0


def test_sts12_concatenates_its_subsets_in_order():
    pairs = load_task("STS12", SENTEVAL)
    first_line = (SENTEVAL / "STS/STS12-en-test/STS.input.MSRpar.txt").read_text(encoding="utf-8").splitlines()[0]
    assert pairs.sentences1[0] == " ".join(first_line.split("\t")[0].split())
    last_line = (SENTEVAL / "STS/STS12-en-test/STS.input.surprise.SMTnews.txt").read_text(encoding="utf-8").splitlines()[-1]
    assert pairs.sentences2[-1] == " ".join(last_line.split("\t")[1].split())


def test_sts13_skips_pairs_without_gold():
    gold_lines = sum(
        len((SENTEVAL / f"STS/STS13-en-test/STS.gs.{name}.txt").read_text(encoding="utf-8").splitlines())
        for name in ("FNWN", "headlines", "OnWN")
    )
    assert gold_lines >= len(load_task("STS13", SENTEVAL))


def test_unknown_task_and_missing_data_say_how_to_fix(tmp_path):
    with pytest.raises(InputError, match="choose from"):
        load_task("STS99", SENTEVAL)
    with pytest.raises(InputError, match="DATAGEN_DATA"):
        load_task("STS-B", tmp_path)


class HashEncoder:
    """A deterministic stand-in encoder: fixed random vector per sentence."""

    def encode(self, sentences, **kwargs):
        return np.stack([np.random.default_rng(abs(hash(s)) % 2**32).normal(size=8) for s in sentences])


def test_results_are_rounded_and_avg_is_mean_of_rounded_values():
    results = evaluate_model(HashEncoder(), tasks=("STS-B", "SICK-R", "STS16"), data_dir=SENTEVAL)
    assert list(results) == ["STS-B", "SICK-R", "STS16", "Avg"]
    for value in results.values():
        assert value == round(value, 2)
    assert results["Avg"] == round((results["STS-B"] + results["SICK-R"] + results["STS16"]) / 3, 2)
    assert abs(results["STS-B"]) < 20  # random vectors: no correlation
    assert "Avg" in format_table(results).splitlines()[0]


def test_alignment_and_uniformity_match_their_definitions():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    assert alignment(x, y) == pytest.approx(np.mean(np.sum((xn - yn) ** 2, axis=1)), rel=1e-5)
    pair_terms = [np.exp(-2 * np.sum((xn[i] - xn[j]) ** 2)) for i in range(50) for j in range(i + 1, 50)]
    assert uniformity(x) == pytest.approx(np.log(np.mean(pair_terms)), rel=1e-5)
    assert alignment(x, x) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.model
def test_stsb_spearman_equals_sentence_transformers_evaluator(minilm):
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    pairs = load_stsb(SENTEVAL, "test")
    ours = score_pairs(minilm, pairs)
    evaluator = EmbeddingSimilarityEvaluator(pairs.sentences1, pairs.sentences2, list(pairs.scores / 5.0),
                                             main_similarity="cosine", name="stsb")
    theirs = evaluator(minilm)["stsb_spearman_cosine"]
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert round(100 * ours, 2) == pytest.approx(82.03, abs=0.05)  # the figure measured here with sentence-transformers
