"""Generation engines behind one protocol (see ``base.Engine``)."""

from __future__ import annotations

from datagen.engines.base import Completion, Engine, GenerationRequest

__all__ = ["Completion", "Engine", "GenerationRequest", "create_engine"]


def create_engine(config, model) -> Engine:
    """Build the engine named by ``config.engine`` for a resolved model.

    Imports are local so that a user of the openai engine never imports vLLM.
    """
    if config.engine == "vllm":
        from datagen.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model, sampling=config.sampling, settings=config.vllm)
    if config.engine == "openai":
        from datagen.engines.openai_server import OpenAIEngine

        return OpenAIEngine(model.name, settings=config.openai, sampling=config.sampling)
    if config.engine == "ray":
        from datagen.engines.ray_engine import RayEngine

        return RayEngine(model, sampling=config.sampling, vllm_settings=config.vllm, settings=config.ray)
    from datagen.errors import ConfigError

    raise ConfigError(f"unknown engine '{config.engine}'; use vllm, openai or ray")
