"""Reliability suite 1: SIGKILL `datagen sts` at 20 points, resume after each, and get the uninterrupted
dataset back (same ids, same rows; greedy decoding), with 0 rows lost and 0 duplicated.

The CLI runs as a real subprocess with the openai engine against the reliability suites' real vLLM server
(tests/reliability/conftest.py), so a kill never restarts an engine. Kill points come from a seeded RNG and mix
  * exact file-system steps (tests/crash_runner.py wraps ``os.replace`` / ``os.fsync`` in the child
    and SIGKILLs it there: a shard fsynced but not renamed, renamed but not in the manifest, the
    manifest's tmp file written but not renamed, ...), and
  * kills after a random delay, wherever the run happens to be (start-up, mid-request, mid-write).
Kills are chained: a resume may itself be killed, until a run finishes; then the result is compared
with the reference and the next chain starts in a fresh directory.
"""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest

from tests.support.reliability import (
    check_consistent,
    compare_with_reference,
    leftovers,
    run_cli,
    start_runner,
)
from tests.reliability.conftest import SEEDS, SHARD_ROWS, reliability_args

pytestmark = [pytest.mark.server, pytest.mark.model]

SHARDS = SEEDS // SHARD_ROWS
KILLS = 20
RNG_SEED = 20261125
STEP_KILLS = [  # (op, target, when): the steps that decide atomicity
    ("replace", "data", "before"), ("replace", "data", "after"),
    ("replace", "rejects", "before"), ("replace", "rejects", "after"),
    ("replace", "manifest", "before"), ("replace", "manifest", "after"),
    ("fsync", "data", "before"), ("fsync", "manifest", "before"),
]  # fmt: skip


@pytest.fixture
def base_url(server) -> str:
    return server.base_url


def test_greedy_rerun_reproduces_the_reference(base_url, reference, tmp_path):
    """Precondition of the crash test: two uninterrupted greedy runs on the server give the same rows."""
    out = tmp_path / "again"
    result = run_cli(reliability_args(out, base_url))
    assert result.returncode == 0, result.stderr[-2000:]
    assert compare_with_reference(out, reference[0]) == {"lost": 0, "duplicated": 0, "differing": 0}


def pending_shards(out: Path) -> int:
    manifest = check_consistent(out)
    return SHARDS - (len(manifest["shards"]) if manifest else 0)


def draw_kill(rng: random.Random, pending: int, seconds_per_shard: float) -> tuple[str, str | None, float | None]:
    """A kill point for the next run: (label, crash_runner --kill-at spec or None, delay or None)."""
    if rng.random() < 0.3:
        delay = rng.uniform(1.0, 2.0 + seconds_per_shard * max(pending, 1))
        return f"after {delay:.1f}s", None, delay
    op, target, when = rng.choice(STEP_KILLS)
    if pending == 0:  # only the final manifest write is left
        op, target = "replace", "manifest"
    # manifest.json is replaced at the start and at the end; its journal is fsynced once per shard between.
    per_run = {"data": pending, "rejects": pending, "manifest": pending + 2 if op == "fsync" else 2}[target]
    nth = rng.randint(1, max(1, min(per_run, 3)))
    spec = f"{op}:{target}:{nth}:{when}"
    return spec, spec, None


def run_with_kill(cli: list[str], spec: str | None, delay: float | None, log: Path) -> bool:
    """Run the CLI once with a kill point; True if it was SIGKILLed, False if it finished first."""
    process = start_runner(cli, kill_at=spec, log=log)
    try:
        if delay is not None:
            try:
                process.wait(timeout=delay)
            except Exception:
                process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if code == -signal.SIGKILL:
        return True
    assert code == 0, f"run with kill point {spec or delay} exited {code}; see {log}"
    return False


def test_sigkill_at_20_points_then_resume_gives_the_uninterrupted_dataset(base_url, reference, tmp_path):
    reference_out, reference_s = reference
    seconds_per_shard = reference_s / SHARDS
    rng = random.Random(RNG_SEED)
    kills: list[str] = []
    chains: list[dict] = []
    out, log = None, tmp_path / "runs.log"
    attempts = 0
    while len(kills) < KILLS or out is not None:
        attempts += 1
        assert attempts < 3 * KILLS, f"kill points keep missing: {kills}"
        if out is None:
            out = tmp_path / f"chain{len(chains)}"
            chain_kills: list[str] = []
        cli = reliability_args(out, base_url)
        if len(kills) < KILLS:
            label, spec, delay = draw_kill(rng, pending_shards(out), seconds_per_shard)
        else:
            label, spec, delay = "none (final resume)", None, None
        if run_with_kill(cli, spec, delay, log):
            kills.append(label)
            chain_kills.append(label)
            check_consistent(out)  # right after SIGKILL: the manifest and every shard it lists are whole
            continue
        # The run finished: the chain's kills are survived only if the data is the reference, exactly.
        outcome = compare_with_reference(out, reference_out)
        manifest = json.loads((out / "manifest.json").read_text())
        chains.append({"kills": chain_kills, **outcome, "leftovers": leftovers(out), "status": manifest["status"]})
        out = None
    print(f"\ncrash suite: {len(kills)} kills tried; chains: {json.dumps(chains, indent=1)}")
    survived = sum(len(c["kills"]) for c in chains if (c["lost"], c["duplicated"], c["differing"]) == (0, 0, 0))
    print(f"crash suite: kills survived / tried = {survived}/{len(kills)}")
    assert len(kills) == KILLS
    assert all(chain["status"] == "complete" and not chain["leftovers"] for chain in chains), chains
    assert [(c["lost"], c["duplicated"], c["differing"]) for c in chains] == [(0, 0, 0)] * len(chains), chains
    assert survived == KILLS
    # At least the rename and manifest steps were hit, not only timed kills.
    assert any("replace:data" in k for k in kills) and any("replace:manifest" in k for k in kills), kills
