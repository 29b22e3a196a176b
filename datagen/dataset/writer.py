"""``DatasetWriter``: the one writer of an output directory.

Generation, filtering and every quality stage (scores today; judge and audit next) write through it,
so atomic files, reason counting, the manifest and its journal live in one place::

    with DatasetWriter(out) as writer:           # holds OUT/.datagen.lock
        previous = writer.existing()             # manifest + journal of an earlier run, or None
        writer.begin(manifest, keep=shards)      # manifest.json (status running), fresh journal
        writer.write_shard(0, (0, 64), rows, rejects)
        counts = writer.finalize()               # manifest.json whole (status complete), journal gone

Layout of ``OUT``::

    OUT/manifest.json              what was produced, by which config, with checksums
    OUT/manifest.json.journal      shards finished since manifest.json was last written whole
    OUT/README.md                  the Hugging Face dataset card, rendered from the manifest by finalize()
    OUT/data/part-00000.parquet    accepted rows
    OUT/rejects/part-00000.parquet rejected rows with raw LLM text and a reason
    OUT/<sidecar>/part-00000.parquet  per-row results of a quality stage, keyed by id
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa

from datagen.dataset.card import CARD, is_replaceable, write_card
from datagen.dataset.manifest import (
    JOURNAL,
    MANIFEST,
    Counts,
    FileEntry,
    Journal,
    Manifest,
    ShardEntry,
    count_reasons,
    read_manifest,
    write_manifest,
)
from datagen.dataset.shards import data_schema, output_lock, rejects_schema, shard_path, verify_file, write_shard
from datagen.errors import StorageError

SHARD_KINDS = ("data", "rejects")


class DatasetWriter:
    """Owns ``OUT`` for the length of a ``with`` block (see the module docstring).

    Args:
        out: The output directory; created if missing.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.manifest: Manifest | None = None
        self._journal = Journal(self.out)
        self._lock = None
        self._shards: dict[int, ShardEntry] = {}
        self._metadata: dict[str, Any] = {}
        self._journaling = False  # begin() was called: shards go to the journal until finalize()

    def __enter__(self) -> "DatasetWriter":
        self._lock = output_lock(self.out)
        self._lock.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and self._journaling:
                self._compact_after_failure()
        finally:
            self._journal.close()
            lock, self._lock = self._lock, None
            if lock is not None:
                lock.__exit__(exc_type, exc, tb)

    def _compact_after_failure(self) -> None:
        """A stage that stops with an error (not a kill) leaves one whole manifest, status ``running``.

        Best effort: if even that cannot be written (disk full), the journal stays and readers merge it.
        """
        try:
            self.finalize(status="running")
        except StorageError:
            pass

    # --- what is there ------------------------------------------------------------------------------------------

    def existing(self) -> Manifest | None:
        """The manifest an earlier stage left (journal applied), or None.

        Raises:
            StorageError: it exists but cannot be read.
        """
        return read_manifest(self.out)

    def verified(self, shards: Iterable[ShardEntry]) -> list[ShardEntry]:
        """The shards among ``shards`` whose two files exist with their recorded size and sha256."""
        return [s for s in shards if all(verify_file(self.out, f.model_dump()) for f in (s.data, s.rejects))]

    def clear(self) -> None:
        """Delete the dataset in ``OUT`` for ``--overwrite``: the shards, every sidecar of parts computed from them
        (scores, judge, ...), the manifest, its journal and datagen's card. Human audit labels (no parts) and a
        README.md the user wrote are left alone."""
        for folder in [self.out / kind for kind in SHARD_KINDS] + sorted(self.out.iterdir() if self.out.is_dir() else []):
            if folder.is_dir() and not folder.is_symlink() and (folder.name in SHARD_KINDS or any(folder.glob("part-*.parquet"))):
                shutil.rmtree(folder, ignore_errors=True)
        for name in (MANIFEST, JOURNAL):
            (self.out / name).unlink(missing_ok=True)
        if is_replaceable(self.out / CARD):
            (self.out / CARD).unlink(missing_ok=True)

    # --- writing shards -----------------------------------------------------------------------------------------

    def begin(self, manifest: Manifest, *, keep: Iterable[ShardEntry] = (), metadata: dict[str, Any] | None = None) -> None:
        """Start writing: list the shards kept from an earlier run, remove any other shard file, and write
        the manifest whole with status ``running`` (a crash from here on leaves a resumable directory).

        Args:
            manifest: The stage's manifest (task, fingerprint, config, ...); its shards are replaced by ``keep``.
            keep: Verified shards of an earlier run of the same fingerprint.
            metadata: Parquet key-value metadata for every shard (the fingerprint and config always ride along).
        """
        self._shards = {shard.index: shard for shard in keep}
        self._remove_orphans()
        self.manifest = manifest.with_shards(list(self._shards.values())).model_copy(update={"status": "running"})
        self._metadata = {"datagen.fingerprint": manifest.fingerprint, "datagen.config": manifest.config,
                          **(metadata or {})}
        write_manifest(self.out, self.manifest)
        self._journal.open_fresh()
        self._journaling = True

    def write_shard(self, index: int, seed_range: tuple[int, int], rows: list[dict], rejects: list[dict], *,
                    seeds_sha256: str | None = None) -> ShardEntry:
        """Write shard ``index`` (data + rejects) atomically and journal it.

        Rejects first: a crash between the two leaves no data shard the manifest could miss.

        Args:
            seeds_sha256: The hash of the seeds the shard was made from, so a rerun can tell whether they changed.

        Raises:
            StorageError: the disk is full or the directory is not writable; no partial file is left.
        """
        manifest = self._require_started()
        written_rejects = write_shard(self.out, "rejects", index, rejects, rejects_schema(), self._metadata)
        written_data = write_shard(self.out, "data", index, rows, data_schema(manifest.task), self._metadata)
        shard = ShardEntry(
            index=index, seed_range=seed_range, data=FileEntry(**vars(written_data)),
            rejects=FileEntry(**vars(written_rejects)), reject_reasons=count_reasons(rejects),
            seeds_sha256=seeds_sha256,
        )
        self._journal.append(shard)
        self._shards[index] = shard
        return shard

    @property
    def shards(self) -> list[ShardEntry]:
        """Every shard listed so far (kept and written), by index."""
        return sorted(self._shards.values(), key=lambda shard: shard.index)

    def seeds_done(self) -> int:
        return sum(stop - start for start, stop in (shard.seed_range for shard in self._shards.values()))

    # --- quality stages -----------------------------------------------------------------------------------------

    def open_existing(self) -> Manifest:
        """Start a stage that adds to a finished dataset (a sidecar, a manifest section), not shards.

        Raises:
            StorageError: there is no manifest to add to.
        """
        manifest = self.existing()
        if manifest is None:
            raise StorageError(f"{self.out} has no manifest.json; generate a dataset there first")
        self.manifest = manifest
        self._shards = {shard.index: shard for shard in manifest.shards}
        return manifest

    def replace_sidecar(self, name: str, parts: Iterable[tuple[int, list[dict]]], schema: pa.Schema,
                        metadata: dict[str, Any]) -> list[FileEntry]:
        """Write ``OUT/<name>/part-<index>.parquet`` for every ``(index, rows)`` and swap the folder in whole.

        All parts go into a staging folder first; the old sidecar is replaced only after every part is
        written, so a crash before the swap leaves it untouched. The caller records the returned entries
        (with their sha256) in the manifest, so a crash inside the swap is detected by whoever reads it.
        """
        staging = self.out / f".{name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        written = [FileEntry(**vars(write_shard(staging, name, index, rows, schema, metadata)))
                   for index, rows in parts]
        old = self.out / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if (self.out / name).exists():
            (self.out / name).rename(old)
        if (staging / name).exists():
            (staging / name).rename(self.out / name)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        return written

    def write_sidecar_part(self, name: str, index: int, rows: list[dict], schema: pa.Schema,
                           metadata: dict[str, Any]) -> FileEntry:
        """Write one part of a sidecar atomically, in place (for stages that resume shard by shard)."""
        return FileEntry(**vars(write_shard(self.out, name, index, rows, schema, metadata)))

    def set_section(self, key: str, value: Any) -> None:
        """Record a stage summary (``scores``, ``judge``, ``filter``, ...) under ``key`` in the manifest."""
        manifest = self._require_started()
        self.manifest = manifest.model_copy(update={key: value})

    # --- the end ------------------------------------------------------------------------------------------------

    def finalize(self, *, status: str | None = "complete") -> Counts:
        """Write the manifest whole (journal compacted into it), then the dataset card, and return the counts.

        The card (``OUT/README.md``, see ``datagen.dataset.card``) is a view of the manifest, written last: a
        stop before it leaves a consistent directory, and the next stage or rerun writes it. A README.md the
        user wrote is left alone.

        Args:
            status: The manifest's new status; None keeps it (a quality stage adding a sidecar).
        """
        manifest = self._require_started().with_shards(self.shards)
        if status is not None:
            manifest = manifest.model_copy(update={"status": status})
        write_manifest(self.out, manifest)
        self._journal.remove()
        self._journaling = False
        self.manifest = manifest
        write_card(self.out, manifest)
        return manifest.counts

    def _require_started(self) -> Manifest:
        if self.manifest is None:
            raise RuntimeError("DatasetWriter: call begin() or open_existing() before writing")
        return self.manifest

    def _remove_orphans(self) -> None:
        """Delete shard files the manifest will not vouch for (crash leftovers, corrupt or stale files)."""
        keep = {shard_path(self.out, entry.path) for shard in self._shards.values()
                for entry in (shard.data, shard.rejects)}
        for kind in SHARD_KINDS:
            for path in (self.out / kind).glob("part-*"):
                if path not in keep:
                    path.unlink()
