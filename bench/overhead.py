"""Benchmark: the openai engine end to end vs the same vLLM server driven directly with the openai client.

One real vLLM OpenAI-compatible server is started (``datagen.engines.vllm_server.launch_vllm_server``) and shared.
Both sides send the same rendered chat messages with the same body (temperature, top_p, max_tokens,
n, seed, the joint JSON schema as ``response_format``) at the same concurrency (16). The direct side is
what a user would write: ``AsyncOpenAI`` plus a semaphore and ``asyncio.gather``. The datagen side is
``pipeline.generate`` with ``engine=openai``: rendering, retries, parsing, validation, Parquet shards,
manifest. The two alternate after a warm-up, so the ratio is datagen's overhead on this engine.
(The vllm engine's overhead over raw ``LLM.chat`` is ``bench/generation.py``.)

    .venv/bin/python bench/overhead.py [--limit 32] [--task sts] [--mode joint] [--repeats 2]

Prints output tok/s of each side and the ratio (target >= 0.97).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tapped_engine import TappedEngine  # bench/ is on sys.path when a benchmark runs as a script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_SEEDS = REPO.parent / "shared" / "data" / "corpus" / "wiki1m_for_simcse.PREFIX_1280000_bytes.txt"


async def direct(base_url: str, bodies: list[dict], concurrency: int) -> int:
    """The user's own loop: AsyncOpenAI, a semaphore, gather. Returns output tokens."""
    import openai

    semaphore = asyncio.Semaphore(concurrency)
    async with openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=600) as client:
        async def one(body):
            async with semaphore:
                return await client.chat.completions.create(**body)

        replies = await asyncio.gather(*(one(body) for body in bodies))
    return sum(reply.usage.completion_tokens for reply in replies)


def run_direct(base_url, bodies, concurrency) -> tuple[float, int]:
    started = time.perf_counter()
    tokens = asyncio.run(direct(base_url, bodies, concurrency))
    return time.perf_counter() - started, tokens


def run_datagen(config, seeds: Path) -> tuple[float, int, object]:
    from datagen.engines import build_engine
    from datagen.generation.run import generate

    counting = {}

    def factory(cfg, model):
        counting["engine"] = TappedEngine(build_engine(cfg, model), close_engine=True)
        return counting["engine"]

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        summary = generate(config, seeds, Path(out), engine_factory=factory)
        seconds = time.perf_counter() - started
    return seconds, counting["engine"].output_tokens, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS)
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--task", default="sts", choices=["nli", "sts"])
    parser.add_argument("--mode", default="joint", choices=["joint", "separate"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="qwen2.5-0.5b")
    args = parser.parse_args()
    if not args.seeds.is_file():
        sys.exit(f"seed file {args.seeds} not found; pass --seeds FILE")

    from datagen.config import load_config
    from datagen.engines import served_model
    from datagen.engines.openai_server import OpenAIEngine
    from datagen.models import resolve_model
    from datagen.generation.prompts import load_templates, render_requests
    from datagen.dataset.seeds import read_seeds
    from datagen.engines.vllm_server import launch_vllm_server

    model = resolve_model(args.model)
    started = time.perf_counter()
    with launch_vllm_server(str(model.path), served_model_name=args.model, kv_cache_gib=2) as base_url:
        print(f"server ready in {time.perf_counter() - started:.0f}s at {base_url}", flush=True)
        config = load_config(REPO / "pipelines" / f"{args.task}.yaml", {
            "mode": args.mode, "limit": args.limit, "engine": "openai", "model": args.model,
            "openai.base_url": base_url})
        usable = [s for s in read_seeds(args.seeds, limit=args.limit) if not s.problem]
        requests = render_requests(load_templates(args.task, args.mode), args.task, args.mode,
                                   [(str(s.index), s.text) for s in usable])
        # The exact body datagen's engine sends, so the two sides differ only in the code around it.
        shaper = OpenAIEngine(served_model(args.model), sampling=config.sampling, settings=config.openai,
                              probe=False)
        bodies = [shaper._request_body(r) for r in requests]
        concurrency = config.openai.concurrency
        run_direct(base_url, bodies[:8], concurrency)  # warm the prefix cache for both sides
        direct_rates, datagen_rates = [], []
        for _ in range(args.repeats):
            seconds, tokens = run_direct(base_url, bodies, concurrency)
            direct_rates.append(tokens / seconds)
            seconds, tokens, summary = run_datagen(config, args.seeds)
            datagen_rates.append(tokens / seconds)
            print(f"  direct {direct_rates[-1]:.1f} tok/s, datagen {datagen_rates[-1]:.1f} tok/s "
                  f"({summary.rows} rows, {summary.rejects} rejects)", flush=True)
    raw, ours = statistics.median(direct_rates), statistics.median(datagen_rates)
    print(f"\nopenai engine vs the same vLLM server driven directly: task={args.task} mode={args.mode} "
          f"seeds={args.limit} requests={len(requests)} concurrency={concurrency} repeats={args.repeats} (median)")
    print(f"direct openai client: {raw:.1f} out tok/s; datagen --engine openai: {ours:.1f} out tok/s; "
          f"ratio {ours / raw:.3f} (target >= 0.97)")


if __name__ == "__main__":
    main()
