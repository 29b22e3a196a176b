"""Ctrl-C and SIGTERM: one line, exit 130/143, no traceback, the lock released, and a rerun resumes.

The fast tests run the real CLI in a subprocess with the scripted loud engine (tests/support/fake_cli.py);
the ``model`` tests do the same on real vLLM, where the engine's processes share the process group.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import typer

from datagen.dataset.shards import LOCK, read_rows
from datagen.cli.interrupts import StopSignals, Stopped, exit_code_of
from datagen.cli.session import ModelSession
from datagen.engines.base import LogprobsEngine, StreamingEngine
from tests.cli.conftest import FAKE_CLI, shards_journaled, start, wait_for
from tests.support.real_runs import REAL_SEEDS, REAL_SHARD_ROWS, greedy_nli_args

INTERRUPTED = re.compile(r"^interrupted: (\d+) of (\d+) shards kept; run the same command to resume$", re.M)
SEED_COUNT, SHARD_ROWS = 10, 2  # the seed_file fixture: 5 shards


def fake_args(seeds: Path, out: Path) -> list[str]:
    return [str(FAKE_CLI), "nli", "--seeds", str(seeds), "--out", str(out), "--shard-rows", str(SHARD_ROWS)]


def send(process: subprocess.Popen, signum: int, to: str) -> None:
    """``group``: what a terminal does on Ctrl-C (every process of the job gets it); ``pid``: ``kill PID``."""
    if to == "group":
        os.killpg(process.pid, signum)
    else:
        os.kill(process.pid, signum)


def row_ids(out: Path) -> list[str]:
    return read_rows(out).to_pandas()["id"].tolist()


def every_id(out: Path) -> list[str]:
    """Ids of rows and rejects: each seed's, whichever it became."""
    has_rejects = json.loads((out / "manifest.json").read_text())["counts"]["rejects"] > 0
    rejects = read_rows(out, "rejects").to_pandas()["id"].tolist() if has_rejects else []
    return sorted(row_ids(out) + rejects)


def assert_clean_stop(process: subprocess.Popen, err: str, out: Path, code: int) -> tuple[int, int]:
    assert process.returncode == code, err[-3000:]
    assert "Traceback" not in err and "leaked shared_memory" not in err, err[-3000:]
    assert not (out / LOCK).exists()
    match = INTERRUPTED.search(err)
    assert match, err[-3000:]
    return int(match[1]), int(match[2])


