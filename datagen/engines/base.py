"""The one small protocol every engine implements.

The pipeline only sees ``Engine.generate(requests) -> completions``; sampling
parameters, structured-output APIs and transport details stay inside each
engine's own module. An engine that gains from seeing the next shard before the
current one is done (vllm, ray) also offers ``generate_batches(batches)``, which
yields ``(batch position, completions)`` as batches finish; the pipeline uses it
when present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

ChatMessage = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


@dataclass(frozen=True)
class GenerationRequest:
    """One chat prompt to complete.

    Args:
        request_id: Caller-chosen key, echoed back on every completion of this request.
        messages: Chat turns; system + few-shot turns first and byte-identical across
            requests (prefix caching), the anchor last.
        json_schema: If set, the engine constrains decoding to this JSON schema
            (structured outputs); engines that cannot do so still return free text.
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


def failed_completions(request_id: str, n: int, error: str) -> list[Completion]:
    """``n`` empty completions carrying ``error``, so every request still has ``n`` results."""
    return [
        Completion(request_id, "", None, prompt_tokens=0, completion_tokens=0, sample_index=i, error=error)
        for i in range(n)
    ]
