import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from datagen.errors import StorageError
from datagen.dataset.manifest import Manifest, read_manifest, write_manifest
from datagen.dataset.shards import LOCK, data_schema, output_lock, rejects_schema, verify_file, write_shard


def sts_row(i):
    return {
        "id": f"id{i}", "anchor": f"anchor {i}", "positive": "p", "intermediate": "i", "negative": "n",
        "model": "m", "template_sha": "t", "mode": "separate", "seed_index": i, "sample_index": 0,
        "prompt_tokens": 10, "completion_tokens": 5,
    }


@pytest.mark.parametrize("count", [0, 1, 1000])
def test_write_shard_roundtrip_with_metadata(tmp_path, count):
    rows = [sts_row(i) for i in range(count)]
    written = write_shard(tmp_path, "data", 3, rows, data_schema("sts"), {"datagen.fingerprint": "abc"})
    path = tmp_path / "data" / "part-00003.parquet"
    assert written.path == "data/part-00003.parquet" and written.rows == count
    table = pq.read_table(path)
    assert table.num_rows == count and table.schema.names[:3] == ["id", "anchor", "positive"]
    assert json.loads(table.schema.metadata[b"datagen.fingerprint"]) == "abc"
    assert verify_file(tmp_path, vars(written))
    assert not list((tmp_path / "data").glob("*.tmp"))


def test_verify_detects_flipped_byte(tmp_path):
    written = vars(write_shard(tmp_path, "data", 0, [sts_row(1)], data_schema("sts"), {}))
    path = tmp_path / written["path"]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    assert not verify_file(tmp_path, written)


def test_failed_write_leaves_no_partial_shard(tmp_path):
    bad_rows = [{**sts_row(1), "seed_index": "not a number"}]
    with pytest.raises(Exception):
        write_shard(tmp_path, "data", 0, bad_rows, data_schema("sts"), {})
    assert not list((tmp_path / "data").glob("*"))


def test_rejects_schema_has_raw_and_reason():
    assert {"id", "anchor", "stage", "reason", "raw"} <= set(rejects_schema().names)


def test_manifest_roundtrip_and_wrong_version(tmp_path):
    write_manifest(tmp_path, Manifest(task="sts", fingerprint="f", config={}))
    assert read_manifest(tmp_path).task == "sts"
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(StorageError, match="--overwrite"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(StorageError, match="unreadable"):
        read_manifest(tmp_path)


def test_lock_refuses_second_holder_and_releases(tmp_path):
    with output_lock(tmp_path):
        with pytest.raises(StorageError, match="in use by another datagen run"):
            with output_lock(tmp_path):
                pass
    assert not (tmp_path / LOCK).exists()
    with output_lock(tmp_path):
        pass


def test_stale_lock_of_dead_process_is_recovered(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (tmp_path / LOCK).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with output_lock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
