"""Where a generation run stands (``RunStatus``): counts over the run's seeds only, for the progress display."""

from __future__ import annotations

import pytest

from datagen.dataset.manifest import FileEntry, ShardEntry
from datagen.generation.status import RunStatus


def shard(index: int, start: int, stop: int, rows: int, rejects: int) -> ShardEntry:
    def entry(kind: str, count: int) -> FileEntry:
        return FileEntry(path=f"{kind}/part-{index:05d}.parquet", rows=count, bytes=1, sha256="0" * 64)

    return ShardEntry(index=index, seed_range=(start, stop), data=entry("data", rows), rejects=entry("rejects", rejects))


def test_run_status_counts_the_runs_seeds_only():
    kept = [shard(0, 0, 4, 3, 1), shard(9, 20, 24, 4, 0)]  # the second lies past --limit 8: an earlier, larger run
    status = RunStatus.at_start(kept, pending=1, seeds_total=8)
    assert (status.shards_done, status.shards_total, status.seeds_done, status.rows, status.rejects) == (1, 2, 4, 3, 1)
    later = status.now([*kept, shard(1, 4, 8, 2, 2)], completion_tokens=50)
    assert (later.shards_done, later.seeds_done, later.rows, later.rejects) == (2, 8, 5, 3)
    assert later.reject_rate == pytest.approx(3 / 8) and later.completion_tokens == 50
    assert RunStatus.at_start([], pending=3, seeds_total=6).reject_rate is None
