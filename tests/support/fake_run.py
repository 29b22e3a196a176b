"""Run ``datagen.generation.run.generate`` in its own process with the scripted engine, slowly (test helper).

    python tests/fake_run.py SEEDS OUT SECONDS_PER_BATCH

The storage suite uses it as a second, live or SIGKILLed, process on the same OUT (lock tests). Its
config and fingerprint equal ``storage_config()`` in tests/test_reliability_storage.py, so an
in-process run can resume what it left.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.fakes import FakeEngine  # noqa: E402

from datagen import models  # noqa: E402
from datagen.config import load_config  # noqa: E402
from datagen.generation.run import generate  # noqa: E402

STORAGE_OVERRIDES = {"task": "sts", "shard_rows": 2, "mode": "separate"}


def no_model_preparation(name: str):
    """A stand-in model identity: the storage suite tests files, not the LLM."""
    return models.ResolvedModel(name, name, "sha-" + name)


class SlowEngine(FakeEngine):
    def __init__(self, task: str, seconds: float) -> None:
        super().__init__(task)
        self.seconds = seconds

    def generate(self, requests):
        time.sleep(self.seconds)
        return super().generate(requests)


def main(seeds: str, out: str, seconds: float) -> None:
    models.resolve_model = no_model_preparation
    config = load_config(None, STORAGE_OVERRIDES)
    summary = generate(config, seeds, out, engine_factory=lambda c, m: SlowEngine(c.task, seconds))
    print(f"rows={summary.rows} written={summary.shards_written} skipped={summary.shards_skipped}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
