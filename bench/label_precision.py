"""Benchmark: the default pipelines end to end (generate -> judge -> filter), measured by what counts: how many
kept rows have right labels, and how many right rows come out per second.

For each task and prompt variant it generates from held-out seeds (wiki1m lines the prompts were not written
or tuned on; ``--seeds-from``), judges every row, keeps the rows whose every relation passes ``--min-judge``,
and scores the kept rows (distinct-2 and the static difficulty of ``datagen score``). Audited precision comes
from human labels of the kept rows (``datagen audit OUT_kept`` or ``--import``) when they exist; then

    correct rows/s = kept rows / (generation + judge seconds) x audited precision.

    .venv/bin/python bench/label_precision.py [--tasks nli,sts] [--variants paper,edits] [--seeds-from 5000]
        [--count 200] [--judge-model qwen2.5-1.5b] [--min-judge 0.5] [--min-judge-for nli:contradiction=0.8]
        [--min-check sts:intermediate_not_entails_anchor=0.2]
        [--n 2] [--generator-model qwen2.5-1.5b] [--out outputs/precision]

Run it once to generate, judge and filter; label a sample of each ``<out>/<task>_<variant>_kept`` with
``datagen audit``; run it again with ``--report-only`` for the table with precision.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CORPUS = REPO.parent / "shared" / "data" / "corpus" / "wiki1m_for_simcse.PREFIX_1280000_bytes.txt"
# "paper" is the name earlier runs used for the default pipeline (its joint prompts are our extension).
VARIANT_CONFIGS = {"default": "{task}.yaml", "paper": "{task}.yaml", "edits": "{task}_edits.yaml"}


def write_seeds(path: Path, start: int, count: int) -> None:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()[:-1]  # the last line of the prefix is cut off
    picked = [line.strip() for line in lines[start:] if 40 <= len(line.strip()) <= 200][:count]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(picked) + "\n", encoding="utf-8")


def run_cell(task: str, variant: str, seeds: Path, out: Path, args) -> dict:
    from datagen.config import load_config, packaged
    from datagen.generation.run import generate
    from datagen.quality.filter import FilterSpec, filter_dataset, parse_relation_bars
    from datagen.quality.judge import JudgeConfig, judge_dataset
    from datagen.quality.score import score_dataset

    overrides = {"task": task, "model": args.generator_model, **({"sampling.n": args.n} if args.n > 1 else {})}
    config = load_config(packaged("pipelines", VARIANT_CONFIGS[variant].format(task=task)), overrides)
    name = f"{task}_{variant}" + (f"_{args.generator_model}" if args.generator_model else "") + (f"_n{args.n}" if args.n > 1 else "")
    generated, kept = out / name, out / f"{name}_kept"

    started = time.perf_counter()
    summary = generate(config, seeds, generated)
    generation_s = time.perf_counter() - started if not summary.already_complete else None
    started = time.perf_counter()
    judged = judge_dataset(generated, JudgeConfig(model=args.judge_model, templates_dir=args.judge_templates))
    judge_s = time.perf_counter() - started if judged.shards_judged else None
    by_relation = parse_relation_bars(args.min_judge_for.get(task, []))
    by_check = parse_relation_bars(args.min_check.get(task, []), option="--min-check", what="TASK:CHECK",
                                   example="sts:intermediate_not_entails_anchor=0.2")
    spec = FilterSpec(min_judge=args.min_judge, min_judge_by_relation=by_relation, min_judge_by_check=by_check,
                      best_per_seed=args.n > 1)
    filtered = filter_dataset(generated, kept, spec, overwrite=True)
    scores = score_dataset(kept) if filtered.kept else None
    timing_path = generated / "bench_timing.json"  # seconds survive a rerun that finds everything done
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    # A resumed run (seeds appended) only did the new part: add its seconds to the earlier runs'.
    for key, seconds in {"generation_s": generation_s, "judge_s": judge_s}.items():
        if seconds is not None:
            timing[key] = timing.get(key, 0.0) + seconds
    timing_path.write_text(json.dumps(timing))
    return {"task": task, "variant": variant, "generator": config.model, "samples": summary.rows + summary.rejects,
            "seeds": sum(1 for line in seeds.read_text(encoding="utf-8").splitlines() if line.strip()), "generated": summary.rows,
            "kept": filtered.kept, **timing, "kept_dir": str(kept),
            "distinct_2": scores["diversity"]["distinct_2"] if scores else None,
            "delta_alignment": scores["difficulty"]["delta_alignment"] if scores else None}


def audited(kept_dir: Path) -> dict | None:
    """Row precision, its Wilson 95% interval and per-relation precision from the audit of ``kept_dir``."""
    from datagen.errors import DatagenError
    from datagen.quality.audit import audit_report

    if not (kept_dir / "audit").is_dir():
        return None
    try:
        report = audit_report(kept_dir)
    except DatagenError:  # sample drawn, nothing labelled yet
        return None
    return {"rows": report["rows"], "relations": report["relations"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="nli,sts")
    parser.add_argument("--variants", default="paper,edits")
    parser.add_argument("--seeds-from", type=int, default=5000, help="first wiki1m line to draw seeds from")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--judge-model", default=None, help="default: the judge stage's default")
    parser.add_argument("--generator-model", default=None, help="default: the task's default (qwen2.5-0.5b)")
    parser.add_argument("--min-judge", type=float, default=None, help="one bar for every relation")
    parser.add_argument("--min-judge-for", action="append", default=[], metavar="TASK:RELATION=P",
                        help="a relation's own bar, e.g. nli:contradiction=0.8 (repeatable)")
    parser.add_argument("--min-check", action="append", default=[], metavar="TASK:CHECK=P",
                        help="one judge check's own bar, e.g. sts:intermediate_not_entails_anchor=0.2 (repeatable)")
    parser.add_argument("--judge-templates", default=None,
                        help="a prompts/ folder of your own for the judge (e.g. to try another question); default: the packaged one")
    parser.add_argument("--n", type=int, default=1, help="samples per seed; above 1 the filter keeps the best per seed")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "precision")
    args = parser.parse_args()
    if args.min_judge is None and not args.min_judge_for and not args.min_check:
        args.min_judge = 0.5
    for name in ("min_judge_for", "min_check"):
        per_task: dict[str, list[str]] = {}
        for value in getattr(args, name):
            task, _, threshold = value.partition(":")
            per_task.setdefault(task, []).append(threshold)
        setattr(args, name, per_task)
    seeds = args.out / "seeds.txt"
    if not seeds.exists():
        write_seeds(seeds, args.seeds_from, args.count)
    rows = []
    for task in args.tasks.split(","):
        for variant in args.variants.split(","):
            cell = run_cell(task, variant, seeds, args.out, args)
            cell["audit"] = audited(Path(cell["kept_dir"]))
            rows.append(cell)
            print(json.dumps(cell), flush=True)
    print(f"\n{'task':<6} {'variant':<7} {'seeds':>5} {'gen':>5} {'kept':>5} {'yield':>6} {'gen rows/s':>10} "
          f"{'judge rows/s':>12} {'kept/s':>7} {'precision (95% CI)':>24} {'correct/s':>9} {'distinct-2':>10} "
          f"{'d_align':>8}")
    for r in rows:
        seconds = (r.get("generation_s") or 0) + (r.get("judge_s") or 0)
        rate = r["kept"] / seconds if seconds else float("nan")
        audit = r["audit"]
        if audit and audit["rows"]["precision"] is not None:
            rows_audit = audit["rows"]
            precision = (f"{rows_audit['precision']:.3f} [{rows_audit['ci95'][0]:.3f}, {rows_audit['ci95'][1]:.3f}] "
                         f"n={rows_audit['judged']}")
            correct = f"{rate * rows_audit['precision']:.3f}"
        else:
            precision, correct = "not audited", "-"
        gen_rate = r["generated"] / r["generation_s"] if r.get("generation_s") else float("nan")
        judge_rate = r["generated"] / r["judge_s"] if r.get("judge_s") else float("nan")
        print(f"{r['task']:<6} {r['variant']:<7} {r['seeds']:>5} {r['generated']:>5} {r['kept']:>5} "
              f"{r['kept'] / r['seeds']:>6.1%} {gen_rate:>10.3f} {judge_rate:>12.3f} {rate:>7.3f} {precision:>24} {correct:>9} "
              f"{r['distinct_2'] if r['distinct_2'] is not None else '-':>10} "
              f"{r['delta_alignment'] if r['delta_alignment'] is not None else '-':>8}")


if __name__ == "__main__":
    main()
