"""Reliability suite 6: security. Output paths cannot escape OUT, temporary names cannot be hijacked by a
planted symlink, no loading path unpickles, and an API key never reaches a file, a manifest, Parquet
metadata or a log.

The sandboxed templates are tested in tests/test_prompts.py (a template reaching for ``__class__`` is
refused) and tests/test_reliability_seeds.py (template syntax in seeds is never evaluated); the model's
sha256 check in tests/test_models.py.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datagen.config import load_config
from datagen.errors import StorageError
from datagen.generation.run import generate
from datagen.dataset.manifest import MANIFEST
from tests.support.fake_run import STORAGE_OVERRIDES, no_model_preparation
from tests.support.fakes import FakeEngine
from tests.support.reliability import compare_with_reference
from tests.engines.test_openai import StubServer

REPO = Path(__file__).resolve().parents[2]
CLEAN = {"lost": 0, "duplicated": 0, "differing": 0}


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", no_model_preparation)


def run(seeds: Path, out: Path):
    return generate(load_config(None, STORAGE_OVERRIDES), seeds, out, engine_factory=lambda c, m: FakeEngine("sts"))


@pytest.fixture
def finished(seed_file, tmp_path) -> Path:
    out = tmp_path / "out"
    run(seed_file, out)
    return out


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- paths stay inside OUT


@pytest.mark.parametrize("path", [
    "../outside/part-00000.parquet", "/tmp/part-00000.parquet", "data/../../part-00000.parquet",
    "data/part-00000.parquet/../../x", "data/sub/part-00000.parquet", 7, None,
])  # fmt: skip
def test_edited_manifest_cannot_point_outside_out(seed_file, finished, tmp_path, path):
    manifest = json.loads((finished / MANIFEST).read_text())
    manifest["shards"][1]["data"]["path"] = path
    (finished / MANIFEST).write_text(json.dumps(manifest))
    outside = tmp_path / "outside"
    outside.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(StorageError, match="is not <dir>/part-NNNNN.parquet inside the output directory") as caught:
        run(seed_file, finished)
    assert "\n" not in str(caught.value) and "delete" in str(caught.value)
    assert snapshot(tmp_path) == before  # nothing written or removed anywhere


def test_symlinked_data_dir_is_refused_and_its_target_untouched(seed_file, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    out.mkdir()
    (out / "data").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StorageError, match="symbolic link out of .*remove the link") as caught:
        run(seed_file, out)
    assert "\n" not in str(caught.value)
    assert [p.name for p in elsewhere.iterdir()] == ["precious.txt"]
    assert (elsewhere / "precious.txt").read_text() == "keep me"


def test_symlink_planted_at_a_temporary_name_is_not_written_through(seed_file, finished, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out2"
    out.mkdir()
    (out / "data").mkdir()
    (out / "data" / "part-00000.parquet.tmp").symlink_to(victim)
    (out / (MANIFEST + ".tmp")).symlink_to(victim)
    run(seed_file, out)
    assert victim.read_text() == "keep me"
    assert compare_with_reference(out, finished) == CLEAN
    assert not any(p.is_symlink() for p in out.rglob("*"))


def test_symlinked_shard_file_is_not_trusted(seed_file, finished, tmp_path):
    """A shard replaced by a link to a copy with the same bytes still fails verification and is rewritten."""
    shard = finished / "data" / "part-00001.parquet"
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(shard.read_bytes())
    shard.unlink()
    shard.symlink_to(copy)
    summary = run(seed_file, finished)
    assert summary.shards_written == 1 and not shard.is_symlink()
    assert copy.read_bytes() == shard.read_bytes()  # the link's target was left as it was


# ---------------------------------------------------------------- no pickle in any loading path

UNPICKLING_CALLS = {"pickle.load", "pickle.loads", "torch.load", "joblib.load", "dill.load", "cloudpickle.load",
                    "pd.read_pickle", "pandas.read_pickle", "np.load", "numpy.load", "shelve.open"}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_no_loading_path_unpickles():
    """Every module datagen ships is parsed; none imports pickle-like modules or calls a loader that can
    unpickle (np.load included: its allow_pickle is a foot-gun we never need)."""
    found = []
    for path in sorted((REPO / "datagen").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
                found += [f"{path.name}: import {n}" for n in names if n.split(".")[0] in {"pickle", "dill", "joblib", "shelve", "cloudpickle"}]
            if isinstance(node, ast.Call) and dotted(node.func) in UNPICKLING_CALLS:
                found.append(f"{path.name}:{node.lineno}: {dotted(node.func)}")
    assert found == []


@pytest.mark.model
def test_the_encoder_loader_refuses_pickled_weights(tmp_path, minilm):
    """A folder that only has pytorch_model.bin (a pickle) is not loaded."""
    from datagen.encoders import load_encoder
    from datagen.errors import DatagenError

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(DatagenError, match="cannot load encoder"):
        load_encoder(str(tmp_path))


# ---------------------------------------------------------------- API keys


def test_api_key_reaches_the_server_and_nothing_else(seed_file, tmp_path):
    """The real CLI with the openai engine against a local OpenAI-shaped stub: the key is sent as a bearer
    token, and no byte of OUT (manifest, Parquet data, rejects, metadata) nor any log line holds it."""
    secret = "sk-datagen-test-never-write-me-0123456789"
    stub = StubServer()
    try:
        env = {**os.environ, "DATAGEN_KEY_UNDER_TEST": secret, "COLUMNS": "300"}
        config = tmp_path / "key.yaml"
        config.write_text("generate:\n  task: sts\n  openai:\n    api_key_env: DATAGEN_KEY_UNDER_TEST\n")
        out = tmp_path / "out"
        result = subprocess.run(
            [sys.executable, "-m", "datagen.cli", "sts", "--seeds", str(seed_file), "--out", str(out),
             "--config", str(config), "--engine", "openai", "--base-url", stub.base_url, "--model", "stub-model",
             "--mode", "separate", "--shard-rows", "4"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        stub.server.shutdown()
    assert result.returncode == 0, result.stderr[-2000:]
    assert stub.headers and {h["authorization"] for h in stub.headers} == {f"Bearer {secret}"}
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["config"]["openai"]["api_key_env"] == "DATAGEN_KEY_UNDER_TEST"  # the name, not the value
    files = snapshot(out)
    assert any(name.startswith("rejects/") for name in files) or any(name.startswith("data/") for name in files)
    assert [name for name, blob in files.items() if secret.encode() in blob] == []
    assert secret not in result.stdout + result.stderr
