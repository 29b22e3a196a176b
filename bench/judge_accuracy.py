"""Benchmark: how well the LLM judge's questions agree with human labels.

Per model and question template (``prompts/judge/*.jinja``), on data people labelled:

- SICK test (``../shared/data/raw_original/sick2014``, 4,927 pairs; ``--sick-test N`` draws a seeded sample):
  AUC of entailment-vs-rest (the ``entails`` question's P(yes)) and of contradiction-vs-rest (the
  ``contradicts`` question's P(yes), and its combination with 1 - P(entails)); and of the three-way ``truth``
  question (P(true) for entailment, P(false) for contradiction, alone, with 1 - P(entails), and asked either way:
  the larger P(false) of (A, B) and (B, A), which the nli judge uses); of the `says_more` question's P(no) and
  its product with P(yes) of `entails`, and the precision of the pipeline's two entailment bars; each with a
  bootstrap 95% interval; accuracy at a threshold picked on
  SICK trial (500 pairs), never on test;
- STS-B test (``--stsb N`` pairs): Spearman of the ``similarity`` question's expected 0-5 score against gold,
  and of the mean P(yes) of the ``entails`` question asked both ways;
- your audit labels (``--audit OUT``, any number): per relation, AUC of the judge's probability against
  right/wrong (unsure labels left out) and agreement at P >= 0.5.

Requests per second are printed for each model (prefill plus one token per request).

    .venv/bin/python bench/judge_accuracy.py [--models qwen2.5-0.5b,qwen2.5-1.5b] [--sick-test 1000] [--stsb 500]
        [--audit outputs/nli_kept ...] [--json bench/results/judge_accuracy.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datagen.config import GenerateConfig, SamplingConfig, VLLMConfig, packaged  # noqa: E402
from datagen.engines import GenerationRequest, build_engine, require_logprobs, resolve_engine_model  # noqa: E402
from datagen.quality.audit import wilson_interval  # noqa: E402
from datagen.quality.judge import load_question  # noqa: E402
from datagen.workflow import load_pipeline  # noqa: E402

SICK = REPO.parent / "shared" / "data" / "raw_original" / "sick2014"
STSB = REPO.parent / "shared" / "data" / "raw_original" / "stsbenchmark"


def read_sick(name: str) -> list[dict]:
    with open(SICK / name, encoding="utf-8", newline="") as handle:
        return [{"a": r["sentence_A"], "b": r["sentence_B"], "label": r["entailment_judgment"].strip()}
                for r in csv.DictReader(handle, delimiter="\t")]


def read_stsb_test() -> list[dict]:
    rows = []
    for line in (STSB / "sts-test.csv").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        rows.append({"a": parts[5], "b": parts[6], "score": float(parts[4])})
    return rows


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    from scipy.stats import rankdata

    pos, neg = int(positive.sum()), int((~positive).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def auc_interval(scores: np.ndarray, positive: np.ndarray, *, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(scores), len(scores))
        values.append(auc(scores[pick], positive[pick]))
    values = np.array([v for v in values if not np.isnan(v)])
    return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


def best_threshold(scores: np.ndarray, positive: np.ndarray) -> float:
    """The threshold that maximises accuracy of ``scores >= t`` (picked on a dev split)."""
    candidates = np.unique(np.concatenate([scores, [0.5]]))
    accuracy = [np.mean((scores >= t) == positive) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


class Asker:
    """Asks one model every question; engine started once."""

    def __init__(self, model: str, kv_cache_gib: int):
        config = GenerateConfig(task="nli", model=model, sampling=SamplingConfig(temperature=0.0, max_tokens=1),
                                vllm=VLLMConfig(kv_cache_gib=kv_cache_gib))
        started = time.perf_counter()
        self.engine = require_logprobs(build_engine(config, resolve_engine_model(config)))
        self.startup_s = time.perf_counter() - started
        self.requests, self.seconds = 0, 0.0

    def ask(self, question: str, pairs: list[dict]) -> list:
        """First-token logprobs of ``question`` about every (a, b) pair, timed."""
        template = load_question(question)
        requests = [GenerationRequest(str(i), template.render(p["a"], p["b"])) for i, p in enumerate(pairs)]
        started = time.perf_counter()
        results = self.engine.first_token_logprobs(requests, top_k=20)
        self.seconds += time.perf_counter() - started
        self.requests += len(requests)
        return results

    def p_yes(self, question: str, pairs: list[dict]) -> np.ndarray:
        return self.p_answers(question, pairs)["yes"]

    def p_answers(self, question: str, pairs: list[dict]) -> dict[str, np.ndarray]:
        """Per answer of ``question`` (its template's ``answers``), its share against the others (0.5 if none read)."""
        answers = load_question(question).answers
        results = self.ask(question, pairs)
        return {a: np.array([0.5 if (s := r.share([a], [o for o in answers if o != a])) is None else s for r in results])
                for a in answers}

    def expected_digit(self, question: str, pairs: list[dict]) -> np.ndarray:
        results = self.ask(question, pairs)
        values = []
        for result in results:
            weights = np.array([result.probability(str(d)) for d in range(6)])
            values.append(float(weights @ np.arange(6) / weights.sum()) if weights.sum() > 0 else 2.5)
        return np.array(values)

    def close(self) -> None:
        self.engine.close()


QUESTION_SETS = {
    "all": ("truth", "entails", "contradicts", "says_more"),
    "truth": ("truth",),  # the three-way question both ways: a third of the requests, for a slow machine
    "entailment": ("entails", "says_more"),  # the nli judge's two entailment questions
}
# The scores this script reads for the nli judge's entailment checks (names in prompts/nli/judge.jinja).
SCORE_OF_CHECK = {"entailment_entailed": "entails", "entailment_says_no_more": "says_no_more"}


def shipped_entailment_bars() -> dict[str, float]:
    """The entailment bars of the shipped pipelines/nli_checked.yaml, keyed by this script's score names."""
    bars = load_pipeline(packaged("pipelines", "nli_checked.yaml")).filter.spec.min_judge_by_check
    return {SCORE_OF_CHECK[check]: bar for check, bar in bars.items() if check in SCORE_OF_CHECK}


def sick_report(asker: Asker, trial: list[dict], test: list[dict], *, questions: str = "all") -> dict:
    """AUCs on SICK test, thresholds from SICK trial, for the questions of ``QUESTION_SETS[questions]``."""
    asked = QUESTION_SETS[questions]
    report = {}
    for split_name, pairs in (("trial", trial), ("test", test)):
        scores = {"labels": np.array([p["label"] for p in pairs])}
        if "truth" in asked:
            truth = asker.p_answers("truth", pairs)
            swapped = asker.p_answers("truth", [{"a": p["b"], "b": p["a"]} for p in pairs])
            scores |= {"true": truth["true"], "false": truth["false"], "false_swapped": swapped["false"]}
        for question in ("entails", "contradicts"):
            if question in asked:
                scores[question] = asker.p_yes(question, pairs)
        if "says_more" in asked:
            scores["says_no_more"] = 1 - asker.p_yes("says_more", pairs)
        report[split_name] = scores
    result = {"test_pairs": len(test), "trial_pairs": len(trial)}
    # name: (gold label, the scores it reads, score)
    scorers = {
        "entailment_vs_rest/entails": ("ENTAILMENT", ("entails",), lambda s: s["entails"]),
        "entailment_vs_rest/says_no_more": ("ENTAILMENT", ("says_no_more",), lambda s: s["says_no_more"]),
        "entailment_vs_rest/entails*says_no_more": ("ENTAILMENT", ("entails", "says_no_more"),
                                                    lambda s: s["entails"] * s["says_no_more"]),
        "contradiction_vs_rest/contradicts": ("CONTRADICTION", ("contradicts",), lambda s: s["contradicts"]),
        "contradiction_vs_rest/contradicts+not_entails": ("CONTRADICTION", ("contradicts", "entails"),
                                                          lambda s: np.minimum(s["contradicts"], 1 - s["entails"])),
        "entailment_vs_rest/truth(true)": ("ENTAILMENT", ("true",), lambda s: s["true"]),
        "contradiction_vs_rest/truth(false)": ("CONTRADICTION", ("false",), lambda s: s["false"]),
        "contradiction_vs_rest/truth(false)+not_entails": ("CONTRADICTION", ("false", "entails"),
                                                           lambda s: np.minimum(s["false"], 1 - s["entails"])),
        # the nli judge since 2026-12-07: the truth question asked both ways, the larger P(false)
        "contradiction_vs_rest/truth(false)either_way": ("CONTRADICTION", ("false", "false_swapped"),
                                                         lambda s: np.maximum(s["false"], s["false_swapped"])),
    }
    for name, (label, needs, score) in scorers.items():
        if not all(key in report["test"] for key in needs):
            continue
        trial_scores, test_scores = score(report["trial"]), score(report["test"])
        trial_positive, test_positive = report["trial"]["labels"] == label, report["test"]["labels"] == label
        threshold = best_threshold(trial_scores, trial_positive)
        low, high = auc_interval(test_scores, test_positive)
        result[name] = {"auc": round(auc(test_scores, test_positive), 4), "auc_95": [round(low, 4), round(high, 4)],
                        "threshold_from_trial": round(threshold, 4),
                        "accuracy_at_threshold": round(float(np.mean((test_scores >= threshold) == test_positive)), 4),
                        "positives": int(test_positive.sum())}
    shipped = shipped_entailment_bars()
    if shipped and all(key in report["test"] for key in shipped):
        result["entailment_at_shipped_bars"] = {
            "+".join(keys): precision_recall(report["test"], {key: shipped[key] for key in keys})
            for keys in (("entails",), tuple(shipped)) if set(keys) <= set(shipped)}
    return result


def precision_recall(scores: dict, bars: dict[str, float]) -> dict:
    """Of the SICK pairs that pass every bar, the share labelled entailment (Wilson 95%), and the recall."""
    passed = np.all([scores[key] >= bar for key, bar in bars.items()], axis=0)
    positive = scores["labels"] == "ENTAILMENT"
    right = int((passed & positive).sum())
    low, high = wilson_interval(right, int(passed.sum()))
    return {"bars": bars, "passed": int(passed.sum()), "entailment": right,
            "precision": round(right / max(int(passed.sum()), 1), 4), "precision_95": [round(low, 4), round(high, 4)],
            "recall": round(right / max(int(positive.sum()), 1), 4)}


def audit_report(asker_model: str, outs: list[Path]) -> dict:
    """Judge probabilities of audited rows (from each OUT's judge sidecar) against the human labels."""
    import pyarrow.parquet as pq

    result = {}
    for out in outs:
        labels = [json.loads(line) for line in (out / "audit" / "labels.jsonl").read_text().splitlines() if line.strip()]
        judged = {}
        for part in sorted((out / "judge").glob("part-*.parquet")):
            for row in pq.read_table(part).to_pylist():
                judged[row["id"]] = row
        per_relation: dict[str, list[tuple[float, bool]]] = {}
        for label in labels:
            row = judged.get(label["id"])
            if row is None:
                continue
            for relation, verdict in label["labels"].items():
                if verdict in ("right", "wrong") and f"judge_{relation}" in row:
                    per_relation.setdefault(relation, []).append((row[f"judge_{relation}"], verdict == "right"))
        for relation, pairs in per_relation.items():
            scores = np.array([p for p, _ in pairs])
            right = np.array([r for _, r in pairs])
            result[f"{out.name}/{relation}"] = {"rows": len(pairs), "right": int(right.sum()),
                                                "auc": round(auc(scores, right), 4),
                                                "agreement_at_0.5": round(float(np.mean((scores >= 0.5) == right)), 4)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="qwen2.5-0.5b,qwen2.5-1.5b")
    parser.add_argument("--sick-test", type=int, default=1000, help="pairs drawn from SICK test (4927 = all)")
    parser.add_argument("--stsb", type=int, default=500, help="pairs drawn from STS-B test (1379 = all); 0 skips")
    parser.add_argument("--trial", type=int, default=500, help="SICK trial pairs to pick thresholds on (500 = all)")
    parser.add_argument("--questions", choices=sorted(QUESTION_SETS), default="all",
                        help="truth: only the three-way question, both ways; entailment: the nli judge's two "
                             "entailment questions")
    parser.add_argument("--audit", type=Path, nargs="*", default=[], help="audited output dirs with judge sidecars")
    parser.add_argument("--kv-cache-gib", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    test = read_sick("SICK_test_annotated.txt")
    test = rng.sample(test, min(args.sick_test, len(test)))
    trial = read_sick("SICK_trial.txt")
    trial = random.Random(args.seed).sample(trial, min(args.trial, len(trial)))
    stsb = read_stsb_test()
    stsb = rng.sample(stsb, min(args.stsb, len(stsb))) if args.stsb else []
    results = {}
    for model in args.models.split(","):
        asker = Asker(model, args.kv_cache_gib)
        entry = {"sick": sick_report(asker, trial, test, questions=args.questions)}
        if stsb:
            predicted = asker.expected_digit("similarity", stsb)
            gold = [p["score"] for p in stsb]
            entry["stsb_spearman"] = round(float(spearmanr(predicted, gold).statistic), 4)
            # The judge's own questions as a similarity: mean P(yes) of entailment in both directions.
            both = (asker.p_yes("entails", stsb) + asker.p_yes("entails", [{"a": p["b"], "b": p["a"]} for p in stsb])) / 2
            entry["stsb_spearman_mutual_entailment"] = round(float(spearmanr(both, gold).statistic), 4)
            entry["stsb_pairs"] = len(stsb)
        entry["requests_per_s"] = round(asker.requests / asker.seconds, 2)
        entry["startup_s"] = round(asker.startup_s, 1)
        asker.close()
        results[model] = entry
        print(json.dumps({model: entry}), flush=True)
    if args.audit:
        results["audit"] = audit_report(args.models, args.audit)
    print(f"\njudge accuracy (SICK test sample of {len(test)} pairs, seed {args.seed}; thresholds from SICK trial)")
    print(f"{'model':<14} {'question':<46} {'AUC':>6} {'95% CI':>15} {'acc@t':>6} {'t':>6}")
    for model, entry in results.items():
        if model == "audit":
            continue
        for name, r in entry["sick"].items():
            if isinstance(r, dict) and "auc" in r:
                print(f"{model:<14} {name:<46} {r['auc']:>6.3f} [{r['auc_95'][0]:.3f}, {r['auc_95'][1]:.3f}] "
                      f"{r['accuracy_at_threshold']:>6.3f} {r['threshold_from_trial']:>6.3f}")
        for bars, r in entry["sick"].get("entailment_at_shipped_bars", {}).items():
            print(f"{model:<14} {'entailment at the shipped bars: ' + bars:<46} precision {r['precision']:.3f} "
                  f"[{r['precision_95'][0]:.3f}, {r['precision_95'][1]:.3f}] of {r['passed']}, recall {r['recall']:.3f}")
        if "stsb_spearman" in entry:
            print(f"{model:<14} {'STS-B similarity (Spearman)':<36} {entry['stsb_spearman']:>6.3f}  on {entry['stsb_pairs']} pairs")
            print(f"{model:<14} {'STS-B mutual entailment (Spearman)':<36} {entry['stsb_spearman_mutual_entailment']:>6.3f}")
        print(f"{model:<14} {entry['requests_per_s']} requests/s (engine start {entry['startup_s']} s)")
    for name, r in results.get("audit", {}).items():
        print(f"audit {name:<30} rows {r['rows']:>4}  right {r['right']:>4}  AUC {r['auc']:.3f}  agree@0.5 {r['agreement_at_0.5']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
