"""The engine registry: every engine by name, built one way.

Each engine class takes ``(model, *, sampling, settings)``. Its ``EngineSpec`` says which part of
``GenerateConfig`` is its ``settings`` and whether it runs a local model (weights resolved and
prepared here, e.g. the embedded Qwen) or a name a server already serves. The generation run asks
the registry and never branches on the engine's name:

    model = resolve_engine_model(config)   # before the manifest: model.sha256 is in the fingerprint
    engine = build_engine(config, model)

Adding an engine is one module with its class plus one entry in ``ENGINES``; an unknown ``engine:``
value is refused here, before anything is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from datagen.config import GenerateConfig
from datagen.engines.base import Engine
from datagen.errors import ConfigError


@dataclass(frozen=True)
class EngineSpec:
    """One registered engine.

    Args:
        name: The ``engine:`` value (``--engine``) that picks it.
        load: Imports and returns the engine class; called only when that engine is built, so
            choosing one engine never imports another's dependencies (openai, ray).
        settings_of: The engine's ``settings`` taken from the config: its section (``config.vllm``),
            or an object made of several sections (ray: ``RaySettings(ray=..., vllm=...)``).
        local_model: True when the engine loads the weights itself (the model is resolved and
            prepared locally, and its sha256 enters the run fingerprint); False when a server already
            serves the model under ``config.model``.
    """

    name: str
    load: Callable[[], type]
    settings_of: Callable[[GenerateConfig], Any]
    local_model: bool


def _vllm_class() -> type:
    from datagen.engines.vllm_engine import VLLMEngine

    return VLLMEngine


def _openai_class() -> type:
    from datagen.engines.openai_server import OpenAIEngine

    return OpenAIEngine


def _ray_class() -> type:
    from datagen.engines.ray_engine import RayEngine

    return RayEngine


def _ray_settings(config: GenerateConfig):
    from datagen.engines.ray_engine import RaySettings

    return RaySettings(ray=config.ray, vllm=config.vllm)


ENGINES: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec("vllm", _vllm_class, lambda config: config.vllm, local_model=True),
        EngineSpec("openai", _openai_class, lambda config: config.openai, local_model=False),
        EngineSpec("ray", _ray_class, _ray_settings, local_model=True),
    )
}


def engine_spec(name: str) -> EngineSpec:
    """The registry entry for ``name``.

    Raises:
        ConfigError: no engine of that name, with the names there are.
    """
    try:
        return ENGINES[name]
    except KeyError:
        raise ConfigError(f"unknown engine '{name}'; set engine (--engine) to one of {', '.join(ENGINES)}") from None


def served_model(name: str):
    """The model of an engine that loads nothing locally: the name the server serves, no checksum."""
    from datagen.models import ResolvedModel

    return ResolvedModel(name=name, path=name, sha256=None)


def resolve_engine_model(config: GenerateConfig):
    """The model ``config.engine`` runs, as a ``ResolvedModel``.

    A local engine gets ``resolve_model(config.model)`` (an embedded model is assembled and converted
    on first use, a local folder is used as is); a server engine gets ``config.model`` as the served name.

    Raises:
        ConfigError: unknown engine.
        ModelError: a local model cannot be found, verified or prepared.
    """
    if engine_spec(config.engine).local_model:
        from datagen.models import resolve_model

        return resolve_model(config.model)
    return served_model(config.model)


def build_engine(config: GenerateConfig, model) -> Engine:
    """Start the engine named by ``config.engine`` for ``model`` (from ``resolve_engine_model``).

    Raises:
        ConfigError: unknown engine, or settings the engine refuses.
        EngineError: the engine could not start (not installed, out of memory, server unreachable).
    """
    spec = engine_spec(config.engine)
    return spec.load()(model, sampling=config.sampling, settings=spec.settings_of(config))
