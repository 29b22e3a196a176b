"""The one writer of an output directory: shards, journal, manifest, sidecars."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datagen.dataset.manifest import JOURNAL, MANIFEST, Manifest, read_journal, read_manifest
from datagen.dataset.shards import LOCK
from datagen.dataset.writer import DatasetWriter
from datagen.errors import StorageError


def manifest() -> Manifest:
    return Manifest(task="pairs", fingerprint="fp", config={"mode": "joint"})


def pair_row(i: int) -> dict:
    return {"id": f"id{i}", "anchor": f"anchor {i}", "positive": f"positive {i}", "model": "m",
            "template_sha": "t", "mode": "joint", "seed_index": i, "sample_index": 0,
            "prompt_tokens": 10, "completion_tokens": 5}


def reject_row(i: int, reason: str) -> dict:
    return {"id": f"r{i}", "anchor": f"anchor {i}", "stage": "positive", "reason": reason, "raw": "{}",
            "finish_reason": "stop", "model": "m", "template_sha": "t", "mode": "joint", "seed_index": i,
            "sample_index": 0}


def write_two_shards(out) -> DatasetWriter:
    with DatasetWriter(out) as writer:
        writer.begin(manifest())
        writer.write_shard(0, (0, 3), [pair_row(0), pair_row(1)], [reject_row(2, "copies_anchor")])
        writer.write_shard(1, (3, 6), [pair_row(3)], [reject_row(4, "refusal"), reject_row(5, "refusal")])
        counts = writer.finalize()
    assert (counts.rows, counts.rejects) == (3, 3)
    return writer


def test_finalize_returns_counts_and_writes_the_manifest_whole(tmp_path):
    write_two_shards(tmp_path)
    on_disk = json.loads((tmp_path / MANIFEST).read_text())
    assert on_disk["status"] == "complete"
    assert on_disk["counts"] == {"rows": 3, "rejects": 3, "reject_reasons": {"refusal": 2, "copies_anchor": 1}}
    assert [s["seed_range"] for s in on_disk["shards"]] == [[0, 3], [3, 6]]
    assert not (tmp_path / JOURNAL).exists() and not (tmp_path / LOCK).exists()
    table = pq.read_table(tmp_path / "data" / "part-00001.parquet")
    assert table.column("positive").to_pylist() == ["positive 3"]
    assert json.loads(table.schema.metadata[b"datagen.fingerprint"]) == "fp"


def test_manifest_is_written_twice_per_run_whatever_the_shard_count(tmp_path, monkeypatch):
    """Shards go to the journal: the manifest is not rewritten after each shard (O(shards²) bytes)."""
    replaced: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append(os.path.basename(dst)), real_replace(src, dst)))
    with DatasetWriter(tmp_path) as writer:
        writer.begin(manifest())
        for index in range(20):
            writer.write_shard(index, (index, index + 1), [pair_row(index)], [])
        assert len(read_journal(tmp_path)) == 20
        writer.finalize()
    assert replaced.count(MANIFEST) == 2  # begin (status running) and finalize


def test_a_stage_that_fails_leaves_one_whole_manifest_still_running(tmp_path):
    with pytest.raises(RuntimeError, match="engine died"):
        with DatasetWriter(tmp_path) as writer:
            writer.begin(manifest())
            writer.write_shard(0, (0, 1), [pair_row(0)], [])
            writer.write_shard(1, (1, 2), [], [reject_row(1, "refusal")])
            raise RuntimeError("engine died")
    on_disk = json.loads((tmp_path / MANIFEST).read_text())
    assert on_disk["status"] == "running" and [s["index"] for s in on_disk["shards"]] == [0, 1]
    assert not (tmp_path / JOURNAL).exists() and not (tmp_path / LOCK).exists()


def test_a_kill_leaves_manifest_plus_journal_that_readers_merge(tmp_path):
    """SIGKILL runs no cleanup: the journal is all there is, and readers merge it into the manifest."""
    script = (
        "import os, signal, sys\n"
        "sys.path.insert(0, {repo!r})\n"
        "from tests.dataset.test_writer import manifest, pair_row, reject_row\n"
        "from datagen.dataset.writer import DatasetWriter\n"
        "with DatasetWriter({out!r}) as writer:\n"
        "    writer.begin(manifest())\n"
        "    writer.write_shard(0, (0, 1), [pair_row(0)], [])\n"
        "    writer.write_shard(1, (1, 2), [], [reject_row(1, 'refusal')])\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    ).format(repo=str(Path(__file__).resolve().parents[2]), out=str(tmp_path))
    assert subprocess.run([sys.executable, "-c", script]).returncode == -signal.SIGKILL
    assert json.loads((tmp_path / MANIFEST).read_text())["shards"] == []  # the whole-file manifest of begin()
    merged = read_manifest(tmp_path)
    assert merged.status == "running" and [s.index for s in merged.shards] == [0, 1]
    assert (merged.counts.rows, merged.counts.rejects, merged.counts.reject_reasons) == (1, 1, {"refusal": 1})


def test_a_torn_journal_line_lists_nothing(tmp_path):
    with DatasetWriter(tmp_path) as writer:
        writer.begin(manifest())
        writer.write_shard(0, (0, 1), [pair_row(0)], [])
        line = (tmp_path / JOURNAL).read_bytes().splitlines()[0]
        with open(tmp_path / JOURNAL, "ab") as handle:
            handle.write(line.replace(b'"index":0', b'"index":1')[: len(line) // 2])  # SIGKILL mid-append
        assert [s.index for s in read_manifest(tmp_path).shards] == [0]
        writer.finalize()


def test_begin_keeps_verified_shards_and_removes_orphans(tmp_path):
    write_two_shards(tmp_path)
    previous = read_manifest(tmp_path)
    (tmp_path / "data" / "part-00007.parquet").write_bytes(b"left by a crash")
    with DatasetWriter(tmp_path) as writer:
        kept = writer.verified(previous.shards)
        writer.begin(manifest(), keep=kept[:1])
        counts = writer.finalize()
    assert counts.rows == 2 and sorted(p.name for p in (tmp_path / "data").iterdir()) == ["part-00000.parquet"]


def test_sidecar_is_swapped_in_whole_and_sections_ride_in_the_manifest(tmp_path):
    write_two_shards(tmp_path)
    schema = pa.schema([("id", pa.string()), ("value", pa.float64())])
    with DatasetWriter(tmp_path) as writer:
        writer.open_existing()
        files = writer.replace_sidecar("scores", [(0, [{"id": "id0", "value": 0.5}]), (1, [])], schema, {})
        writer.set_section("scores", {"files": [f.model_dump() for f in files]})
        writer.finalize(status=None)
    manifest_now = read_manifest(tmp_path)
    assert [f["path"] for f in manifest_now.section("scores")["files"]] == ["scores/part-00000.parquet",
                                                                            "scores/part-00001.parquet"]
    assert manifest_now.status == "complete" and manifest_now.counts.rows == 3
    assert not list(tmp_path.glob(".scores.*"))


def test_open_existing_without_a_manifest_says_what_to_do(tmp_path):
    with DatasetWriter(tmp_path) as writer, pytest.raises(StorageError, match="generate a dataset there first"):
        writer.open_existing()


def test_writing_before_begin_is_a_programming_error(tmp_path):
    with DatasetWriter(tmp_path) as writer, pytest.raises(RuntimeError, match="begin"):
        writer.write_shard(0, (0, 1), [], [])


def test_overwrite_clears_shards_and_derived_sidecars_but_not_audit_labels(tmp_path):
    write_two_shards(tmp_path)
    for folder in ("scores", "judge"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "part-00000.parquet").write_bytes(b"derived")
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "labels.jsonl").write_text('{"id": "id0"}\n')
    with DatasetWriter(tmp_path) as writer:
        writer.clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit"]
