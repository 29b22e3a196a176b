"""The engine registry: one constructor shape, the settings section each engine gets, the model it runs."""

from __future__ import annotations

import inspect

import pytest

from datagen import models
from datagen.config import GenerateConfig, OpenAIConfig, RayConfig, VLLMConfig, load_section
from datagen.engines import ENGINES, build_engine, engine_spec, resolve_engine_model, served_model
from datagen.engines.base import Engine, GenerationRequest, LogprobsEngine
from datagen.engines.ray_engine import RaySettings
from datagen.errors import ConfigError
from tests.engines.test_openai import StubServer


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


def config(**fields) -> GenerateConfig:
    return GenerateConfig(task="sts", **fields)


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_engine_has_the_one_constructor_shape(name):
    parameters = inspect.signature(ENGINES[name].load().__init__).parameters
    positional = [p.name for p in parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == ["self", "model"]
    assert {"sampling", "settings"} <= {p.name for p in parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert ENGINES[name].name == name


def test_each_engine_gets_its_own_section_and_ray_gets_both():
    cfg = config(vllm=VLLMConfig(kv_cache_gib=3, tensor_parallel_size=2), ray=RayConfig(replicas=4),
                 openai=OpenAIConfig(concurrency=3))
    assert ENGINES["vllm"].settings_of(cfg) is cfg.vllm
    assert ENGINES["openai"].settings_of(cfg) is cfg.openai
    ray = ENGINES["ray"].settings_of(cfg)
    assert ray == RaySettings(ray=cfg.ray, vllm=cfg.vllm)
    assert ray.vllm.tensor_parallel_size == 2  # the one tensor_parallel_size, read by both engines


def test_ray_section_has_no_second_tensor_parallel_size(tmp_path):
    yaml_file = tmp_path / "old.yaml"
    yaml_file.write_text("generate:\n  task: sts\n  ray:\n    tensor_parallel_size: 2\n")
    with pytest.raises(ConfigError, match="ray.tensor_parallel_size"):
        load_section(GenerateConfig, yaml_file, "generate", {})


def test_local_engines_resolve_the_model_and_server_engines_use_the_served_name(monkeypatch):
    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, f"/cache/{name}", "sha"))
    for engine in ("vllm", "ray"):
        assert resolve_engine_model(config(engine=engine, model="qwen2.5-0.5b")) == models.ResolvedModel(
            "qwen2.5-0.5b", "/cache/qwen2.5-0.5b", "sha")
    served = resolve_engine_model(config(engine="openai", model="gpt-x"))
    assert served == served_model("gpt-x") == models.ResolvedModel("gpt-x", "gpt-x", None)


def test_build_engine_hands_the_engine_its_section(stub):
    cfg = config(engine="openai", model="stub-model", openai=OpenAIConfig(base_url=stub.base_url))
    engine = build_engine(cfg, resolve_engine_model(cfg))
    assert isinstance(engine, Engine) and isinstance(engine, LogprobsEngine)
    assert (engine.name, engine.model_name) == ("openai", "stub-model")
    [completion] = engine.generate([GenerationRequest("r0", ({"role": "user", "content": "hi"},))])
    assert completion.text == "echo hi #0"
    assert stub.bodies[0]["max_tokens"] == cfg.sampling.max_tokens


def test_unknown_engine_is_a_config_error_with_the_choices():
    with pytest.raises(ConfigError, match="unknown engine 'tgi'; set engine \\(--engine\\) to one of vllm, openai, ray"):
        engine_spec("tgi")
    with pytest.raises(ConfigError, match="unknown engine"):
        build_engine(config().model_copy(update={"engine": "tgi"}), served_model("m"))
