"""The one wrapper the benchmarks put around a started engine before handing it to the pipeline."""

from __future__ import annotations


class TappedEngine:
    """Pass every call through to ``engine`` and keep the completions that come back.

    ``generate_batches`` is offered only when the wrapped engine has it, so the pipeline takes exactly
    the path it would take without the wrapper. ``close()`` is skipped unless ``close_engine``, so one
    started engine (or Ray instance) serves several runs.
    """

    def __init__(self, engine, *, close_engine: bool = False) -> None:
        self.engine, self.name, self.model_name = engine, engine.name, engine.model_name
        self.completions: list = []
        self._close_engine = close_engine
        if hasattr(engine, "generate_batches"):
            self.generate_batches = self._generate_batches

    @property
    def output_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.completions)

    def generate(self, requests):
        completions = self.engine.generate(requests)
        self.completions.extend(completions)
        return completions

    def _generate_batches(self, batches):
        for position, completions in self.engine.generate_batches(batches):
            self.completions.extend(completions)
            yield position, completions

    def close(self) -> None:
        if self._close_engine:
            self.engine.close()