@pytest.mark.parametrize("signum, to, code", [(signal.SIGINT, "group", 130), (signal.SIGTERM, "pid", 143)])
def test_a_stop_mid_run_is_one_line_and_a_rerun_resumes(tmp_path, seed_file, signum, to, code):
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, *fake_args(seed_file, reference)], check=True, capture_output=True)
    out = tmp_path / "stopped"
    process = start(fake_args(seed_file, out), FAKE_BATCH_S="0.5")
    wait_for(lambda: shards_journaled(out) >= 1, process, 60, "the first shard")
    send(process, signum, to)
    _, err = process.communicate(timeout=60)

    kept, total = assert_clean_stop(process, err, out, code)
    assert 1 <= kept < total == SEED_COUNT // SHARD_ROWS
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    assert not (out / "manifest.json.journal").exists()  # compacted into one whole manifest

    rerun = subprocess.run([sys.executable, *fake_args(seed_file, out)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{kept} resumed" in rerun.stderr
    assert row_ids(out) == row_ids(reference)


def test_a_stop_while_the_engine_starts_waits_for_it_then_exits(tmp_path, seed_file):
    marks, out = tmp_path / "marks", tmp_path / "out"
    marks.mkdir()
    process = start(fake_args(seed_file, out), FAKE_START_S="3", FAKE_MARKS=str(marks))
    wait_for(lambda: (marks / "child-sigmask").exists(), process, 60, "the engine's child process")
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the engine's child gets it too
    _, err = process.communicate(timeout=60)

    assert (marks / "child-sigmask").read_text() == "SIGINT"  # started with SIGINT blocked: it never saw Ctrl-C
    assert "stopping as soon as the engine has started" in err
    assert assert_clean_stop(process, err, out, 130) == (0, SEED_COUNT // SHARD_ROWS)
    assert not _alive(int((marks / "child-pid").read_text()))  # shut down by datagen, not left behind


def test_a_second_stop_while_the_engine_starts_exits_at_once(tmp_path, seed_file):
    marks, out = tmp_path / "marks", tmp_path / "out"
    marks.mkdir()
    process = start(fake_args(seed_file, out), FAKE_START_S="60", FAKE_MARKS=str(marks))
    wait_for(lambda: (marks / "child-pid").exists(), process, 60, "the engine's child process")
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.5)
    stopped = time.time()
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=30)

    assert time.time() - stopped < 10  # not the 60 s the engine would take to start
    assert process.returncode == 130 and "stopping at once" in err and "Traceback" not in err
    assert not _alive(int((marks / "child-pid").read_text()))


def test_a_signal_becomes_stopped_with_the_shells_exit_code():
    assert exit_code_of(Stopped(signal.SIGINT)) == 130 and exit_code_of(Stopped(signal.SIGTERM)) == 143
    assert exit_code_of(KeyboardInterrupt()) == 130


# --- in this process: the handlers, the shield, what a session leaves behind ------------------------------------


class SlowClose:
    """An engine whose shutdown is hit by a stop signal halfway (Ctrl-C while vLLM shuts down)."""

    name, model_name = "vllm", "m"

    def __init__(self) -> None:
        self.steps: list[str] = []

    def generate(self, requests):
        return []

    def first_token_logprobs(self, requests, *, top_k: int = 20):
        return []

    def close(self) -> None:
        self.steps.append("shutdown began")
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs during this sleep (it would raise Stopped here)
        self.steps.append("processes joined")


def terminal_state() -> tuple:
    """The signal handlers, the main thread's signal mask and datagen's watcher thread."""
    return (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM),
            signal.pthread_sigmask(signal.SIG_BLOCK, set()),
            [thread.name for thread in threading.enumerate() if thread.name == "datagen-signals"])


def wakeup_fd() -> int:
    previous = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(previous)
    return previous


def test_a_signal_during_the_engines_close_lets_the_close_finish_and_the_run_succeed(tmp_path):
    engine = SlowClose()
    with ModelSession(tmp_path / "logs" / "engine.log") as session:
        built = session.engine_factory(lambda config, model: engine)(SimpleNamespace(engine="vllm"),
                                                                     SimpleNamespace(name="m"))
        assert isinstance(built, LogprobsEngine) and not isinstance(built, StreamingEngine)  # its capabilities
        built.close()  # as generate's finally does: no Stopped, no exit 130
    assert engine.steps == ["shutdown began", "processes joined"]
    assert session._signals.deferred == signal.SIGINT


def test_a_stop_during_shielded_cleanup_is_recorded_and_later_ones_ignored():
    with StopSignals() as signals:
        with signals.shielded():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # the cleanup after the shield (the manifest's last write) runs too
        time.sleep(0.05)
    assert signals.deferred == signal.SIGTERM and signals.stopping


@pytest.mark.parametrize("raised, exit_code", [(None, None), (RuntimeError("boom"), None), (Stopped(signal.SIGTERM), 143)])
def test_a_session_restores_handlers_mask_and_wakeup_fd_whatever_its_block_does(tmp_path, raised, exit_code):
    before = terminal_state(), wakeup_fd()

    def build(config, model):
        if raised is not None:
            raise raised
        return SlowClose()

    expected = typer.Exit if exit_code else type(raised)  # a stop becomes the shell's exit code
    with pytest.raises(expected) if raised else nullcontext() as error:
        with ModelSession(tmp_path / "logs" / "engine.log") as session:
            session.engine_factory(build)(SimpleNamespace(engine="vllm"), SimpleNamespace(name="m"))
    if exit_code is not None:
        assert error.value.exit_code == exit_code
    assert (terminal_state(), wakeup_fd()) == before


