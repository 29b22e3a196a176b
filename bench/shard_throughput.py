"""Benchmark: validation + shard writing throughput on synthetic rows (default 1M), no LLM involved.

Each chunk of ``shard_rows`` synthetic seeds gets joint-mode JSON completions that pass validation;
they go through datagen's own ``validate_seed`` (parse + pydantic validation + duplicate check) and then
``write_shard`` (Arrow table, zstd Parquet, fsync, rename, sha256) for the data and rejects shards,
exactly as the pipeline does per chunk. Building the synthetic completions is not timed.

    .venv/bin/python bench/shard_throughput.py [--rows 1000000] [--task sts] [--shard-rows 64]
        [--generation-rows-s 1.0]

Prints rows/s of validation, of writing and of both, and how many times faster that is than the
generation rate passed in (the datagen figure from bench/vs_peers.py on this machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def synthetic_chunk(start: int, count: int, task: str):
    """Seeds and joint completions for seeds ``start .. start+count``, all distinct and valid."""
    from datagen.engines.base import Completion
    from datagen.dataset.seeds import Seed

    seeds, completions = [], {}
    for i in range(start, start + count):
        anchor = f"Site {i} near the old river station was opened to the public in {1800 + i % 200} by the council."
        if task == "sts":
            outputs = {"positive": f"The council opened site {i} by the old river station to the public in {1800 + i % 200}.",
                       "intermediate": f"Site {i} was opened.",
                       "negative": f"Site {i} near the new airport was closed to visitors by the army."}
        else:
            outputs = {"entailment": f"The public could visit site {i} after the council opened it.",
                       "contradiction": f"Site {i} has never been open to the public."}
        seeds.append(Seed(i, anchor))
        completions[i] = {"joint": [Completion(f"{i}/joint", json.dumps(outputs), "stop", 380, 60)]}
    return seeds, completions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--task", default="sts", choices=["nli", "sts"])
    parser.add_argument("--shard-rows", type=int, default=64, help="the pipelines/ default is 64")
    parser.add_argument("--generation-rows-s", type=float, default=None,
                        help="datagen's generation rate on this machine (bench/vs_peers.py) to compare with")
    args = parser.parse_args()

    from datagen.config import load_config
    from datagen.dataset.shards import data_schema, rejects_schema, write_shard
    from datagen.generation.rows import RunContext, SeenOutputs, ShardResult, validate_seed

    config = load_config(REPO / "pipelines" / f"{args.task}.yaml", {"shard_rows": args.shard_rows})
    ctx = RunContext(config.task, config.mode, "bench-model", "0" * 64)
    metadata = {"datagen.fingerprint": "bench", "datagen.config": config.model_dump(mode="json")}
    seen = SeenOutputs()  # the run-wide duplicate index the pipeline uses
    validate_s = write_s = validate_cpu = write_cpu = 0.0
    rows = rejects = written_bytes = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for index, start in enumerate(range(0, args.rows, args.shard_rows)):
            seeds, completions = synthetic_chunk(start, min(args.shard_rows, args.rows - start), args.task)
            t0, c0 = time.perf_counter(), time.process_time()
            result = ShardResult()
            for seed in seeds:
                validate_seed(seed, completions[seed.index], config, ctx, seen, result)
            t1, c1 = time.perf_counter(), time.process_time()
            rej = write_shard(out, "rejects", index, result.rejects, rejects_schema(), metadata)
            data = write_shard(out, "data", index, result.rows, data_schema(args.task), metadata)
            write_s += time.perf_counter() - t1
            write_cpu += time.process_time() - c1
            validate_s += t1 - t0
            validate_cpu += c1 - c0
            rows, rejects = rows + data.rows, rejects + rej.rows
            written_bytes += data.bytes + rej.bytes
            (out / data.path).unlink()  # keep the disk footprint small; the bytes were written and fsynced
            (out / rej.path).unlink()
    total = args.rows
    both, both_cpu = validate_s + write_s, validate_cpu + write_cpu
    print(f"\n{total:,} synthetic {args.task} rows (joint JSON), shards of {args.shard_rows}: "
          f"{rows:,} accepted, {rejects:,} rejected, {written_bytes / 1e6:.1f} MB Parquet written")
    print("wall = elapsed time on the shared machine; CPU = this process's CPU time (one core)")
    print(f"{'stage':<28} {'wall s':>8} {'rows/s wall':>12} {'CPU s':>8} {'rows/s CPU':>11}")
    for stage, wall, cpu in (("validate (validate_seed)", validate_s, validate_cpu),
                             ("write_shard (data+rejects)", write_s, write_cpu), ("validate + write", both, both_cpu)):
        print(f"{stage:<28} {wall:>8.1f} {total / wall:>12,.0f} {cpu:>8.1f} {total / cpu:>11,.0f}")
    if args.generation_rows_s:
        print(f"generation on this machine: {args.generation_rows_s:.2f} rows/s -> validate + write is "
              f"{total / both / args.generation_rows_s:,.0f}x faster; it never limits generation")


if __name__ == "__main__":
    main()
