"""Helpers shared by the reliability suites (tests/test_reliability_*.py): run the real CLI, read an
output directory back, and compare it with an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datagen.shards import LOCK, MANIFEST, file_sha256

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "examples" / "seeds.txt"
RUNNER = REPO / "tests" / "crash_runner.py"
SERVED_NAME = "qwen2.5-0.5b"


def server_url(request: pytest.FixtureRequest) -> str:
    """The module's real vLLM server; ``DATAGEN_TEST_SERVER_URL`` reuses one already running (local debugging)."""
    return os.environ.get("DATAGEN_TEST_SERVER_URL") or request.getfixturevalue("vllm_server_url")


def sts_args(out: Path, base_url: str, *, seeds: int, shard_rows: int, max_tokens: int, extra: tuple = ()) -> list[str]:
    """``datagen sts`` arguments for a small greedy run through the openai engine."""
    return [
        "sts", "--seeds", str(SEEDS), "--out", str(out), "--limit", str(seeds), "--shard-rows", str(shard_rows),
        "--mode", "separate", "--temperature", "0", "--max-tokens", str(max_tokens),
        "--engine", "openai", "--base-url", base_url, "--model", SERVED_NAME, *extra,
    ]  # fmt: skip


def cli_env() -> dict[str, str]:
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "COLUMNS": "400", "PYTHONUNBUFFERED": "1"}


def start_runner(cli: list[str], *, kill_at: str | None = None, count_to: Path | None = None, log: Path | None = None):
    """Start tests/crash_runner.py (the real CLI, optionally armed to SIGKILL itself) as a subprocess."""
    argv = [sys.executable, str(RUNNER)]
    if kill_at:
        argv += ["--kill-at", kill_at]
    if count_to:
        argv += ["--count-to", str(count_to)]
    output = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([*argv, "--", *cli], cwd=REPO, env=cli_env(), stdout=output, stderr=subprocess.STDOUT)
    finally:
        if log:
            output.close()


def run_cli(cli: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m datagen.cli`` to the end; the caller checks the exit code."""
    return subprocess.run(
        [sys.executable, "-m", "datagen.cli", *cli], cwd=REPO, env=cli_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def read_kind(out: Path, kind: str) -> list[dict]:
    """All rows of ``kind`` in the shards the manifest lists, in shard order."""
    manifest = json.loads((out / MANIFEST).read_text())
    rows: list[dict] = []
    for shard in manifest["shards"]:
        rows += pq.read_table(out / shard[kind]["path"]).to_pylist()
    return rows


def check_consistent(out: Path) -> dict | None:
    """What must hold in OUT at any instant, even right after SIGKILL: the manifest parses and every
    shard it lists exists with its recorded size and sha256. Returns the manifest (None if none yet)."""
    if not (out / MANIFEST).exists():
        return None
    manifest = json.loads((out / MANIFEST).read_text())  # os.replace: never half a JSON file
    for shard in manifest["shards"]:
        for kind in ("data", "rejects"):
            path = out / shard[kind]["path"]
            assert path.is_file(), f"manifest lists {path}, which is missing"
            assert path.stat().st_size == shard[kind]["bytes"] and file_sha256(path) == shard[kind]["sha256"]
    return manifest


def leftovers(out: Path) -> list[str]:
    """Files a finished run must not leave: tmp files, shards the manifest does not list, the lock."""
    manifest = json.loads((out / MANIFEST).read_text())
    listed = {shard[kind]["path"] for shard in manifest["shards"] for kind in ("data", "rejects")}
    found = [f"{p.parent.name}/{p.name}" for kind in ("data", "rejects") for p in (out / kind).glob("*")]
    extra = [name for name in found if name not in listed]
    extra += [p.name for p in out.glob("*.tmp")]
    if (out / LOCK).exists():
        extra.append(LOCK)
    return extra


def compare_with_reference(out: Path, reference: Path) -> dict[str, int]:
    """Rows lost / duplicated / differing against an uninterrupted run, data and rejects together."""
    counts = {"lost": 0, "duplicated": 0, "differing": 0}
    for kind in ("data", "rejects"):
        got, want = read_kind(out, kind), read_kind(reference, kind)
        got_ids = [row["id"] for row in got]
        want_by_id = {row["id"]: row for row in want}
        counts["duplicated"] += len(got_ids) - len(set(got_ids))
        counts["lost"] += len(set(want_by_id) - set(got_ids))
        counts["differing"] += sum(1 for row in got if want_by_id.get(row["id"]) != row)
    return counts
