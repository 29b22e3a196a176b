"""Runs of the real CLI for the terminal tests: the scripted loud engine (fast) and real vLLM (``model``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FAKE_CLI = REPO / "tests" / "support" / "fake_cli.py"
SEEDS = REPO / "examples" / "seeds.txt"
REAL_SEEDS, REAL_SHARD_ROWS = 16, 4  # 4 shards: one to wait for, some left to interrupt


def engine_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: no terminal (stderr is a pipe), the KV cache the tests use."""
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", **extra}


def start(args: list[str], **extra_env: str) -> subprocess.Popen:
    """Start a CLI in its own process group (as a shell runs a foreground job), stdout and stderr piped."""
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=engine_env(**extra_env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_for(condition, process: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"datagen exited (rc {process.returncode}) before {what}:\n{err[-3000:]}")
        if time.time() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def shards_journaled(out: Path) -> int:
    journal = out / "manifest.json.journal"
    return journal.read_text().count("\n") if journal.exists() else 0


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


@pytest.fixture(scope="session")
def greedy_nli_reference(tmp_path_factory, embedded_model_path) -> tuple[Path, subprocess.CompletedProcess]:
    """One uninterrupted real run without a terminal: the quiet-terminal test reads its stderr, the
    interrupt tests compare their resumed rows with its rows."""
    tmp = tmp_path_factory.mktemp("greedy_nli")
    out = tmp / "reference"
    result = subprocess.run([sys.executable, *greedy_nli_args(out, tmp)], cwd=REPO, env=engine_env(), text=True,
                            capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result
