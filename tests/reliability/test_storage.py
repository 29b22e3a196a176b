"""Reliability suite 5: storage faults. Corrupt shards are caught by the manifest checksum and
regenerated; a full disk stops the run with one line and leaves no partial shard; a second run on the
same OUT is refused; a stale lock of a SIGKILLed run is taken over.

The engine here is the scripted one (tests/fakes.py): these faults live in the file system, and the
real-engine crash suite (test_reliability_crash.py) already kills real runs mid-write.

Disk full is real: a small tmpfs is mounted when the test may mount (root, as on the dev VM); otherwise
the same byte budget is enforced by an injected ENOSPC on the shard and manifest writes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datagen.dataset import shards
from datagen.config import load_config
from datagen.errors import StorageError
from datagen.generation.run import generate
from datagen.dataset.manifest import read_manifest
from datagen.dataset.shards import LOCK, output_lock
from tests.support.fake_run import STORAGE_OVERRIDES, no_model_preparation
from tests.support.fakes import FakeEngine
from tests.support.reliability import check_consistent, compare_with_reference, leftovers

REPO = Path(__file__).resolve().parents[2]
SHARDS = 5  # seed_file: 10 seeds, 2 per shard


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", no_model_preparation)


def run(seeds: Path, out: Path, engine: FakeEngine | None = None):
    engine = engine or FakeEngine("sts")
    return generate(load_config(None, STORAGE_OVERRIDES), seeds, out, engine_factory=lambda c, m: engine), engine


@pytest.fixture
def reference(seed_file, tmp_path) -> Path:
    out = tmp_path / "reference"
    run(seed_file, out)
    return out


# ---------------------------------------------------------------- corrupt shards


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_byte(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one bit, mid-file: same size, only the checksum can tell
    path.write_bytes(bytes(blob))


CORRUPTIONS = {
    "truncated": truncate,
    "bit_flipped": flip_byte,
    "appended": lambda p: p.write_bytes(p.read_bytes() + b"\0"),
    "emptied": lambda p: p.write_bytes(b""),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("kind", ["data", "rejects"])
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_shard_is_caught_by_checksum_and_regenerated(seed_file, reference, tmp_path, kind, corruption):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    CORRUPTIONS[corruption](out / kind / "part-00002.parquet")
    summary, engine = run(seed_file, out)
    assert (summary.shards_skipped, summary.shards_written) == (SHARDS - 1, 1)
    assert [len(batch) for batch in engine.batches] == [2 * 3]  # only shard 2's seeds went to the engine
    check_consistent(out)
    assert compare_with_reference(out, reference) == {"lost": 0, "duplicated": 0, "differing": 0}
    assert not leftovers(out)


def test_corrupt_manifest_is_refused_with_the_fix_and_overwrite_regenerates(seed_file, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    truncate(out / "manifest.json")
    with pytest.raises(StorageError, match=r"manifest .*manifest.json is unreadable.*--overwrite") as caught:
        run(seed_file, out)
    assert "\n" not in str(caught.value)
    assert not (out / LOCK).exists()
    summary = generate(load_config(None, STORAGE_OVERRIDES), seed_file, out, overwrite=True,
                       engine_factory=lambda c, m: FakeEngine("sts"))
    assert summary.shards_written == SHARDS
    assert compare_with_reference(out, reference) == {"lost": 0, "duplicated": 0, "differing": 0}


# ---------------------------------------------------------------- disk full


class SmallDisk:
    """A directory with a byte budget: a tmpfs mount if allowed, else an injected ENOSPC."""

    PAGE = 4096

    def __init__(self, root: Path, monkeypatch) -> None:
        self.root = root
        root.mkdir()
        self.kind = "tmpfs"
        try:
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)], capture_output=True)
        except OSError:  # no mount(8) at all
            mounted = None
        if mounted is None or mounted.returncode != 0:
            self.kind = "injected ENOSPC"
            self._inject(monkeypatch)
        self.budget: int | None = None

    def leave_free(self, free_bytes: int) -> None:
        """Fill the disk so that about ``free_bytes`` stay writable."""
        self.release()
        if self.kind == "tmpfs":
            stat = os.statvfs(self.root)
            filler = stat.f_bavail * stat.f_frsize - free_bytes
            with open(self.root / "filler", "wb") as handle:
                handle.write(b"\0" * max(filler, 0))
        else:
            self.budget = free_bytes

    def release(self) -> None:
        (self.root / "filler").unlink(missing_ok=True)
        self.budget = None

    def close(self) -> None:
        if self.kind == "tmpfs":
            subprocess.run(["umount", str(self.root)], check=True)

    def _inject(self, monkeypatch) -> None:
        disk = self
        real_open = open

        class Budgeted:
            def __init__(self, handle) -> None:
                self._handle = handle

            def write(self, data):
                if disk.budget is not None:
                    if len(data) > disk.budget:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    disk.budget -= -(-len(data) // disk.PAGE) * disk.PAGE  # whole pages, as tmpfs counts
                return self._handle.write(data)

            def __getattr__(self, name):
                return getattr(self._handle, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self._handle.__exit__(*exc)

        def budgeted_open(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            return Budgeted(handle) if any(flag in mode for flag in "wax") else handle

        monkeypatch.setattr(shards, "open", budgeted_open, raising=False)


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    disk = SmallDisk(tmp_path / "disk", monkeypatch)
    yield disk
    disk.close()


def written_file(message: str) -> str:
    """Which file a disk-full error names."""
    for marker, name in ((LOCK, "lock"), ("/rejects/", "rejects"), ("/data/", "data"), ("manifest.json", "manifest")):
        if marker in message:
            return name
    return "directory"


def test_disk_full_stops_cleanly_at_every_point_and_resumes(seed_file, reference, small_disk):
    """Run with 0, 1, 2, ... free pages until a run fits; each failed run must stop with one line,
    leave only whole, listed shards and no tmp file, and resume to the reference once space is freed."""
    failures: dict[str, int] = {}
    for pages in range(0, 64):
        out = small_disk.root / f"out{pages}"
        small_disk.leave_free(pages * SmallDisk.PAGE)
        try:
            run(seed_file, out)
        except StorageError as error:
            message = str(error)
            assert "\n" not in message and "free disk space" in message, message
            assert "No space left on device" in message or "Disk quota" in message, message
            failed = written_file(message)
            failures[failed] = failures.get(failed, 0) + 1
            assert not list(out.rglob("*.tmp")), "a partial file was left behind"
            assert not (out / LOCK).exists()
            check_consistent(out) if out.exists() else None
            small_disk.release()
            summary, _ = run(seed_file, out)  # space is back: the same command resumes
            assert compare_with_reference(out, reference) == {"lost": 0, "duplicated": 0, "differing": 0}
            assert not leftovers(out)
            shutil.rmtree(out)
            continue
        break
    else:
        pytest.fail("even 64 free pages were not enough for the run")
    print(f"\nstorage suite, disk full ({small_disk.kind}): runs stopped by ENOSPC per file: {failures}")
    assert failures.get("data", 0) + failures.get("rejects", 0) >= 1 and failures.get("manifest", 0) >= 1, failures


# ---------------------------------------------------------------- locks


def start_fake_run(seeds: Path, out: Path, seconds_per_batch: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "support" / "fake_run.py"), str(seeds), str(out), str(seconds_per_batch)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_shards(process: subprocess.Popen, out: Path, count: int) -> None:
    deadline = time.monotonic() + 120
    while not ((manifest := check_consistent(out)) and len(manifest["shards"]) >= count):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_second_concurrent_run_on_the_same_out_is_refused(seed_file, reference, tmp_path):
    out = tmp_path / "out"
    first = start_fake_run(seed_file, out, seconds_per_batch=0.5)
    wait_for_shards(first, out, 1)
    second = subprocess.run(  # the real CLI; refused at the lock, before any engine is built
        [sys.executable, "-m", "datagen.cli", "sts", "--seeds", str(seed_file), "--out", str(out), "--mode", "separate",
         "--shard-rows", "2", "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "COLUMNS": "400"}, timeout=120,
    )  # fmt: skip
    assert second.returncode != 0
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is in use by another datagen run" in lines[0] and str(first.pid) in lines[0], lines
    assert first.wait(timeout=120) == 0, first.communicate()
    assert compare_with_reference(out, reference) == {"lost": 0, "duplicated": 0, "differing": 0}
    assert not leftovers(out)


def test_stale_lock_of_a_sigkilled_run_is_taken_over(seed_file, reference, tmp_path):
    out = tmp_path / "out"
    victim = start_fake_run(seed_file, out, seconds_per_batch=0.5)
    wait_for_shards(victim, out, 2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert json.loads((out / LOCK).read_text())["pid"] == victim.pid  # left behind by the dead run
    summary, _ = run(seed_file, out)
    assert summary.shards_skipped >= 2 and summary.shards_skipped + summary.shards_written == SHARDS
    assert compare_with_reference(out, reference) == {"lost": 0, "duplicated": 0, "differing": 0}
    assert not leftovers(out)


@pytest.mark.parametrize("content", ["", "{\"pid\": 12", "not json at all"])
def test_lock_cut_short_by_a_kill_is_taken_over(seed_file, reference, tmp_path, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text(content)
    run(seed_file, out)
    assert compare_with_reference(out, reference) == {"lost": 0, "duplicated": 0, "differing": 0}
    assert not (out / LOCK).exists()


def test_lock_of_a_live_process_names_the_lock_file_and_the_way_out(seed_file, tmp_path):
    out = tmp_path / "out"
    with output_lock(out):  # this live process holds it, as another datagen run would
        with pytest.raises(StorageError) as caught:
            run(seed_file, out)
    message = str(caught.value)
    assert "in use by another datagen run" in message and str(out / LOCK) in message and "\n" not in message
    assert read_manifest(out) is None  # the refused run wrote nothing
