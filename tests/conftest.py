"""Shared, session-scoped fixtures: the real embedded model and a real vLLM server."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedded_model_path() -> str:
    """The prepared bf16 folder of the default embedded model (built once, ~50 s, then cached)."""
    from datagen.models import resolve_model

    return resolve_model("qwen2.5-0.5b").path


# --- generation fixtures ---
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(__import__("os").environ.get("DATAGEN_SHARED", REPO.parent / "shared" / "data"))


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    """Ten distinct natural seed sentences in a .txt file."""
    sentences = [
        "A man is playing a guitar on a street corner.",
        "The bakery opens at six every morning.",
        "Two dogs are running along the beach.",
        "The committee delayed its vote until next week.",
        "A girl is painting a picture of a lighthouse.",
        "Heavy rain flooded the underground car park.",
        "The old bridge was closed for repairs in May.",
        "A chef is chopping onions in a small kitchen.",
        "Our train arrived twenty minutes early today.",
        "Several students are studying in the quiet library.",
    ]
    path = tmp_path / "seeds.txt"
    path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def datagen_cli() -> list[str]:
    """The real console entry point of this venv, for subprocess tests."""
    return [sys.executable, "-m", "datagen.cli"]
