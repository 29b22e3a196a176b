"""Benchmark: datagen end to end vs raw ``LLM.chat`` on the same rendered prompts, both modes.

Both sides share one started vLLM engine (start-up excluded from both) and the same
prompts; the order alternates and the prefix cache is warmed first, so the ratio
measures datagen's own overhead: rendering, parsing, validation, Parquet, manifest.

    .venv/bin/python bench/generation.py [--seeds FILE] [--limit 32] [--task sts]

Prints output tokens/s of each side, the ratio (target >= 0.97), and per mode the
rows/s and reject rate used to choose the default mode.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tapped_engine import TappedEngine  # bench/ is on sys.path when a benchmark runs as a script

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SEEDS = REPO.parent / "shared" / "data" / "corpus" / "wiki1m_for_simcse.PREFIX_1280000_bytes.txt"


def run_raw(llm, params, conversations) -> tuple[float, int]:
    started = time.perf_counter()
    outputs = llm.chat(conversations, sampling_params=params, use_tqdm=False)
    seconds = time.perf_counter() - started
    return seconds, sum(len(o.token_ids) for out in outputs for o in out.outputs)


def run_datagen(config, seeds: Path, shared: TappedEngine):
    from datagen.generation.run import generate

    shared.completions.clear()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        summary = generate(config, seeds, Path(out), engine_factory=lambda c, m: shared)
        seconds = time.perf_counter() - started
    return seconds, shared.output_tokens, summary


def bench_mode(task: str, mode: str, seeds: Path, limit: int, repeats: int, engine) -> dict:
    from datagen.config import load_config
    from datagen.generation.prompts import load_templates, render_requests
    from datagen.dataset.seeds import read_seeds

    config = load_config(REPO / "pipelines" / f"{task}.yaml", {"mode": mode, "limit": limit, "shard_rows": limit})
    usable = [s for s in read_seeds(seeds, limit=limit) if not s.problem]
    requests = render_requests(load_templates(task, mode), task, mode, [(str(s.index), s.text) for s in usable])
    conversations = [list(r.messages) for r in requests]
    params = [engine._sampling_params(r) for r in requests]  # the exact SamplingParams datagen sends
    shared = TappedEngine(engine)
    run_raw(engine._llm, params[:8], conversations[:8])  # warm the prefix cache for both sides
    raw_rates, datagen_rates, summary, prompt_tokens = [], [], None, 0
    for _ in range(repeats):
        seconds, tokens = run_raw(engine._llm, params, conversations)
        raw_rates.append(tokens / seconds)
        seconds, tokens, summary = run_datagen(config, seeds, shared)
        datagen_rates.append(tokens / seconds)
        datagen_seconds, prompt_tokens = seconds, shared.prompt_tokens
    raw, ours = statistics.median(raw_rates), statistics.median(datagen_rates)
    total = summary.rows + summary.rejects
    return {
        "mode": mode, "requests": len(requests), "raw_tok_s": raw, "datagen_tok_s": ours, "ratio": ours / raw,
        "rows": summary.rows, "rows_s": summary.rows / datagen_seconds, "reject_rate": summary.rejects / total,
        "reasons": summary.reject_reasons, "prompt_tokens_per_row": prompt_tokens / max(summary.rows, 1),
        "prompt_tokens_per_seed": prompt_tokens / max(total, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS)
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--task", default="sts", choices=["nli", "sts"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="qwen2.5-0.5b")
    args = parser.parse_args()
    if not args.seeds.is_file():
        sys.exit(f"seed file {args.seeds} not found; pass --seeds FILE (the shared wiki1m sample or any .txt)")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "3")

    from datagen.config import load_config
    from datagen.engines.vllm_engine import VLLMEngine
    from datagen.models import resolve_model

    config = load_config(REPO / "pipelines" / f"{args.task}.yaml", {"model": args.model})
    engine = VLLMEngine(resolve_model(args.model), sampling=config.sampling, settings=config.vllm)
    results = [bench_mode(args.task, mode, args.seeds, args.limit, args.repeats, engine) for mode in ("separate", "joint")]
    print(f"\ntask={args.task} model={args.model} seeds={args.limit} repeats={args.repeats} (median)")
    print(f"{'mode':<9} {'requests':>8} {'raw tok/s':>10} {'datagen tok/s':>14} {'ratio':>6} {'rows/s':>7} {'reject':>7} "
          f"{'prompt tok/seed':>15} {'prompt tok/row':>14}  reasons")
    for r in results:
        print(f"{r['mode']:<9} {r['requests']:>8} {r['raw_tok_s']:>10.1f} {r['datagen_tok_s']:>14.1f} "
              f"{r['ratio']:>6.3f} {r['rows_s']:>7.2f} {r['reject_rate']:>7.1%} {r['prompt_tokens_per_seed']:>15.0f} "
              f"{r['prompt_tokens_per_row']:>14.0f}  {r['reasons']}")


if __name__ == "__main__":
    main()
