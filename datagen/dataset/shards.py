"""Parquet shard files, written atomically, and the lock that guards an output directory.

Every file is written to a temporary name, fsynced, then ``os.replace``-d, so a reader never sees half
a shard. The layout of ``OUT`` and who writes it: ``datagen.dataset.writer``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from datagen.errors import StorageError
from datagen.tasks import output_fields

LOCK = ".datagen.lock"

_PROVENANCE = [
    ("model", pa.string()),
    ("template_sha", pa.string()),
    ("mode", pa.string()),
    ("seed_index", pa.int64()),
    ("sample_index", pa.int64()),
]


def data_schema(task: str) -> pa.Schema:
    """Columns of a data shard: id, anchor, the task's outputs, then provenance."""
    columns = [("id", pa.string()), ("anchor", pa.string())]
    columns += [(name, pa.string()) for name in output_fields(task)]  # type: ignore[arg-type]
    columns += _PROVENANCE + [("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64())]
    return pa.schema(columns)


def rejects_schema() -> pa.Schema:
    """Columns of a rejects shard: the id and anchor the row would have had, stage, reason, raw text."""
    columns = [("id", pa.string()), ("anchor", pa.string()), ("stage", pa.string()), ("reason", pa.string())]
    columns += [("raw", pa.string()), ("finish_reason", pa.string())] + _PROVENANCE
    return pa.schema(columns)


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


@dataclass(frozen=True)
class WrittenFile:
    path: str  # relative to OUT
    rows: int
    bytes: int
    sha256: str


def write_shard(out: Path, kind: str, index: int, rows: list[dict], schema: pa.Schema, metadata: dict) -> WrittenFile:
    """Write ``rows`` as ``OUT/<kind>/part-<index>.parquet`` atomically.

    Args:
        kind: ``"data"`` or ``"rejects"``.
        metadata: Stored as Parquet key-value metadata (run config, fingerprint).

    Raises:
        StorageError: the disk is full or the directory is not writable; no partial file is left.
    """
    relative = f"{kind}/{shard_name(index)}"
    final = shard_path(out, relative)
    schema = schema.with_metadata({key: json.dumps(value, default=str) for key, value in metadata.items()})
    # Serialise in memory (a shard is small), so the checksum comes from the bytes written, not a re-read.
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer, compression="zstd")
    blob = buffer.getvalue().to_pybytes()
    write_atomically(final, blob, fix="free disk space or choose another --out")
    return WrittenFile(relative, len(rows), len(blob), hashlib.sha256(blob).hexdigest())


def write_atomically(path: Path, blob: bytes, *, fix: str) -> None:
    """Write ``blob`` to ``path`` so that a reader sees the old file or the whole new one, never half of it:
    a fresh ``<name>.tmp``, fsync, then ``os.replace``.

    Raises:
        StorageError: the disk is full or the directory is not writable (``fix`` says what to do); the tmp
            file is removed.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_fresh(tmp, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}; {fix}") from exc


def open_fresh(tmp: Path, mode: str):
    """Open a temporary file for writing as a new file: whatever sits at ``tmp`` (a crash leftover, or a
    symlink planted there) is removed first, and ``x`` mode refuses to follow anything that reappears."""
    tmp.unlink(missing_ok=True)
    return open(tmp, mode.replace("w", "x"), **({} if "b" in mode else {"encoding": "utf-8"}))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# A shard path as the manifest records it: one plain directory name (no "..", no "/"), then part-NNNNN.
_SHARD_PATH = re.compile(r"[A-Za-z0-9_-]+/part-\d{5,}\.parquet")


def is_shard_path(relative: object) -> bool:
    """Whether ``relative`` has the one shape a manifest may record: ``<dir>/part-NNNNN.parquet``."""
    return isinstance(relative, str) and bool(_SHARD_PATH.fullmatch(relative))


def shard_path(out: Path, relative: object) -> Path:
    """``OUT/relative`` for a shard path that stays inside ``OUT``.

    Raises:
        StorageError: ``relative`` is not ``<dir>/part-NNNNN.parquet`` (``../``, absolute, an edited
            manifest), or ``<dir>`` is a symbolic link leading out of ``OUT``.
    """
    if not is_shard_path(relative):
        raise StorageError(
            f"{out}: shard path {relative!r} is not <dir>/part-NNNNN.parquet inside the output directory; the "
            f"manifest was edited or damaged — delete {out / 'manifest.json'} to regenerate, or choose another --out"
        )
    path = out / relative
    if path.parent.is_symlink() or (path.parent.exists() and path.parent.resolve() != out.resolve() / path.parent.name):
        raise StorageError(
            f"{path.parent} is a symbolic link out of {out}; datagen writes only inside the output directory — "
            "remove the link or choose another --out"
        )
    return path


def verify_file(out: Path, written: dict) -> bool:
    """True when the file exists with the size and sha256 the manifest recorded (a symlink never passes).

    Raises:
        StorageError: the manifest points outside ``OUT`` (see ``shard_path``).
    """
    path = shard_path(out, written.get("path"))
    return (
        path.is_file()
        and not path.is_symlink()
        and path.stat().st_size == written["bytes"]
        and file_sha256(path) == written["sha256"]
    )


def read_rows(out: Path, kind: str = "data", columns: list[str] | None = None) -> pa.Table:
    """All rows of one kind in shard order, as one Arrow table."""
    paths = sorted((out / kind).glob("part-*.parquet"))
    if not paths:
        raise StorageError(f"no {kind} shards in {out}; run `datagen nli|sts --out {out}` first")
    return pa.concat_tables([pq.read_table(path, columns=columns) for path in paths])


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``OUT/.datagen.lock`` so two runs never write the same directory.

    A lock left by a process that no longer exists on this host is stale and taken over.

    Raises:
        StorageError: another live process holds the lock.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {out}: {exc.strerror or exc}; free disk space or choose another --out") from exc
    path = out / LOCK
    _acquire(path)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _acquire(path: Path) -> None:
    owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _lock_is_stale(path):
                path.unlink(missing_ok=True)
                continue
            raise StorageError(
                f"{path.parent} is in use by another datagen run ({_lock_owner(path)}); wait for it to finish, "
                f"use another --out, or delete {path} if no datagen run is using it"
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot create the lock {path}: {exc.strerror or exc}; free disk space or choose another --out") from exc
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(owner)
        except OSError as exc:  # disk full: an empty lock would only be taken over later, but say why now
            path.unlink(missing_ok=True)
            raise StorageError(f"cannot write the lock {path}: {exc.strerror or exc}; free disk space and rerun") from exc
        return
    raise StorageError(f"cannot take the lock {path}; delete it if no datagen run is using {path.parent}")


def _lock_owner(path: Path) -> str:
    try:
        return " ".join(path.read_text(errors="replace").split())[:200]
    except OSError:
        return "owner unknown"


def _lock_is_stale(path: Path) -> bool:
    try:
        owner = json.loads(path.read_text())
        pid, host = int(owner["pid"]), owner["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return True  # unreadable: written by a process killed mid-write
    if host != socket.gethostname():
        return False  # cannot check a process on another machine; refuse to steal
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
