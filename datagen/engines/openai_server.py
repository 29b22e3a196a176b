"""Engine for any OpenAI-compatible server: vLLM's server, llama.cpp, a hosted API.

``generate`` is synchronous like every engine; inside it runs one asyncio loop that
sends all requests of the batch through ``AsyncOpenAI`` with at most ``concurrency``
in flight (enough to fill a server's batch, not enough to trip rate limits).

Failure policy, from most to least local:
    * 429, 5xx, timeouts, dropped connections: retried with exponential backoff (tenacity),
      ``max_retries`` times. A request that still fails raises ``EngineError``: these faults
      belong to the server, not to the row, so the batch is abandoned (the pipeline writes no
      shard for it) and a rerun resumes once the server is healthy. Turning them into rejects
      would mark the seeds as done and lose them for good.
    * 400/422 (e.g. prompt longer than the server's context): not retried; the request becomes
      a ``Completion`` with ``error`` set, and the pipeline turns it into a reject.
    * 401/403/404 (bad key, unknown model or URL): every request would fail the same way,
      so ``EngineError`` is raised with the fix.
    * nothing listening at ``base_url`` when the engine is created: ``EngineError``.

The API key is read from the environment variable named by ``OpenAIConfig.api_key_env``
each time a batch starts; it is never stored on the engine, logged, or written anywhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import httpx
import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from datagen.config import OpenAIConfig, SamplingConfig
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
from datagen.errors import EngineError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Local servers (vLLM, llama.cpp) accept any key unless started with one; the client insists on a value.
PLACEHOLDER_KEY = "EMPTY"
RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx
FATAL_STATUS = frozenset({401, 403, 404})
# A server's Retry-After is obeyed up to this; beyond it a stuck batch is worse than one more 429.
MAX_RETRY_AFTER_S = 60.0


class OpenAIEngine:
    """Generate through an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Declares ``LogprobsEngine``: ``first_token_logprobs`` sends ``logprobs=True, top_logprobs=k``
    (vLLM's server and the OpenAI API answer it; a server that ignores it raises ``EngineError``).

    Args:
        model: The model as the server serves it; ``model.name`` (vLLM: ``--served-model-name``,
            else the ``--model`` path) is sent as ``model`` with every request. Nothing is loaded
            locally, so ``served_model(name)`` is enough.
        sampling: temperature, top_p, max_tokens, n, seed; shared by every request.
        settings: ``base_url``, ``api_key_env``, ``concurrency``, ``timeout_s``, ``max_retries``.
        backoff_initial_s: First retry delay; doubles per attempt. Lower retries sooner but
            hammers an overloaded server; a 429's ``Retry-After`` header wins when present.
        backoff_max_s: Cap on one backoff delay (a Retry-After is capped at 60 s instead). Higher
            rides out longer outages but stalls the batch.
        probe: Check at construction that something listens at ``base_url``. Turn off only
            when the server is started later on purpose.

    Raises:
        EngineError: nothing listens at ``base_url`` (with ``probe``).
    """

    name = "openai"

    def __init__(
        self,
        model,
        *,
        sampling: SamplingConfig,
        settings: OpenAIConfig,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        probe: bool = True,
    ) -> None:
        self.model_name = model.name
        self._settings = settings
        self._sampling = sampling
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        if probe:
            check_reachable(settings.base_url, self.model_name)

    def __repr__(self) -> str:
        return f"OpenAIEngine(model_name={self.model_name!r}, base_url={self._settings.base_url!r})"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete every request, ``concurrency`` at a time.

        Returns:
            ``n`` completions per request, request order first, then ``sample_index``.
            Requests that failed for good carry ``error`` (and empty text).

        Raises:
            EngineError: the server rejects the key, the model name or the URL (401/403/404), or
                still fails after every retry.
        """
        answers = self._send_all([self._request_body(request) for request in requests])
        completions: list[Completion] = []
        for request, answer in zip(requests, answers):
            if isinstance(answer, RequestFailed):
                completions.extend(failed_completions(request.request_id, self._sampling.n, answer.reason))
            else:
                completions.extend(to_completions(request.request_id, answer))
        return completions

    def first_token_logprobs(
        self, requests: Sequence[GenerationRequest], *, top_k: int = MAX_TOP_LOGPROBS
    ) -> list[FirstTokenLogprobs]:
        """The ``top_k`` most likely first tokens of each request's reply (one greedy token, no JSON schema).

        Returns:
            One ``FirstTokenLogprobs`` per request, in request order; a request the server refused
            (400/422) carries ``error`` and no candidates.

        Raises:
            ConfigError: ``top_k`` outside 1..20.
            EngineError: as ``generate``; also when the server answers without logprobs (it does not
                support them).
        """
        check_top_k(top_k)
        answers = self._send_all([self._logprobs_body(request, top_k) for request in requests])
        return [
            FirstTokenLogprobs(request.request_id, (), error=answer.reason)
            if isinstance(answer, RequestFailed)
            else to_first_token_logprobs(request.request_id, answer, top_k, self._settings.base_url)
            for request, answer in zip(requests, answers)
        ]

    def close(self) -> None:
        # Each batch opens and closes its own client; nothing is held between batches.
        return None

    def _send_all(self, bodies: list[dict[str, Any]]) -> list[Any]:
        """Each body's response (or ``RequestFailed``), in order, ``concurrency`` in flight."""
        if not bodies:
            return []
        return run_sync(lambda: self._send_concurrently(bodies))

    async def _send_concurrently(self, bodies: list[dict[str, Any]]) -> list[Any]:
        semaphore = asyncio.Semaphore(self._settings.concurrency)
        async with self._client() as client:

            async def bounded(body: dict[str, Any]) -> Any:
                async with semaphore:
                    return await self._send(client, body)

            return await asyncio.gather(*(bounded(body) for body in bodies))

    def _client(self) -> openai.AsyncOpenAI:
        # Built per batch: an async client belongs to one event loop, and the key lives only as long.
        return openai.AsyncOpenAI(
            api_key=os.environ.get(self._settings.api_key_env) or PLACEHOLDER_KEY,
            base_url=self._settings.base_url,
            timeout=self._settings.timeout_s,
            max_retries=0,  # tenacity below is the one retry policy
        )

    async def _send(self, client: openai.AsyncOpenAI, body: dict[str, Any]) -> Any:
        """The server's response, or ``RequestFailed`` when this one request is at fault (400/422, see the
        module docstring); faults of the server itself raise."""
        try:
            return await self._create_with_retries(client, body)
        except openai.APIStatusError as exc:
            if exc.status_code in FATAL_STATUS:
                raise EngineError(fatal_status_message(exc, self._settings.base_url, self.model_name)) from exc
            if is_retryable(exc):
                raise EngineError(gave_up_message(exc, self._settings)) from exc
            return RequestFailed(describe_error(exc))
        except openai.APIError as exc:
            if is_retryable(exc):  # connection refused / reset, timeout: after the last retry
                raise EngineError(gave_up_message(exc, self._settings)) from exc
            return RequestFailed(describe_error(exc))

    async def _create_with_retries(self, client: openai.AsyncOpenAI, body: dict[str, Any]) -> Any:
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self._settings.max_retries + 1),
            wait=self._wait,
            before_sleep=log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await client.chat.completions.create(**body)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        server_says = retry_after_s(exc)
        if server_says is not None:
            return min(server_says, MAX_RETRY_AFTER_S)
        return min(self._backoff_initial_s * 2 ** (state.attempt_number - 1), self._backoff_max_s)

    def _request_body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": list(request.messages),
            "temperature": self._sampling.temperature,
            "top_p": self._sampling.top_p,
            # max_tokens, not max_completion_tokens: the one name vLLM, llama.cpp and OpenAI all accept.
            "max_tokens": self._sampling.max_tokens,
            "n": self._sampling.n,
        }
        if self._sampling.seed is not None:
            body["seed"] = self._sampling.seed
        if request.json_schema is not None:
            body["response_format"] = json_schema_format(request.json_schema)
        return body

    def _logprobs_body(self, request: GenerationRequest, top_k: int) -> dict[str, Any]:
        # One greedy token and its alternatives; the sampling settings are for generation, not for judging.
        return {
            "model": self.model_name,
            "messages": list(request.messages),
            "temperature": 0.0,
            "max_tokens": 1,
            "n": 1,
            "logprobs": True,
            "top_logprobs": top_k,
        }


