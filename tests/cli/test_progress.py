"""What the terminal shows: a loading line, one progress display, the summary; engine output in OUT/logs/engine.log.

Fast tests drive the display with a fake clock and the real CLI with the scripted loud engine
(tests/support/fake_cli.py); the ``model`` test reads the terminal of a real vLLM run.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from datagen.cli import generate as generate_cli
from datagen.cli.console import datagen_warnings_on_console, say
from datagen.cli.progress import (ProgressDisplay, duration, eta, generation_details, interrupted_line,
                                  judge_interrupted_line)
from datagen.generation.status import RunStatus
from tests.cli.conftest import FAKE_CLI
from tests.generation.test_status import shard
from tests.support.fake_cli import ENGINE_LINES, WARNING


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plain_display(clock: FakeClock) -> tuple[ProgressDisplay, io.StringIO]:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=False, width=200)
    return ProgressDisplay(console, live=False, clock=clock), stream


def test_plain_display_prints_loading_ready_and_throttled_progress_lines():
    clock = FakeClock()
    display, stream = plain_display(clock)
    plan = RunStatus.at_start([shard(0, 0, 10, 9, 1)], pending=3, seeds_total=40)  # 10 seeds kept from before
    update = lambda status: display.update(status.seeds_done, status.seeds_total, title="generating", unit="seeds",
                                           details=generation_details(status))
    update(plan)
    with display.loading("loading m on vLLM (CPU)…", ready="m on vLLM (CPU) ready", note="(engine log: L)"):
        clock.now += 50  # the engine start: not part of any rate
    shards = [shard(0, 0, 10, 9, 1)]
    for step, seconds in enumerate([10, 2, 10], start=1):  # a shard after 10 s, after 2 s more, after 10 s more
        clock.now += seconds
        shards.append(shard(step, 10 * step, 10 * step + 10, 8, 2))
        update(plan.now(shards, completion_tokens=400 * step))

    lines = stream.getvalue().splitlines()
    assert lines[0] == "loading m on vLLM (CPU)…"
    assert lines[1] == "m on vLLM (CPU) ready in 50.0 s (engine log: L)"
    # 10 new seeds in 10 s (the 10 kept ones do not count): 1 seed/s, 40 tok/s, 20 seeds left
    assert lines[2] == "generating: 20/40 seeds · 17 rows kept · 15% rejected · 1.00 seeds/s · 40 tok/s · ETA 20 s"
    assert len(lines) == 4  # the shard 2 s later printed nothing (a line per 10 s at most); the last one did
    assert lines[3].startswith("generating: 40/40 seeds · 33 rows kept") and "ETA" not in lines[3]


def test_live_display_draws_on_a_terminal():
    stream = io.StringIO()
    display = ProgressDisplay(Console(file=stream, force_terminal=True, width=160), live=True)
    with display.loading("loading m…", ready="m ready"):
        pass
    display.update(3, 10, title="judging", unit="shards", details=lambda seconds, baseline: "x shards/s")
    display.close()
    text = stream.getvalue()
    assert "m ready in" in text and "judging" in text and "3/10 shards" in text and "x shards/s" in text


def test_closing_the_display_while_it_loads_stops_the_spinner_and_shows_the_cursor():
    stream = io.StringIO()
    display = ProgressDisplay(Console(file=stream, force_terminal=True, width=160), live=True)
    with display.loading("loading m…", ready="m ready"):
        display.close()  # the forced second Ctrl-C, from the watcher thread, just before os._exit
        hidden_then_shown = stream.getvalue()
    assert "\x1b[?25l" in hidden_then_shown and hidden_then_shown.endswith("\x1b[?25h")


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (46.4, "46 s"), (725, "12 min 5 s"), (7380, "2 h 3 min")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_eta_waits_for_the_first_unit_and_ends_with_the_work():
    assert eta(0, 10, 5.0) == "" and eta(4, 0, 5.0) == "" and eta(2, 6, 10.0) == "ETA 30 s"


def test_interrupted_line_says_how_far_the_run_got():
    assert interrupted_line(RunStatus(1, 5, 4, 20, 4, 0)) == (
        "interrupted: 1 of 5 shards kept; run the same command to resume")
    assert "before generation started" in interrupted_line(None)
    assert judge_interrupted_line((2, 5)) == "interrupted: 2 of 5 shards judged; run the same command to resume"
    assert "before any shard was judged" in judge_interrupted_line(None)


def test_say_prints_a_long_line_as_it_is():
    stream = io.StringIO()
    line = "[bold]not markup[/] " + "x" * 200
    say(line, to=Console(file=stream, width=40))
    assert stream.getvalue() == line + "\n"


def test_summary_line_then_the_resume_note(capsys):
    summary = SimpleNamespace(already_complete=False, out=Path("o"), rows=7, rejects=1, reject_reasons={"empty": 1},
                              shards_written=2, shards_skipped=1, seconds=3.0, resume_note="kept 1 shards (4 seeds)")
    generate_cli._print_summary(summary)
    generate_cli._print_summary(SimpleNamespace(**{**vars(summary), "resume_note": ""}))
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["o: 7 rows, 1 rejects (empty 1); 2 shards written, 1 resumed; 3.0 s", "kept 1 shards (4 seeds)",
                     "o: 7 rows, 1 rejects (empty 1); 2 shards written, 1 resumed; 3.0 s"]


def test_datagen_warnings_print_as_one_yellow_line(capsys):
    with datagen_warnings_on_console():
        logging.getLogger("datagen.engines.vllm_engine").warning("the KV cache is small [for a shard]")
    assert capsys.readouterr().err.strip() == "warning: the KV cache is small [for a shard]"


# --- the CLI with the scripted loud engine ---------------------------------------------------------------------


def run_fake_cli(seeds: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(FAKE_CLI), "nli", "--seeds", str(seeds), "--out", str(out),
                             "--shard-rows", "2", *extra], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_without_a_terminal_the_engine_is_quiet_and_its_output_is_in_the_log(tmp_path, seed_file):
    out = tmp_path / "out"
    result = run_fake_cli(seed_file, out)
    lines = result.stderr.splitlines()
    assert lines[0] == "loading qwen2.5-0.5b on vLLM (CPU)…"
    assert f"warning: {WARNING}" in lines  # datagen's own warnings still reach the person
    assert any(line.startswith("qwen2.5-0.5b on vLLM (CPU) ready in ") and line.endswith(
        f"(engine log: {out / 'logs' / 'engine.log'})") for line in lines)
    assert any(line.startswith("generating: 2/10 seeds · 2 rows kept · 0% rejected · ") for line in lines)
    assert lines[-1].startswith(f"{out}: 10 rows, 0 rejects (none); 5 shards written, 0 resumed;")
    assert len(lines) <= 6 and result.stdout == ""
    log = (out / "logs" / "engine.log").read_text()
    assert all(line in log for line in ENGINE_LINES) and not any(line in result.stderr for line in ENGINE_LINES)


def test_verbose_shows_the_engines_output_live(tmp_path, seed_file):
    out = tmp_path / "out"
    result = run_fake_cli(seed_file, out, "--verbose")
    assert ENGINE_LINES[0] in result.stdout and ENGINE_LINES[1] in result.stderr and ENGINE_LINES[2] in result.stderr
    assert "loading qwen2.5-0.5b on vLLM (CPU)…" in result.stderr and f"warning: {WARNING}" in result.stderr
    assert not (out / "logs").exists()


def test_an_engine_that_fails_to_start_is_one_error_line_after_where_its_log_is(tmp_path, seed_file):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(FAKE_CLI), "nli", "--seeds", str(seed_file), "--out", str(out)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "FAKE_FAIL": "1"})
    assert result.returncode == 1
    assert result.stderr.splitlines()[-2:] == [
        f"the engine's own output is in {out / 'logs' / 'engine.log'}",
        "error: the fake engine could not start; free some memory"]
    assert "Traceback" not in result.stderr


def test_a_finished_run_loads_no_engine_and_prints_only_the_summary(tmp_path, seed_file):
    out = tmp_path / "out"
    run_fake_cli(seed_file, out)
    again = run_fake_cli(seed_file, out)
    assert again.stderr.splitlines()[0] == f"{out}: already complete (10 rows, 0 rejects); nothing to do"
    assert "loading" not in again.stderr


def test_judge_shows_the_same_loading_line_and_its_shards(tmp_path, seed_file):
    out = tmp_path / "out"
    run_fake_cli(seed_file, out)
    result = subprocess.run([sys.executable, str(FAKE_CLI), "judge", str(out), "--model", "qwen2.5-0.5b"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "loading qwen2.5-0.5b on vLLM (CPU)…"
    assert any(line.startswith("judging: 1/5 shards · ") for line in lines)
    assert lines[-1].startswith(f"{out}: judged 10 rows with qwen2.5-0.5b")
    assert not any(line in result.stderr + result.stdout for line in ENGINE_LINES)


# --- real vLLM -------------------------------------------------------------------------------------------------


@pytest.mark.model
def test_real_vllm_without_a_terminal_shows_only_datagens_lines(greedy_nli_reference):
    out, result = greedy_nli_reference
    lines = result.stderr.splitlines()
    assert lines[0] == "loading qwen2.5-0.5b on vLLM (CPU)…"
    assert lines[1].startswith("qwen2.5-0.5b on vLLM (CPU) ready in ")
    assert lines[-1].startswith(f"{out}: ") and "shards written" in lines[-1]
    noise = ("INFO", "WARNING", "Triton", "FutureWarning", "NUMA", "Loading safetensors", "it/s]")
    assert not [line for line in lines if any(word in line for word in noise)], result.stderr
    assert len(lines) <= 8 and result.stdout == ""
    log = (out / "logs" / "engine.log").read_text()
    assert "(EngineCore" in log and " INFO " in log and "Triton" in log  # vLLM's processes wrote there instead
    assert "Traceback" not in log and "force killing" not in log and "leaked shared_memory" not in log
