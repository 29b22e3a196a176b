"""Benchmark: resident memory of the pipeline (outside the engine) at 1k, 10k and 100k rows.

The engine here is a *cheap fake* (``tests/fakes.py``'s ``FakeEngine``): it returns fixed, valid
JSON for every request instantly, so what is measured is datagen's own memory — seed reading,
rendering, parsing, validation, duplicate tracking, Parquet shards and the manifest — not vLLM's.
Each size runs in a fresh subprocess and reports its peak RSS (``VmHWM``) and final RSS (``VmRSS``).

    .venv/bin/python bench/memory.py [--sizes 1000,10000,100000] [--task sts] [--shard-rows 64]

Prints peak RSS per size and the spread relative to the smallest run (target: flat within ±10%), and the
bytes written to the manifest and its journal beside what rewriting the whole manifest after every shard (the
design before the journal) would have written.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def read_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def write_synthetic_seeds(path: Path, count: int) -> None:
    """``count`` distinct Wikipedia-length sentences (the fake engine's outputs echo them, so all are unique)."""
    words = "river valley station museum bridge orchestra novel harbour festival village tower garden".split()
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            picked = " ".join(words[(i >> shift) % len(words)] for shift in (0, 3, 6, 9))
            handle.write(f"Site {i} near the {picked} was opened to the public in {1800 + i % 200} by the council.\n")


def child(size: int, task: str, shard_rows: int, streaming: bool) -> None:
    """Run one generation with the fake engine and print a JSON line with the memory figures."""
    sys.path.insert(0, str(REPO))
    from datagen.config import load_config
    from datagen.generation.run import generate
    from datagen.tasks import get_task
    from tests.support.fakes import FakeEngine

    class ForgetfulEngine(FakeEngine):
        """FakeEngine without its test-only record of every batch (which would grow with the run)."""

        def generate(self, requests):
            completions = super().generate(requests)
            self.batches.clear()
            return completions

    class StreamingEngine(ForgetfulEngine):
        """Holds the next batch before answering the current one, as the vllm engine's ``generate_batches``
        does, so the pipeline runs its streaming path (chunks pulled lazily, held until answered)."""

        def generate_batches(self, batches):
            held = []
            for position, requests in enumerate(batches):
                held.append((position, requests))
                if len(held) == 2:
                    position, requests = held.pop(0)
                    yield position, self.generate(requests)
            for position, requests in held:
                yield position, self.generate(requests)

    engine_class = StreamingEngine if streaming else ForgetfulEngine
    manifest_bytes = count_manifest_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        seeds = Path(tmp) / "seeds.txt"
        write_synthetic_seeds(seeds, size)
        config = load_config(get_task(task).default_config(), {"task": task, "shard_rows": shard_rows})
        rss_before = read_status_kib("VmRSS")
        started = time.perf_counter()
        summary = generate(config, seeds, Path(tmp) / "out", engine_factory=lambda c, m: engine_class(task))
        seconds = time.perf_counter() - started
        final = (Path(tmp) / "out" / "manifest.json").stat().st_size
        result = {
            "size": size, "rows": summary.rows, "rejects": summary.rejects, "seconds": seconds,
            "manifest_written": manifest_bytes["manifest"] + manifest_bytes["journal"],
            "rewrite_whole_estimate": rewrite_whole_bytes(final, summary.shards_written),
            "rss_before_mib": rss_before / 1024, "rss_after_mib": read_status_kib("VmRSS") / 1024,
            "peak_mib": read_status_kib("VmHWM") / 1024,
        }
    print(json.dumps(result))


def count_manifest_bytes() -> dict[str, int]:
    """Count the bytes the run writes to manifest.json (whole writes) and to its journal (appends)."""
    from datagen.dataset import manifest, writer

    written = {"manifest": 0, "journal": 0}
    real_write, real_append = writer.write_manifest, manifest.Journal.append

    def write_manifest(out, value):
        real_write(out, value)
        written["manifest"] += (out / manifest.MANIFEST).stat().st_size

    def append(self, shard):
        real_append(self, shard)
        written["journal"] += len(shard.model_dump_json()) + 1

    writer.write_manifest, manifest.Journal.append = write_manifest, append
    return written


def rewrite_whole_bytes(final_size: int, shards: int) -> int:
    """What rewriting the whole manifest after every shard (the previous design) would have written:
    sum over k = 1..N of (header + k entries), from the final manifest's size (header + N entries)."""
    if shards == 0:
        return final_size
    entry = final_size / (shards + 1)  # counts the header as one entry: an estimate, right to within one entry per write
    return int(shards * entry + entry * shards * (shards + 1) / 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--task", default="sts")
    parser.add_argument("--shard-rows", type=int, default=64, help="the pipelines/ default is 64")
    parser.add_argument("--streaming", action=argparse.BooleanOptionalAction, default=True,
                        help="engine answers through generate_batches, like the default vllm engine")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.task, args.shard_rows, args.streaming)
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--child", str(size), "--task", args.task, "--shard-rows", str(args.shard_rows),
               "--streaming" if args.streaming else "--no-streaming"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = results[0]["peak_mib"]
    path = "generate_batches, next batch held" if args.streaming else "one generate per shard"
    print(f"\nengine: FakeEngine (fixed valid JSON, returned instantly; {path}) - pipeline memory only; "
          f"task={args.task} mode=joint shard_rows={args.shard_rows}; each size in a fresh process")
    print(f"{'rows':>8} {'accepted':>9} {'seconds':>8} {'rows/s':>8} {'RSS before':>11} {'RSS after':>10} "
          f"{'peak RSS':>9} {'vs 1st':>7} {'manifest MiB':>13} {'rewrite-whole MiB (est.)':>25}")
    for r in results:
        print(f"{r['size']:>8} {r['rows']:>9} {r['seconds']:>8.1f} {r['size'] / r['seconds']:>8.0f} "
              f"{r['rss_before_mib']:>9.1f}Mi {r['rss_after_mib']:>8.1f}Mi {r['peak_mib']:>7.1f}Mi "
              f"{r['peak_mib'] / base - 1:>+7.1%} {r['manifest_written'] / 2**20:>13.2f} "
              f"{r['rewrite_whole_estimate'] / 2**20:>25.1f}")
    spread = max(r["peak_mib"] for r in results) / min(r["peak_mib"] for r in results) - 1
    print(f"peak RSS spread (max/min - 1): {spread:.1%} (target <= 10%)")


if __name__ == "__main__":
    main()