@dataclass(frozen=True)
class RequestFailed:
    """One request the server refused for good (400/422): it becomes that request's error, not the batch's."""

    reason: str


# ---------------------------------------------------------------- pure helpers


def json_schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI ``response_format`` for a JSON schema; vLLM maps it to structured outputs."""
    return {"type": "json_schema", "json_schema": {"name": "datagen_output", "schema": schema, "strict": True}}


def is_retryable(exc: BaseException) -> bool:
    """429, 408/409, 5xx, timeouts and connection errors are worth another try; other 4xx are not."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUS or exc.status_code >= 500
    return False


def retry_after_s(exc: BaseException | None) -> float | None:
    """Seconds from a ``Retry-After`` header (numeric form only), or None."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to exponential backoff


def log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    delay = state.next_action.sleep if state.next_action else 0.0
    log.info("retrying after %s (attempt %d, waiting %.1fs)", describe_error(exc), state.attempt_number, delay)


def describe_error(exc: BaseException | None) -> str:
    """One line for a failed request: status code and the server's message, no headers."""
    if isinstance(exc, openai.APIStatusError):
        text = f"HTTP {exc.status_code}: {server_message(exc)}"
    elif isinstance(exc, openai.APITimeoutError):
        text = "timeout"
    elif isinstance(exc, openai.APIConnectionError):
        text = f"connection error: {exc.__cause__ or exc}"
    else:
        text = repr(exc)
    return " ".join(text.split())[:500]  # a server's multi-line message must not break the one-line error


