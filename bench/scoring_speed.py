"""Benchmark: how many generated rows `datagen score` handles per minute on this CPU.

A dataset of real Wikipedia anchors is written through the real pipeline with the scripted engine
(``tests/fakes.py``: each output is a fixed rewrite of its anchor, so every row is distinct text). It is then
scored twice with all-MiniLM-L6-v2: a cold run (the encoder and STS-B dev are loaded and embedded) and a warm
one (a Python caller scoring a second dataset). The LLM is not involved: this measures scoring only.

    .venv/bin/python bench/scoring_speed.py [--rows 3000] [--task sts]

Prints rows/min for both runs (target: thousands of rows per minute).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_SEEDS = REPO.parent / "shared" / "data" / "corpus" / "wiki1m_for_simcse.PREFIX_1280000_bytes.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--task", default="sts", choices=["nli", "sts"])
    args = parser.parse_args()

    from datagen import models
    from datagen.config import load_config
    from datagen.generation.run import generate
    from datagen.quality.score import score_dataset
    from tests.support.fakes import FakeEngine

    models.resolve_model = lambda name: models.ResolvedModel(name, name, "sha-" + name)  # no LLM here
    config = load_config(REPO / "pipelines" / f"{args.task}.yaml", {"limit": args.rows, "mode": "joint"})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        summary = generate(config, args.seeds, out, engine_factory=lambda c, m: FakeEngine(args.task))
        for label in ("cold (loads encoder + STS-B dev)", "warm (second dataset, same process)"):
            started = time.perf_counter()
            scored = score_dataset(out, encoder="minilm")
            seconds = time.perf_counter() - started
            print(f"{label}: {summary.rows} rows in {seconds:.1f} s = {summary.rows / seconds * 60:,.0f} rows/min "
                  f"(tier order holds for {scored['tier_consistency_rate']:.1%})", flush=True)


if __name__ == "__main__":
    main()
