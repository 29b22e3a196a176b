"""The greedy ``datagen nli`` run that several real-engine suites share: one uninterrupted reference run
per test session, compared with the runs that a test interrupts and resumes (SIGINT, SIGTERM, SIGKILL)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "examples" / "seeds.txt"
REAL_SEEDS, REAL_SHARD_ROWS = 12, 4  # 3 shards: one to wait for, some left to interrupt


def engine_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: no terminal (stderr is a pipe), the KV cache the tests use."""
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", **extra}


def greedy_nli_args(out: Path, tmp: Path, *extra: str) -> list[str]:
    """``datagen nli`` greedy, separate mode, each shard alone in the engine (``vllm.overlap_shards: false``) and no
    prefix cache, so a shard's rows do not depend on what ran before it: an interrupted run, resumed, gives the
    uninterrupted rows. With the prefix cache on, a shard regenerated first on a fresh engine came out different
    from the same shard run second (measured: one seed's row became a reject), as vLLM on CPU is not bit-exact
    between a cached and a recomputed prefix."""
    config = tmp / "nli_greedy_solo.yaml"
    if not config.exists():
        config.write_text(yaml.safe_dump({"generate": {
            "task": "nli", "mode": "separate", "sampling": {"temperature": 0.0},
            "vllm": {"overlap_shards": False, "enable_prefix_caching": False},
        }}))
    return ["-m", "datagen.cli", "nli", "--seeds", str(SEEDS), "--out", str(out), "--config", str(config),
            "--limit", str(REAL_SEEDS), "--shard-rows", str(REAL_SHARD_ROWS), *extra]
