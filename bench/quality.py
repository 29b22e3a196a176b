"""Benchmark: compare generators on the same seeds by the quality of what they write.

Cells: model (qwen2.5-0.5b, qwen2.5-1.5b) x mode (separate, joint) x prompt variant
(``shots3``: the packaged prompts/, three few-shot examples; ``shots1``: prompts/variants/one_shot,
the first example only). Every cell generates from the same first ``--limit`` usable seeds of
the wiki1m sample with the same sampling config (pipelines/<task>.yaml), then is scored with
``datagen.quality.score.score_dataset`` (reference encoder all-MiniLM-L6-v2).

    flock /tmp/datagen-bench.lock .venv/bin/python bench/quality.py --limit 48 --work /tmp/datagen-quality
    .venv/bin/python bench/quality.py --score-only --work /tmp/datagen-quality   # re-score, print the table

Two phases, so the slow one can run unattended and the table can be re-made cheaply:
1. generate: one vLLM engine per model (start-up excluded from rows/s), shared by its four cells;
   each cell's wall time and counts go to ``WORK/<cell>/bench.json``. A cell whose bench.json
   exists is skipped, so an interrupted bench resumes.
2. score: every cell dir is scored (sidecar ``scores/`` + manifest ``scores`` key) and one table
   is printed with ``uptime``'s load (the machine is shared; rows/s depend on it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tapped_engine import TappedEngine  # bench/ is on sys.path when a benchmark runs as a script

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SEEDS = REPO.parent / "shared" / "data" / "corpus" / "wiki1m_for_simcse.PREFIX_1280000_bytes.txt"
MODELS = ("qwen2.5-0.5b", "qwen2.5-1.5b")
MODES = ("separate", "joint")
VARIANTS = {"shots3": None, "shots1": str(REPO / "prompts" / "variants" / "one_shot")}


def cell_name(model: str, mode: str, variant: str) -> str:
    return f"{model}_{mode}_{variant}"


def wait_until_prepared(model: str, timeout_s: float) -> None:
    """Block until ``datagen models prepare MODEL`` (run by someone else) has finished."""
    from datagen.models import list_models

    deadline = time.monotonic() + timeout_s
    while True:
        info = next(i for i in list_models() if i.name == model)
        if info.prepared:
            return
        if time.monotonic() > deadline:
            sys.exit(f"{model} is not prepared after {timeout_s:.0f} s; run `datagen models prepare {model}`")
        print(f"waiting for {model} to be prepared ...", flush=True)
        time.sleep(30)


def generate_cells(args) -> None:
    from datagen.config import load_config
    from datagen.engines.vllm_engine import VLLMEngine
    from datagen.models import resolve_model
    from datagen.generation.run import generate

    for model in args.models:
        todo = [(mode, variant) for mode in MODES for variant in VARIANTS
                if not (args.work / cell_name(model, mode, variant) / "bench.json").is_file()]
        if not todo:
            continue
        wait_until_prepared(model, args.wait_s)
        base = load_config(REPO / "pipelines" / f"{args.task}.yaml", {"model": model})
        started = time.perf_counter()
        engine = TappedEngine(VLLMEngine(resolve_model(model), sampling=base.sampling, settings=base.vllm))
        print(f"{model}: engine started in {time.perf_counter() - started:.1f} s", flush=True)
        for mode, variant in todo:
            out = args.work / cell_name(model, mode, variant)
            config = load_config(REPO / "pipelines" / f"{args.task}.yaml", {
                "model": model, "mode": mode, "limit": args.limit, "shard_rows": args.limit,
                "templates_dir": VARIANTS[variant]})
            started = time.perf_counter()
            summary = generate(config, args.seeds, out, overwrite=True, engine_factory=lambda c, m: engine)
            seconds = time.perf_counter() - started
            record = {"model": model, "mode": mode, "variant": variant, "seeds": args.limit,
                      "seconds": round(seconds, 2), "rows": summary.rows, "rejects": summary.rejects,
                      "rows_s": round(summary.rows / seconds, 4), "load": os.getloadavg()}
            (out / "bench.json").write_text(json.dumps(record, indent=2))
            print(json.dumps(record), flush=True)
        engine.engine.close()
        del engine


def score_cells(args) -> list[dict]:
    from datagen.encoders import load_encoder
    from datagen.quality.score import score_dataset

    encoder = load_encoder("minilm")
    table = []
    for model in MODELS:
        for mode in MODES:
            for variant in VARIANTS:
                out = args.work / cell_name(model, mode, variant)
                if not (out / "bench.json").is_file():
                    continue
                bench = json.loads((out / "bench.json").read_text())
                started = time.perf_counter()
                summary = score_dataset(out, encoder=encoder)
                bench["score_seconds"] = round(time.perf_counter() - started, 2)
                table.append({**bench, **_flatten(summary)})
    return table


def _flatten(summary: dict) -> dict:
    margins = summary["margins"]
    difficulty = summary["difficulty"]
    return {
        "acceptance": summary["acceptance_rate"],
        "tier_ok": summary["tier_consistency_rate"],
        "margin_means": {name: stats["mean"] for name, stats in margins.items()},
        "distinct_1": summary["diversity"]["distinct_1"],
        "distinct_2": summary["diversity"]["distinct_2"],
        "near_dup": summary["diversity"]["near_duplicate_rate"],
        "overlap_neg": summary["overlap"].get("negative", summary["overlap"].get("contradiction", {})).get("mean"),
        "d_align": difficulty["delta_alignment"],
        "d_uniform": difficulty["delta_uniformity"],
        "reasons": summary["reject_reasons"],
    }


def print_table(table: list[dict]) -> None:
    print(f"\n{'cell':<32} {'rows/s':>6} {'accept':>6} {'tier_ok':>7} {'margins (mean)':<34} "
          f"{'d1':>5} {'d2':>5} {'ndup':>5} {'ovl_neg':>7} {'dAlign':>7} {'dUnif':>7}")
    for r in table:
        margins = " ".join(f"{k.replace('pos_int', 'p-i').replace('int_neg', 'i-n').replace('ent_con', 'e-c')}="
                           f"{v:+.3f}" for k, v in r["margin_means"].items())
        print(f"{cell_name(r['model'], r['mode'], r['variant']):<32} {r['rows_s']:>6.3f} {r['acceptance']:>6.1%} "
              f"{r['tier_ok']:>7.1%} {margins:<34} {r['distinct_1']:>5.3f} {r['distinct_2']:>5.3f} "
              f"{r['near_dup']:>5.3f} {r['overlap_neg']:>7.3f} {r['d_align']:>+7.3f} {r['d_uniform']:>+7.3f}")
    for r in table:
        print(f"  {cell_name(r['model'], r['mode'], r['variant'])}: {r['rows']} rows / {r['seeds']} seeds in "
              f"{r['seconds']:.0f} s (load {r['load'][0]:.2f}); scored in {r['score_seconds']:.1f} s; "
              f"rejects {r['reasons']}")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS)
    parser.add_argument("--limit", type=int, default=48, help="Seeds per cell (the same for every cell).")
    parser.add_argument("--task", default="sts", choices=["nli", "sts"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/datagen-quality"))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--wait-s", type=float, default=1800, help="How long to wait for a model being prepared.")
    parser.add_argument("--score-only", action="store_true")
    parser.add_argument("--json", type=Path, help="Also write the table as JSON here.")
    args = parser.parse_args()
    if not args.seeds.is_file():
        sys.exit(f"seed file {args.seeds} not found; pass --seeds FILE (the shared wiki1m sample or any .txt)")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.score_only:
        generate_cells(args)
    table = score_cells(args)
    print_table(table)
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
