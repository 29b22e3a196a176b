"""`datagen judge` against the real things: vLLM with the embedded model, a real vLLM OpenAI server, and a
server that cannot return logprobs. The rows are hand-written, so which label is right is known."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datagen.dataset.shards import read_rows
from datagen.quality.judge import JUDGE, load_judge_plan
from tests.engines.test_openai import StubServer, chat_reply

REPO = Path(__file__).resolve().parents[2]

# (anchor, entailment, contradiction): the first three rows are right, the last two have a wrong entailment.
ROWS = [
    ("A man in a red jacket is playing a guitar on a street corner.", "A man is playing a guitar.",
     "A woman is playing a guitar on a street corner."),
    ("Two children are building a sandcastle on the beach.", "Children are on the beach.",
     "Two children are building a snowman in the park."),
    ("The bakery opens at six every morning.", "The bakery opens in the morning.",
     "The bakery opens at noon every day."),
    ("A dog is sleeping on the porch.", "A dog is chasing a cat across the street.",
     "A dog is running on the porch."),
    ("A chef is chopping onions in a small kitchen.", "A chef is cooking dinner for a famous actor.",
     "Nobody is in the kitchen."),
]


def dataset_file(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"row{i}", "anchor": a, "entailment": e, "contradiction": c}) + "\n"
                            for i, (a, e, c) in enumerate(ROWS)))
    return path


def run_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "datagen.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def entailment_probabilities(out: Path) -> dict[str, float]:
    return {r["id"]: r["p_entailment_entailed"] for r in read_rows(out, JUDGE).to_pylist()}


@pytest.mark.model
def test_judge_on_real_vllm_ranks_right_entailments_above_wrong_ones(tmp_path, embedded_model_path):
    out = tmp_path / "judged"
    result = run_cli("judge", str(dataset_file(tmp_path)), "--task", "nli", "--out", str(out), "--model", "qwen2.5-0.5b")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "judged 5 rows with qwen2.5-0.5b" in result.stderr
    p = entailment_probabilities(out)
    assert min(p["row0"], p["row1"], p["row2"]) > max(p["row3"], p["row4"]), p
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["judge"]["rows"] == 5 and manifest["judge"]["unanswered_checks"] == 0
    again = run_cli("judge", str(out), "--model", "qwen2.5-0.5b", timeout=300)
    assert again.returncode == 0 and "0 shards judged, 1 kept" in again.stderr  # resumed: nothing to redo
    # with an early stop between the two clusters, the wrong rows are not asked the later checks
    bar = (min(p["row0"], p["row1"], p["row2"]) + max(p["row3"], p["row4"])) / 2
    stopped = run_cli("judge", str(out), "--model", "qwen2.5-0.5b", "--stop-below", f"entailment_entailed={bar}",
                      timeout=300)
    assert stopped.returncode == 0 and "1 shards judged" in stopped.stderr, stopped.stderr[-3000:]
    later = len(load_judge_plan("nli").checks) - 1
    assert f"{2 * later} checks not asked after a stop bar" in stopped.stderr
    rows = {r["id"]: r for r in read_rows(out, JUDGE).to_pylist()}
    assert all(math.isnan(rows[i]["p_contradiction_false"]) for i in ("row3", "row4"))
    assert all(rows[i]["p_contradiction_false"] >= 0 for i in ("row0", "row1", "row2"))
    assert entailment_probabilities(out) == pytest.approx(p, abs=0.02)  # batched otherwise, answered alike


@pytest.mark.server
@pytest.mark.model
def test_judge_through_a_real_vllm_server(tmp_path, vllm_server_url):
    out = tmp_path / "judged"
    result = run_cli("judge", str(dataset_file(tmp_path)), "--task", "nli", "--out", str(out),
                     "--engine", "openai", "--base-url", vllm_server_url, "--model", "qwen2.5-0.5b")
    assert result.returncode == 0, result.stderr[-3000:]
    p = entailment_probabilities(out)
    assert min(p["row0"], p["row1"], p["row2"]) > max(p["row3"], p["row4"]), p
    assert json.loads((out / "manifest.json").read_text())["judge"]["model"] == {"name": "qwen2.5-0.5b", "sha256": None}


def test_a_server_without_logprobs_gets_a_one_line_error(tmp_path):
    stub = StubServer()

    def no_logprobs(body, attempt):
        reply = chat_reply({**body, "logprobs": False})
        return 200, reply, {}, 0.0

    stub.policy = no_logprobs
    try:
        out = tmp_path / "judged"
        result = run_cli("judge", str(dataset_file(tmp_path)), "--task", "nli", "--out", str(out),
                         "--engine", "openai", "--base-url", stub.base_url, "--model", "stub-model", timeout=120)
    finally:
        stub.close()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and "logprobs" in lines[0], result.stderr
    assert not (out / JUDGE).exists() or not list((out / JUDGE).glob("part-*"))


def test_judge_cli_refuses_a_file_without_task_and_out(tmp_path):
    result = run_cli("judge", str(dataset_file(tmp_path)), timeout=120)
    assert result.returncode == 2 and "pass --task" in result.stderr and "--out DIR" in result.stderr


def test_judge_cli_refuses_a_malformed_stop_bar_before_touching_anything(tmp_path):
    out = tmp_path / "judged"
    result = run_cli("judge", str(dataset_file(tmp_path)), "--task", "nli", "--out", str(out),
                     "--stop-below", "entailment_entailed", timeout=120)
    assert result.returncode == 2 and "--stop-below 'entailment_entailed': write CHECK=P, e.g. entailment_entailed=0.98" in result.stderr
    assert not out.exists()
