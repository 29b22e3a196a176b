"""Shared, session-scoped fixtures: the real embedded model and a real vLLM server."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedded_model_path() -> str:
    """The prepared bf16 folder of the default embedded model (built once, ~50 s, then cached)."""
    from datagen.models import resolve_model

    return resolve_model("qwen2.5-0.5b").path
