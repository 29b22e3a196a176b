"""The manifest of an output directory: what was produced, by which config, with checksums.

``OUT/manifest.json`` is written whole only when a stage starts and when it finalizes. In between, each
finished shard is appended to ``OUT/manifest.json.journal`` as one JSON line (then fsynced), so a run of
N shards writes O(N) manifest bytes instead of rewriting the whole manifest N times. Readers see
manifest + journal merged; ``DatasetWriter.finalize`` compacts the journal into the manifest.

Crash guarantees are those of a whole-manifest rewrite: a shard is listed only once both of its files
are in place, and a line torn by a crash (no newline, not JSON) lists nothing, so its files are orphans
that the next run removes and regenerates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from datagen.config import SCHEMA_VERSION
from datagen.dataset.shards import is_shard_path, open_fresh, verify_file, write_atomically
from datagen.errors import InputError, StorageError

MANIFEST = "manifest.json"
JOURNAL = MANIFEST + ".journal"


class FileEntry(BaseModel):
    """One file the manifest vouches for: where it is (relative to OUT), its rows, size and sha256."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    rows: int
    bytes: int
    sha256: str

    @field_validator("path", mode="before")
    @classmethod
    def _inside_out(cls, value: object) -> object:
        # Checked before anything opens it: an edited manifest must not lead a reader out of OUT.
        if not is_shard_path(value):
            raise PydanticCustomError(
                "shard_path", "shard path {value} is not <dir>/part-NNNNN.parquet inside the output directory",
                {"value": repr(value)})
        return value


class ShardEntry(BaseModel):
    """A data shard and its rejects shard, made from seeds ``seed_range`` = [start, stop)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    index: int
    seed_range: tuple[int, int]
    data: FileEntry
    rejects: FileEntry
    reject_reasons: dict[str, int] = Field(default_factory=dict)
    seeds_sha256: str | None = None  # of the seeds it was made from (generation); a rerun regenerates it if they changed


class Counts(BaseModel):
    rows: int = 0
    rejects: int = 0
    reject_reasons: dict[str, int] = Field(default_factory=dict)


class Manifest(BaseModel):
    """``OUT/manifest.json``. Stage summaries (``scores``, ``judge``, ``audit``, ``parent``, ``filter``)
    ride along as extra keys, set through ``DatasetWriter.set_section``."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    format_version: int = SCHEMA_VERSION
    task: str
    fingerprint: str
    config: dict[str, Any]
    model: dict[str, Any] | None = None
    templates: dict[str, str] = Field(default_factory=dict)
    template_sha: str | None = None
    seeds: dict[str, Any] | None = None
    status: Literal["running", "complete"] = "running"
    shards: list[ShardEntry] = Field(default_factory=list)
    counts: Counts = Field(default_factory=Counts)

    def section(self, key: str) -> Any:
        """A stage summary (``scores``, ``judge``, ...) or None."""
        return (self.model_extra or {}).get(key)

    def data_shards(self) -> list[ShardEntry]:
        """Shards that hold at least one row."""
        return [shard for shard in self.shards if shard.data.rows > 0]

    def seeds_done(self) -> int:
        return sum(stop - start for start, stop in (shard.seed_range for shard in self.shards))

    def with_shards(self, shards: list[ShardEntry]) -> "Manifest":
        """This manifest listing ``shards`` (sorted by index), with counts summed from them."""
        ordered = sorted(shards, key=lambda shard: shard.index)
        return self.model_copy(update={"shards": ordered, "counts": count_shards(ordered)})


def count_shards(shards: list[ShardEntry]) -> Counts:
    """Rows, rejects and reject reasons (most frequent first) over ``shards``."""
    reasons: dict[str, int] = {}
    for shard in shards:
        for reason, count in shard.reject_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    return Counts(
        rows=sum(shard.data.rows for shard in shards),
        rejects=sum(shard.rejects.rows for shard in shards),
        reject_reasons=dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
    )


