"""Run ``judge_dataset`` in its own process with the scripted judge, slowly (test helper).

    python tests/support/fake_judge_run.py OUT SECONDS_PER_SHARD

Used by the kill-and-resume test of the judge sidecar: the parent SIGKILLs this process mid-run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from datagen import models  # noqa: E402
from datagen.quality.judge import JudgeConfig, judge_dataset  # noqa: E402
from tests.quality.test_judge import nli_p_yes  # noqa: E402
from tests.support.fakes import FakeJudge  # noqa: E402


class SlowJudge(FakeJudge):
    def __init__(self, seconds: float):
        super().__init__(nli_p_yes)
        self.seconds = seconds

    def first_token_logprobs(self, requests, *, top_k=20):
        time.sleep(self.seconds)
        return super().first_token_logprobs(requests, top_k=top_k)


if __name__ == "__main__":
    out, seconds = Path(sys.argv[1]), float(sys.argv[2])
    models.resolve_model = lambda name: models.ResolvedModel(name, name, "sha-" + name)
    judge_dataset(out, JudgeConfig(model="qwen2.5-0.5b"), engine_factory=lambda c, m: SlowJudge(seconds))