def test_a_signal_while_the_engine_starts_is_raised_once_it_is_up_and_everything_is_restored():
    before, heard = terminal_state(), []
    with pytest.raises(Stopped) as stop:
        with StopSignals() as signals:
            with signals.engine_start(waiting=lambda: heard.append("waiting"), forced=lambda: heard.append("forced")):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # not raised here: the engine would be left half-started
                heard.append("started")
    assert stop.value.signum == signal.SIGINT and heard == ["waiting", "started"]
    assert terminal_state() == before


def _alive(pid: int, *, within: float = 5.0) -> bool:
    """Whether ``pid`` is still running ``within`` seconds from now (a killed process takes a moment to go)."""
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False
        if "zombie" in status:
            return False
        time.sleep(0.1)
    return True


# --- real vLLM: the engine's processes in the same process group ----------------------------------------------


def stop_real_run(tmp_path: Path, signum: int, to: str, *extra: str) -> tuple[subprocess.Popen, str, str, Path]:
    out = tmp_path / "stopped"
    process = start(greedy_nli_args(out, tmp_path, *extra))
    wait_for(lambda: shards_journaled(out) >= 1, process, 600, "the first shard")
    send(process, signum, to)
    stdout, stderr = process.communicate(timeout=120)
    return process, stdout, stderr, out


@pytest.mark.model
def test_ctrl_c_on_real_vllm_stops_cleanly_and_resumes_to_the_uninterrupted_rows(tmp_path, greedy_nli_reference):
    reference, _ = greedy_nli_reference
    process, _, err, out = stop_real_run(tmp_path, signal.SIGINT, "group")

    kept, total = assert_clean_stop(process, err, out, 130)
    assert 1 <= kept < total == REAL_SEEDS // REAL_SHARD_ROWS
    log = (out / "logs" / "engine.log").read_text()
    assert "Traceback" not in log and "leaked shared_memory" not in log  # clean, not merely hidden in the log
    assert "force killing" not in log  # vLLM's processes exited on their own

    kept_shards = json.loads((out / "manifest.json").read_text())["shards"]
    rerun = subprocess.run([sys.executable, *greedy_nli_args(out, tmp_path)], capture_output=True, text=True,
                           timeout=900, cwd=Path(__file__).resolve().parents[2])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{kept} resumed" in rerun.stderr
    final = json.loads((out / "manifest.json").read_text())
    by_index = {shard["index"]: shard for shard in final["shards"]}
    assert final["status"] == "complete" and all(by_index[s["index"]] == s for s in kept_shards)  # untouched
    assert every_id(out) == every_id(reference)  # every seed a row or a reject, once
    assert row_ids(out) == row_ids(reference)
    resumed = read_rows(out).to_pandas().drop(columns=["prompt_tokens"])
    pd.testing.assert_frame_equal(resumed, read_rows(reference).to_pandas().drop(columns=["prompt_tokens"]))


@pytest.mark.model
def test_sigterm_on_real_vllm_with_verbose_shows_the_engine_and_no_traceback(tmp_path):
    process, stdout, err, out = stop_real_run(tmp_path, signal.SIGTERM, "pid", "--verbose")

    kept, total = assert_clean_stop(process, err, out, 143)
    assert 1 <= kept < total
    everything = stdout + err  # --verbose: vLLM's lines on the terminal, so nothing can hide in a log
    assert " INFO " in everything and "(EngineCore" in everything and "[shutdown]" in everything
    assert "Traceback" not in everything and "leaked shared_memory" not in everything
    assert not (out / "logs").exists()
