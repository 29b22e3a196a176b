"""Run the real ``datagen`` CLI with a scripted engine registered as ``vllm`` (test helper, not product code).

    python tests/support/fake_cli.py nli --seeds S --out OUT --shard-rows 2 ...

It answers generation requests like ``FakeEngine`` and judge questions like ``FakeJudge`` (P(yes) 0.9).
The engine behaves like a local one where the terminal is concerned: it loads for ``FAKE_START_S`` seconds,
writes to file descriptors 1 and 2, starts a child process (spawn, like vLLM's EngineCore) that writes to
stderr and stays up until the engine closes, and logs a datagen warning. Each batch then takes
``FAKE_BATCH_S`` seconds. ``FAKE_MARKS`` names a folder where the child writes its signal mask; ``FAKE_FAIL`` makes the start fail.
The registry entry is replaced here, before the CLI runs; the product code has no hook for this.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

ENGINE_LINES = ("FAKE-ENGINE-STDOUT", "FAKE-ENGINE-STDERR", "FAKE-CHILD-STDERR")
WARNING = "FAKE-WARNING: the fake engine warns once"


def child_main(marks: str | None) -> None:
    """The engine's child process: says hello on stderr, records its signal mask, then idles until killed."""
    import signal

    print(ENGINE_LINES[2], file=sys.stderr, flush=True)
    if marks:
        blocked = sorted(signal.Signals(s).name for s in signal.pthread_sigmask(signal.SIG_BLOCK, set()))
        (Path(marks) / "child-pid").write_text(str(os.getpid()))
        (Path(marks) / "child-sigmask").write_text(" ".join(blocked))
    while True:
        time.sleep(1)


class LoudEngine:
    """A local engine (the fake's answers) that is as noisy as vLLM and starts a child process."""

    name = "vllm"
    model_name = "fake-model"

    def __init__(self, model, *, sampling, settings) -> None:
        from tests.support.fakes import FakeEngine

        self._fake = FakeEngine(os.environ.get("FAKE_TASK", "nli"))
        os.write(1, (ENGINE_LINES[0] + "\n").encode())
        os.write(2, (ENGINE_LINES[1] + "\n").encode())
        self._child = multiprocessing.get_context("spawn").Process(
            target=child_main, args=(os.environ.get("FAKE_MARKS"),), daemon=True)
        self._child.start()
        logging.getLogger("datagen.engines.fake").warning(WARNING)
        if os.environ.get("FAKE_FAIL"):
            from datagen.errors import EngineError

            self.close()
            raise EngineError("the fake engine could not start; free some memory")
        time.sleep(float(os.environ.get("FAKE_START_S", "0")))

    def generate(self, requests):
        time.sleep(float(os.environ.get("FAKE_BATCH_S", "0")))
        return self._fake.generate(requests)

    def first_token_logprobs(self, requests, *, top_k: int = 20):
        from tests.support.fakes import FakeJudge

        time.sleep(float(os.environ.get("FAKE_BATCH_S", "0")))
        return FakeJudge(lambda question: 0.9).first_token_logprobs(requests, top_k=top_k)

    def close(self) -> None:
        self._child.terminate()
        self._child.join(5)


def main(argv: list[str]) -> None:
    from datagen import models
    from datagen.engines import registry

    models.resolve_model = lambda name: models.ResolvedModel(name, name, "sha-" + name)
    registry.ENGINES["vllm"] = registry.EngineSpec("vllm", lambda: LoudEngine, lambda config: config.vllm,
                                                   local_model=True)
    from datagen.cli import app

    app(args=argv, prog_name="datagen")


if __name__ == "__main__":
    main(sys.argv[1:])
