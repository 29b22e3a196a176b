"""The reliability suites share one real vLLM server (batch invariant, so greedy runs are reproducible row for
row) and one uninterrupted reference run: the crash suite kills the CLI, the fault suite breaks and kills the
server and starts it again on the same port, and both compare their resumed runs with the same reference."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.reliability import ManagedServer, run_cli, sts_args

SEEDS, SHARD_ROWS, MAX_TOKENS = 6, 2, 32  # 3 shards of 2 seeds x 3 prompts (separate mode)


def reliability_args(out: Path, base_url: str, config: Path | None = None) -> list[str]:
    """The one ``datagen sts`` command (greedy, openai engine) that every reliability run uses."""
    extra = ("--config", str(config)) if config else ()
    return sts_args(out, base_url, seeds=SEEDS, shard_rows=SHARD_ROWS, max_tokens=MAX_TOKENS, extra=extra)


class ExternalServer:
    """``DATAGEN_TEST_SERVER_URL``: a server already running (local debugging); it cannot be killed."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def kill(self) -> None:
        pytest.skip("DATAGEN_TEST_SERVER_URL is set: this test must kill and restart the server")

    start = stop = kill


@pytest.fixture(scope="package")
def server(embedded_model_path, tmp_path_factory):
    """A real vLLM OpenAI server on a fixed 127.0.0.1 port that a test may SIGKILL and start again."""
    if os.environ.get("DATAGEN_TEST_SERVER_URL"):
        yield ExternalServer(os.environ["DATAGEN_TEST_SERVER_URL"])
        return
    managed = ManagedServer(embedded_model_path, tmp_path_factory.mktemp("server") / "server.log")
    managed.start()
    yield managed
    managed.stop()


@pytest.fixture(scope="package")
def reference(server, tmp_path_factory) -> tuple[Path, float]:
    """An uninterrupted run, and how long it took (the crash suite scales its timed kills by it)."""
    out = tmp_path_factory.mktemp("reliability") / "reference"
    started = time.monotonic()
    result = run_cli(reliability_args(out, server.base_url))
    assert result.returncode == 0, result.stderr[-2000:]
    return out, time.monotonic() - started
