"""Benchmark: the judge with early stops against the judge asking every check, same rows, same engine.

Takes a generated dataset (the ``generate:`` output of a checked pipeline, or any ``datagen nli``/``sts`` output),
imports its first ``--rows`` rows twice, and judges one copy asking every check and the other with the pipeline's
filter bars as early stops (what ``judge: stop_early: true`` does), on one engine started once. Then it filters both
copies with the pipeline's bars. It prints, side by side, the requests, seconds and rows/s of each arm and their
ratio, and whether the two filters kept the same rows (they must: a row below a bar is dropped either way).

    .venv/bin/python bench/judge_early_stop.py outputs/nli_checked/generated [--pipeline pipelines/nli_checked.yaml]
        [--rows 200] [--json bench/results/judge_early_stop.json]

The rows are wiki1m text, so they are imported under a temporary directory and never saved; ``--json`` keeps the
figures only.
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

from datagen.dataset.imports import import_rows  # noqa: E402
from datagen.dataset.shards import read_rows  # noqa: E402
from datagen.engines import build_engine, require_logprobs, resolve_engine_model  # noqa: E402
from datagen.quality.filter import filter_dataset  # noqa: E402
from datagen.quality.judge import judge_dataset, judge_engine_config, load_judge_plan  # noqa: E402
from datagen.tasks import get_task  # noqa: E402
from datagen.workflow import judge_step_with_stops, load_pipeline  # noqa: E402


class CountingEngine:
    """The judge engine, shared by both arms: counts requests and outlives each arm's ``close()``."""

    def __init__(self, engine) -> None:
        self.engine, self.requests = engine, 0
        self.name, self.model_name = engine.name, engine.model_name

    def generate(self, requests):
        return self.engine.generate(requests)

    def first_token_logprobs(self, requests, *, top_k):
        self.requests += len(requests)
        return self.engine.first_token_logprobs(requests, top_k=top_k)

    def close(self) -> None:
        pass  # closed once, after both arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a generated datagen output directory")
    parser.add_argument("--pipeline", type=Path, default=REPO / "pipelines" / "nli_checked.yaml")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    spec = load_pipeline(args.pipeline)
    task = spec.generate.config.task
    stops = judge_step_with_stops(spec).config.stop_below
    full_config = spec.judge.config
    stopped_config = full_config.model_copy(update={"stop_below": stops})
    fields = get_task(task).fields
    rows = read_rows(args.dataset).to_pylist()[: args.rows]
    plan = load_judge_plan(task, full_config.templates_dir)

    engine_config = judge_engine_config(task, full_config)
    started = time.perf_counter()
    engine = CountingEngine(require_logprobs(build_engine(engine_config, resolve_engine_model(engine_config))))
    startup = time.perf_counter() - started
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "rows.jsonl"
        source.write_text("".join(json.dumps({"id": r["id"], "anchor": r["anchor"], **{f: r[f] for f in fields}})
                                  + "\n" for r in rows), encoding="utf-8")
        for arm, config in (("every check", full_config), ("early stops", stopped_config)):
            out = Path(tmp) / arm.replace(" ", "_")
            import_rows(source, task, out)
            before, started = engine.requests, time.perf_counter()
            summary = judge_dataset(out, config, engine_factory=lambda c, m: engine)
            seconds = time.perf_counter() - started
            kept = filter_dataset(out, Path(tmp) / f"{out.name}_kept", spec.filter.spec)
            results[arm] = {"rows": len(rows), "requests": engine.requests - before, "seconds": round(seconds, 1),
                            "rows_per_s": round(len(rows) / seconds, 3), "skipped_checks": summary.skipped_checks,
                            "kept": kept.kept,
                            "kept_ids": read_rows(kept.out).column("id").to_pylist() if kept.kept else []}
    engine.engine.close()

    full, stopped = results["every check"], results["early stops"]
    print(f"{task}: {len(rows)} rows of {args.dataset}; judge {full_config.model}; stops {stops}; "
          f"engine start-up {startup:.1f} s (not counted)")
    print(f"{'arm':<12} {'requests':>9} {'per row':>8} {'seconds':>8} {'rows/s':>7} {'kept':>5}")
    for arm, r in results.items():
        print(f"{arm:<12} {r['requests']:>9} {r['requests'] / r['rows']:>8.2f} {r['seconds']:>8.1f} "
              f"{r['rows_per_s']:>7.3f} {r['kept']:>5}")
    ratio = stopped["rows_per_s"] / full["rows_per_s"]
    same = full["kept_ids"] == stopped["kept_ids"]
    print(f"early stops / every check: rows/s {ratio:.2f}x, requests {stopped['requests'] / full['requests']:.2f}; "
          f"same kept rows: {same}; checks per row {len(plan.checks)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {arm: {k: v for k, v in r.items() if k != "kept_ids"} for arm, r in results.items()}
        args.json.write_text(json.dumps({"task": task, "dataset": str(args.dataset), "stops": stops,
                                         "startup_s": round(startup, 1), "arms": figures,
                                         "rows_per_s_ratio": round(ratio, 3), "same_kept_rows": same}, indent=2))


if __name__ == "__main__":
    main()
