"""The small protocols engines implement, and the capabilities they may declare.

Every engine is an ``Engine``: ``generate(requests) -> completions``. Sampling parameters,
structured-output APIs and transport details stay inside each engine's own module. On top of that
an engine may declare a capability by implementing one more protocol:

    * ``StreamingEngine``: ``generate_batches(batches)`` pulls batches lazily and yields
      ``(batch position, completions)`` as batches finish (vllm queues the next shard before the
      current one drains; ray starts its replicas once per run). ``stream_batches`` streams any
      engine: its own ``generate_batches`` when it is a ``StreamingEngine``, else one ``generate``
      per batch.
    * ``LogprobsEngine``: ``first_token_logprobs(requests, top_k=...)`` returns the ``top_k`` most
      likely first tokens of each chat reply with their log-probabilities, for an LLM judge that asks
      a yes/no question and reads P(yes) from the first token (``FirstTokenLogprobs.share``).
      There is no adapter: an engine without logprobs cannot fake them (``require_logprobs``).

Capabilities are checked by type (``isinstance`` against these runtime-checkable protocols), never
by probing for attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol, Sequence, runtime_checkable

from datagen.errors import ConfigError

ChatMessage = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}
# The most first-token alternatives vLLM (its default max_logprobs) and the OpenAI API (top_logprobs) return.
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class GenerationRequest:
    """One chat prompt to complete.

    Args:
        request_id: Caller-chosen key, echoed back on every completion of this request.
        messages: Chat turns; system + few-shot turns first and byte-identical across
            requests (prefix caching), the anchor last.
        json_schema: If set, the engine constrains decoding to this JSON schema
            (structured outputs); engines that cannot do so still return free text.
            ``first_token_logprobs`` ignores it: a judge wants the model's own distribution.
    """

    request_id: str
    messages: tuple[ChatMessage, ...]
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Completion:
    """One sampled completion of a request (``sample_index`` in ``range(n)``)."""

    request_id: str
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    sample_index: int = 0
    error: str | None = None  # set when this request failed for good (e.g. retries exhausted)


@dataclass(frozen=True)
class TokenLogprob:
    """One candidate first token: its text as the engine decodes it (may keep a leading space) and
    its natural-log probability under the model, before temperature or top_p."""

    token: str
    logprob: float


@dataclass(frozen=True)
class FirstTokenLogprobs:
    """The most likely first tokens of one request's reply, most likely first.

    Args:
        request_id: The request's ``request_id``.
        top: At most ``top_k`` candidates, sorted by ``logprob``, highest first.
        error: Why this request got no answer (e.g. a prompt over the context length); ``top`` is
            then empty.
    """

    request_id: str
    top: tuple[TokenLogprob, ...]
    error: str | None = None

    def probability(self, *words: str) -> float:
        """Summed probability of the candidates whose text, stripped and lower-cased, is one of ``words``.

        Tokenizers spell one answer several ways ("yes", " yes", "Yes"); all of them count.
        """
        wanted = {word.strip().lower() for word in words}
        return sum(math.exp(candidate.logprob) for candidate in self.top if candidate.token.strip().lower() in wanted)

    def share(self, words: Sequence[str], against: Sequence[str]) -> float | None:
        """P(words) / (P(words) + P(against)), e.g. ``share(["yes"], ["no"])`` for a yes/no judge.

        Returns:
            The share in [0, 1], or None when neither answer is among the candidates (the model
            answered something else; raise ``top_k`` or reword the question).
        """
        yes, no = self.probability(*words), self.probability(*against)
        return yes / (yes + no) if yes + no > 0 else None


@runtime_checkable
class Engine(Protocol):
    """Generate completions for a batch of chat requests.

    ``generate`` returns, for each request in order, ``n`` completions (request
    order first, then ``sample_index``). It must not reorder or drop requests.
    """

    name: str
    model_name: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]: ...

    def close(self) -> None: ...


@runtime_checkable
class StreamingEngine(Engine, Protocol):
    """An engine that gains from seeing the next batch before the current one is done.

    ``generate_batches`` pulls batches from ``batches`` lazily (only when it has room for one, so a
    long run holds a few batches in memory, not all) and yields ``(batch position, completions)``
    per finished batch, in the order batches finish; each batch's completions are exactly what
    ``generate`` would return for it. Closing the iterator early stops the engine's work on the
    batches it still holds.
    """

    def generate_batches(
        self, batches: Iterable[Sequence[GenerationRequest]]
    ) -> Iterator[tuple[int, list[Completion]]]: ...


@runtime_checkable
class LogprobsEngine(Engine, Protocol):
    """An engine that can report the first-token distribution of chat replies.

    ``first_token_logprobs`` returns one ``FirstTokenLogprobs`` per request, in request order. It
    decodes one token greedily (vLLM: ``SamplingParams(logprobs=top_k, max_tokens=1)``; an
    OpenAI-compatible server: ``logprobs=True, top_logprobs=top_k``), whatever the engine's own
    sampling settings; ``top_k`` is 1..``MAX_TOP_LOGPROBS``.
    """

    def first_token_logprobs(
        self, requests: Sequence[GenerationRequest], *, top_k: int = MAX_TOP_LOGPROBS
    ) -> list[FirstTokenLogprobs]: ...


def stream_batches(
    engine: Engine, batches: Iterable[Sequence[GenerationRequest]]
) -> Iterator[tuple[int, list[Completion]]]:
    """Stream ``batches`` through any engine: its own ``generate_batches`` if it is a ``StreamingEngine``,
    else one ``generate`` per batch, pulled only when the previous one is answered.

    Yields:
        ``(batch position, completions)`` per finished batch.
    """
    if isinstance(engine, StreamingEngine):
        return engine.generate_batches(batches)
    return _one_generate_per_batch(engine, batches)


def _one_generate_per_batch(
    engine: Engine, batches: Iterable[Sequence[GenerationRequest]]
) -> Iterator[tuple[int, list[Completion]]]:
    for position, requests in enumerate(batches):
        yield position, engine.generate(requests)


def require_logprobs(engine: Engine) -> LogprobsEngine:
    """``engine`` as a ``LogprobsEngine``, for a stage that cannot work without logprobs.

    Raises:
        ConfigError: the engine does not declare the capability.
    """
    if not isinstance(engine, LogprobsEngine):
        raise ConfigError(
            f"the {engine.name} engine cannot return first-token logprobs; use --engine vllm or --engine openai"
        )
    return engine


def check_top_k(top_k: int) -> None:
    """Raises ConfigError unless 1 <= top_k <= MAX_TOP_LOGPROBS (what vLLM and the OpenAI API accept)."""
    if not 1 <= top_k <= MAX_TOP_LOGPROBS:
        raise ConfigError(f"top_k={top_k} first-token logprobs asked for; use 1..{MAX_TOP_LOGPROBS}")


def top_candidates(candidates: Iterable[TokenLogprob], top_k: int) -> tuple[TokenLogprob, ...]:
    """The ``top_k`` most likely candidates, highest first (engines may add the sampled token, or keep any order)."""
    return tuple(sorted(candidates, key=lambda candidate: candidate.logprob, reverse=True)[:top_k])


def failed_completions(request_id: str, n: int, error: str) -> list[Completion]:
    """``n`` empty completions carrying ``error``, so every request still has ``n`` results."""
    return [
        Completion(request_id, "", None, prompt_tokens=0, completion_tokens=0, sample_index=i, error=error)
        for i in range(n)
    ]
