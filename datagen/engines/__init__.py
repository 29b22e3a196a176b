"""Generation engines behind small protocols (``base``), registered by name (``registry``).

    model = resolve_engine_model(config)
    engine = build_engine(config, model)
    for position, completions in stream_batches(engine, batches): ...

Engine modules (vllm_engine, openai_server, ray_engine) are imported only when their engine is built.
"""

from __future__ import annotations

from datagen.engines.base import (
    MAX_TOP_LOGPROBS,
    Completion,
    Engine,
    FirstTokenLogprobs,
    GenerationRequest,
    LogprobsEngine,
    StreamingEngine,
    TokenLogprob,
    require_logprobs,
    stream_batches,
)
from datagen.engines.registry import ENGINES, EngineSpec, build_engine, engine_spec, resolve_engine_model, served_model

__all__ = [
    "ENGINES",
    "MAX_TOP_LOGPROBS",
    "Completion",
    "Engine",
    "EngineSpec",
    "FirstTokenLogprobs",
    "GenerationRequest",
    "LogprobsEngine",
    "StreamingEngine",
    "TokenLogprob",
    "build_engine",
    "engine_spec",
    "require_logprobs",
    "resolve_engine_model",
    "served_model",
    "stream_batches",
]