def count_reasons(rejects: list[dict]) -> dict[str, int]:
    """Reason code -> how many of ``rejects`` carry it."""
    counts: dict[str, int] = {}
    for reject in rejects:
        counts[reject["reason"]] = counts.get(reject["reason"], 0) + 1
    return counts


def read_manifest(out: Path) -> Manifest | None:
    """The manifest of ``out`` with its journal applied, or None if there is none yet.

    Raises:
        StorageError: the manifest exists but is not valid JSON of our format.
    """
    path = Path(out) / MANIFEST
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StorageError(f"manifest {path} is unreadable ({exc}); rerun with --overwrite to start over") from exc
    if not isinstance(raw, dict) or raw.get("format_version") != SCHEMA_VERSION:
        raise StorageError(
            f"manifest {path} has format {raw.get('format_version') if isinstance(raw, dict) else '?'}, "
            f"this datagen writes {SCHEMA_VERSION}; rerun with --overwrite or use a new --out"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise StorageError(f"{out}: {exc.errors()[0]['msg']}; the manifest was edited or damaged — delete {path} "
                           "to regenerate, or choose another --out") from exc
    journaled = read_journal(Path(out))
    if not journaled:
        return manifest
    shards = {shard.index: shard for shard in manifest.shards} | {shard.index: shard for shard in journaled}
    return manifest.with_shards(list(shards.values()))


def read_journal(out: Path) -> list[ShardEntry]:
    """Shard entries appended since the manifest was last written whole; a torn last line is ignored."""
    path = out / JOURNAL
    if not path.is_file():
        return []
    entries = []
    for line in path.read_bytes().split(b"\n"):
        try:
            entries.append(ShardEntry.model_validate_json(line))
        except ValidationError:
            continue  # a line torn by a crash mid-append, or an empty tail: it vouches for nothing
    return entries


def write_manifest(out: Path, manifest: Manifest) -> None:
    """Replace ``OUT/manifest.json`` atomically (tmp file, fsync, ``os.replace``)."""
    write_atomically(out / MANIFEST, manifest.model_dump_json(indent=2).encode("utf-8"),
                     fix="free disk space and rerun to resume")


class Journal:
    """Append-only shard records beside the manifest (see the module docstring)."""

    def __init__(self, out: Path) -> None:
        self.path = out / JOURNAL
        self._handle = None

    def open_fresh(self) -> None:
        """Start an empty journal: whatever an earlier run journaled is already in the manifest."""
        self.close()
        try:
            self._handle = open_fresh(self.path, "wb")
        except OSError as exc:
            raise StorageError(f"cannot create {self.path}: {exc.strerror or exc}; free disk space and rerun") from exc

    def append(self, shard: ShardEntry) -> None:
        if self._handle is None:
            self.open_fresh()
        try:
            self._handle.write(shard.model_dump_json().encode("utf-8") + b"\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}; free disk space and rerun to "
                               "resume") from exc

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass  # disk full while flushing: what reached the file is a torn line, which lists nothing

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def current_section(out: Path, manifest: Manifest, key: str, command: str) -> dict:
    """The manifest's ``key`` section (``scores``, ``judge``) if it still describes the data shards as they are.

    A stage that writes a sidecar records the data fingerprint, the sha256 of every data shard it read and of
    every file it wrote; a reader calls this before trusting the sidecar.

    Raises:
        InputError: the stage never ran, ran before the data changed, or its files were changed since.
    """
    section = manifest.section(key)
    if not section:
        raise InputError(f"{out} has no `datagen {command}` results; run `datagen {command} {out}` first")
    current = {shard.data.path: shard.data.sha256 for shard in manifest.data_shards()}
    stale = section.get("data_shards") != current or section.get("data_fingerprint") != manifest.fingerprint
    if stale or not all(verify_file(out, written) for written in section.get("files", [])):
        raise InputError(f"the `datagen {command}` results of {out} do not match its data (changed or redone meanwhile); "
                         f"run `datagen {command} {out}` again")
    return section