def server_message(exc: openai.APIStatusError) -> str:
    """The server's own error text (``{"error": {"message": ...}}``), else the client's summary."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message


def fatal_status_message(exc: openai.APIStatusError, base_url: str, model_name: str) -> str:
    """What a 401/403/404 means for the user, and what to change."""
    if exc.status_code == 404:
        return (
            f"{base_url} answered 404 for model '{model_name}' ({server_message(exc)}); check --model against the "
            f"server's served model name (GET {base_url}/models) and that base_url ends in /v1"
        )
    return (
        f"{base_url} refused the request (HTTP {exc.status_code}); set the API key in the environment "
        f"variable named by openai.api_key_env"
    )


def gave_up_message(exc: BaseException, settings: OpenAIConfig) -> str:
    """One line for a server fault that outlasted every retry: what failed, what is kept, what to do."""
    return (
        f"the server at {settings.base_url} still failed after {settings.max_retries} retries "
        f"({describe_error(exc)}); shards already written are kept: bring the server back (or raise "
        f"openai.max_retries / openai.timeout_s) and rerun the same command to resume"
    )


def to_completions(request_id: str, response: Any) -> list[Completion]:
    """One ``Completion`` per choice, ordered by choice index.

    Chat usage is per response, not per choice: with ``n > 1`` the completion tokens are
    split evenly over the choices (exact for ``n == 1``).
    """
    choices = sorted(response.choices, key=lambda choice: choice.index)
    usage = response.usage
    prompt_tokens = usage.prompt_tokens if usage else 0
    total_completion = usage.completion_tokens if usage else 0
    share, remainder = divmod(total_completion, max(len(choices), 1))
    return [
        Completion(
            request_id=request_id,
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=share + (1 if i < remainder else 0),
            sample_index=choice.index,
        )
        for i, choice in enumerate(choices)
    ]


def to_first_token_logprobs(request_id: str, response: Any, top_k: int, base_url: str) -> FirstTokenLogprobs:
    """The first token's ``top_logprobs`` of the response's first choice, highest first.

    Raises:
        EngineError: the response has no logprobs at all: the server ignores the parameter, so every
            request would come back the same way.
    """
    choice = response.choices[0] if response.choices else None
    if choice is None or choice.logprobs is None:
        raise EngineError(
            f"the server at {base_url} answered without logprobs: it does not support logprobs=True/top_logprobs; "
            "judge with vLLM's server (python -m vllm.entrypoints.openai.api_server) or --engine vllm"
        )
    content = choice.logprobs.content or []
    if not content:
        return FirstTokenLogprobs(request_id, (), error="the server returned no first token")
    first = content[0]
    candidates = [TokenLogprob(item.token, item.logprob) for item in first.top_logprobs or []]
    candidates = candidates or [TokenLogprob(first.token, first.logprob)]  # a server that lists no alternatives
    return FirstTokenLogprobs(request_id, top_candidates(candidates, top_k))


def check_reachable(base_url: str, model_name: str, *, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing listens at ``base_url``; warn when the model is not listed.

    Any HTTP answer (even 401) counts as reachable: hosted APIs need a key to list models.

    Raises:
        EngineError: connection refused, DNS failure or no answer within ``timeout_s``.
    """
    url = base_url.rstrip("/") + "/models"
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise EngineError(
            f"no OpenAI-compatible server at {base_url} ({type(exc).__name__}); start one (e.g. "
            f"python -m vllm.entrypoints.openai.api_server --model DIR --port PORT) or set openai.base_url"
        ) from exc
    if response.status_code == 200:
        served = served_model_ids(response)
        if served and model_name not in served:
            # llama.cpp ignores the name, so this is a warning; vLLM would answer 404 per request.
            log.warning("model '%s' is not among those served at %s: %s", model_name, base_url, sorted(served))


def served_model_ids(response: httpx.Response) -> set[str]:
    """Model ids from a ``GET /models`` answer; empty if the body is not the usual list."""
    try:
        return {item["id"] for item in response.json().get("data", [])}
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even when a loop already runs (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()
