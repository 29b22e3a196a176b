"""The one wrapper the benchmarks put around a started engine before handing it to the pipeline."""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from datagen.engines.base import Completion, Engine, GenerationRequest, stream_batches


class TappedEngine:
    """Pass every call through to ``engine`` and keep the completions that come back.

    A ``StreamingEngine`` whatever it wraps: ``generate_batches`` is ``stream_batches(engine, ...)``,
    which uses the wrapped engine's own streaming when it declares it and one ``generate`` per batch
    otherwise, exactly what the pipeline does with the bare engine. Logprobs are not passed through
    (no benchmark judges through it). ``close()`` is skipped unless ``close_engine``, so one started
    engine (or Ray instance) serves several runs.
    """

    def __init__(self, engine: Engine, *, close_engine: bool = False) -> None:
        self.engine, self.name, self.model_name = engine, engine.name, engine.model_name
        self.completions: list[Completion] = []
        self._close_engine = close_engine

    @property
    def output_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.completions)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        completions = self.engine.generate(requests)
        self.completions.extend(completions)
        return completions

    def generate_batches(
        self, batches: Iterable[Sequence[GenerationRequest]]
    ) -> Iterator[tuple[int, list[Completion]]]:
        for position, completions in stream_batches(self.engine, batches):
            self.completions.extend(completions)
            yield position, completions

    def close(self) -> None:
        if self._close_engine:
            self.engine.close()
