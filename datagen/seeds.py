"""Stage 1: read seed sentences from .txt, .jsonl or .parquet.

A file that cannot be used at all (missing, a directory, binary, not UTF-8,
empty) raises ``InputError`` with one line naming the file and the fix. A bad
row inside a good file becomes a ``Seed`` with ``problem`` set, so the pipeline
can reject it with a reason instead of losing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from datagen.errors import InputError

# A seed is one sentence; anything longer is a paragraph or garbage and would blow the context.
MAX_SEED_CHARS = 2000
SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".parquet")


@dataclass(frozen=True)
class Seed:
    index: int  # ordinal among the file's seed records (blank lines are not seeds)
    text: str
    problem: str | None = None  # reason code when the row cannot be used


def read_seeds(path: str | Path, *, column: str = "text", limit: int | None = None) -> list[Seed]:
    """Read seeds from a file, one record per seed.

    Args:
        path: ``.txt`` (one sentence per line), ``.jsonl`` (``column`` field) or ``.parquet`` (``column``).
        column: Field or column holding the sentence for .jsonl/.parquet.
        limit: Keep only the first ``limit`` seeds.

    Returns:
        Seeds in file order; unusable rows carry ``problem``.

    Raises:
        InputError: the file as a whole cannot be used.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix == ".parquet":
        seeds = _read_parquet(path, column)
    elif path.suffix == ".jsonl":
        seeds = _read_jsonl(path, column)
    else:
        seeds = _read_lines(path)
    if not seeds:
        raise InputError(f"seed file {path} holds no sentences; put one sentence per line (or per JSONL record)")
    return seeds[:limit] if limit else seeds


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"seed file {path} does not exist; pass an existing file to --seeds")
    if path.is_dir():
        raise InputError(f"seed path {path} is a directory; pass a .txt, .jsonl or .parquet file to --seeds")
    if path.suffix not in SUPPORTED_SUFFIXES and path.suffix != "":
        raise InputError(f"seed file {path} has an unsupported type '{path.suffix}'; use .txt, .jsonl or .parquet")
    if path.stat().st_size == 0:
        raise InputError(f"seed file {path} is empty; put one sentence per line")


def _decode_text(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:8192] and path.suffix != ".parquet":
        raise InputError(f"seed file {path} looks binary (NUL bytes); pass a UTF-8 text file")
    try:
        text = raw.decode("utf-8-sig")  # -sig drops a BOM that editors on Windows add
    except UnicodeDecodeError as exc:
        raise InputError(
            f"seed file {path} is not valid UTF-8 (byte {exc.start}); re-encode it, e.g. iconv -f latin1 -t utf-8"
        ) from exc
    return text


def _make_seed(index: int, text: object) -> Seed:
    if not isinstance(text, str):
        return Seed(index, "" if text is None else str(text), problem="seed_not_text")
    text = " ".join(text.split())  # collapse CR, tabs and runs of spaces
    if not text:
        return Seed(index, text, problem="seed_empty")
    if "\x00" in text:
        return Seed(index, text.replace("\x00", ""), problem="seed_has_nul")
    if len(text) > MAX_SEED_CHARS:
        return Seed(index, text[:MAX_SEED_CHARS], problem="seed_too_long")
    return Seed(index, text)


def _read_lines(path: Path) -> list[Seed]:
    lines = [line for line in _decode_text(path).splitlines() if line.strip()]
    return [_make_seed(i, line) for i, line in enumerate(lines)]


def _read_jsonl(path: Path, column: str) -> list[Seed]:
    seeds: list[Seed] = []
    for line in _decode_text(path).splitlines():
        if not line.strip():
            continue
        index = len(seeds)
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            seeds.append(Seed(index, line[:MAX_SEED_CHARS], problem="seed_bad_json"))
            continue
        if not isinstance(record, dict) or column not in record:
            seeds.append(Seed(index, line[:MAX_SEED_CHARS], problem="seed_missing_field"))
            continue
        seeds.append(_make_seed(index, record[column]))
    return seeds


def _read_parquet(path: Path, column: str) -> list[Seed]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a non-Parquet file
        raise InputError(f"seed file {path} is not a readable Parquet file ({exc}); check the file") from exc
    if column not in schema.names:
        raise InputError(
            f"seed file {path} has no column '{column}' (columns: {', '.join(schema.names)}); pass --column NAME"
        )
    values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    return [_make_seed(i, value) for i, value in enumerate(values)]
