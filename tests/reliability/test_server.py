"""Reliability suite 4: server faults under the openai engine, against a real vLLM server on 127.0.0.1.

Faults: a port where nothing listens; HTTP 500, 429 (Retry-After), slow answers and dropped connections
injected by a local proxy in front of the real server; a server that keeps failing; the server
SIGKILLed mid-run and started again. Each run either completes with the uninterrupted run's rows or
stops with one clear line, keeps every shard already written, and a rerun resumes to completion.

The suites of tests/reliability share one server (tests/reliability/conftest.py); the restart test kills it and
starts it again on the same port.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from datagen.engines.vllm_server import pick_free_port
from tests.support.reliability import (
    FaultProxy,
    check_consistent,
    compare_with_reference,
    leftovers,
    read_kind,
    retry_config,
    run_cli,
    start_runner,
)
from tests.reliability.conftest import SHARD_ROWS, reliability_args

pytestmark = [pytest.mark.server, pytest.mark.model]

CLEAN = {"lost": 0, "duplicated": 0, "differing": 0}


def args(out: Path, base_url: str, config: Path | None = None) -> list[str]:
    return reliability_args(out, base_url, config)


def error_line(result) -> str:
    """The CLI's error is exactly one line starting with 'error:', the last one; before it stand only datagen's
    own progress lines (no traceback, nothing from the engine)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr[-3000:]
    assert all(line.startswith(("generating:", "loading ", "warning:")) for line in lines[:-1]), result.stderr[-3000:]
    return errors[0]


def test_port_where_nothing_listens_stops_with_one_line_then_resumes(server, reference, tmp_path):
    out = tmp_path / "out"
    dead_url = f"http://127.0.0.1:{pick_free_port()}/v1"
    result = run_cli(args(out, dead_url))
    assert result.returncode != 0
    line = error_line(result)
    assert f"no OpenAI-compatible server at {dead_url}" in line and "openai.base_url" in line
    assert not (out / "data").exists() and not (out / ".datagen.lock").exists()

    rerun = run_cli(args(out, server.base_url))  # the same command with the right URL
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert compare_with_reference(out, reference[0]) == CLEAN and not leftovers(out)


def test_injected_500_429_slow_and_dropped_answers_are_retried_to_the_same_rows(server, reference, tmp_path):
    def policy(key: str, attempt: int):
        kind = int(key[:8], 16) % 5  # a fixed, prompt-dependent mix
        if kind == 0 and attempt == 1:
            return ("status", 500, None)
        if kind == 1 and attempt <= 2:
            return ("status", 429, 1)
        if kind == 2 and attempt == 1:
            return ("slow", 3.0)
        if kind == 3 and attempt == 1:
            return ("drop",)
        if kind == 4 and attempt == 1:
            return ("status", 503, None)
        return None

    proxy = FaultProxy(server.base_url, policy)
    try:
        result = run_cli(args(tmp_path / "out", proxy.base_url))
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr[-2000:]
    print(f"\nserver suite, injected: {dict(proxy.injected)}; forwarded {proxy.forwarded}")
    assert {"http_500", "http_429", "http_503", "slow", "drop"} <= set(proxy.injected)
    assert compare_with_reference(tmp_path / "out", reference[0]) == CLEAN and not leftovers(tmp_path / "out")
    rejects = read_kind(tmp_path / "out", "rejects")
    assert not [row for row in rejects if row["reason"] == "engine_error"]


def test_server_that_keeps_failing_stops_cleanly_and_a_rerun_resumes(server, reference, tmp_path):
    out = tmp_path / "out"
    first_shard = SHARD_ROWS * 3  # requests of shard 0 (3 prompts per seed)
    proxy = FaultProxy(server.base_url)
    proxy.policy = lambda key, attempt: ("status", 503, None) if len(proxy.attempts) > first_shard else None
    try:
        result = run_cli(args(out, proxy.base_url, retry_config(tmp_path / "retry.yaml", max_retries=2)))
    finally:
        proxy.close()
    assert result.returncode != 0
    line = error_line(result)
    assert "still failed after 2 retries (HTTP 503" in line and "rerun the same command" in line
    manifest = check_consistent(out)
    assert manifest["status"] == "running" and [s["index"] for s in manifest["shards"]] == [0]
    kept = manifest["shards"][0]["data"]["sha256"]
    assert not leftovers(out)  # no tmp file, no unlisted shard, lock released

    rerun = run_cli(args(out, server.base_url))  # default retry policy: same fingerprint, resumes
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "1 resumed" in rerun.stderr
    assert json.loads((out / "manifest.json").read_text())["shards"][0]["data"]["sha256"] == kept
    assert compare_with_reference(out, reference[0]) == CLEAN and not leftovers(out)


def test_server_killed_mid_run_then_restarted_and_resumed(server, reference, tmp_path):
    """Last in the module: it SIGKILLs the module's server and starts it again on the same port."""
    out, log = tmp_path / "out", tmp_path / "run.log"
    process = start_runner(args(out, server.base_url, retry_config(tmp_path / "retry.yaml", max_retries=3)), log=log)
    deadline = time.monotonic() + 600
    while not ((manifest := check_consistent(out)) and manifest["shards"]):
        assert process.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    server.kill()
    code = process.wait(timeout=300)
    written = check_consistent(out)["shards"]
    if code == 0:  # every shard was already in flight and answered before the kill
        pytest.fail("the run finished before the server was killed; nothing was tested")
    line = [text for text in log.read_text().splitlines() if text.strip()][-1]
    assert line.startswith("error:") and f"server at {server.base_url} still failed after 3 retries" in line, line
    assert "connection error" in line and not leftovers(out)

    restart_s = server.start()
    print(f"\nserver suite: killed after {len(written)} shard(s); restarted in {restart_s:.0f} s")
    rerun = run_cli(args(out, server.base_url))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = {s["index"]: s["data"]["sha256"] for s in json.loads((out / "manifest.json").read_text())["shards"]}
    assert all(final[s["index"]] == s["data"]["sha256"] for s in written)  # kept, not rewritten
    assert compare_with_reference(out, reference[0]) == CLEAN and not leftovers(out)
