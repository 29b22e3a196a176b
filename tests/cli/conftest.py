"""Runs of the real CLI for the terminal tests: the scripted loud engine (fast) and real vLLM (``model``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.real_runs import engine_env

REPO = Path(__file__).resolve().parents[2]
FAKE_CLI = REPO / "tests" / "support" / "fake_cli.py"
SEEDS = REPO / "examples" / "seeds.txt"


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
