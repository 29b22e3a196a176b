"""Stage 1: read seed sentences from .txt, .jsonl or .parquet.

A file that cannot be used at all (missing, a directory, binary, not UTF-8,
empty) raises ``InputError`` with one line naming the file and the fix. A bad
row inside a good file becomes a ``Seed`` with ``problem`` set, so the pipeline
can reject it with a reason instead of losing it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from datagen.errors import InputError

# A seed is one sentence; anything longer is a paragraph or garbage and would blow the context.
MAX_SEED_CHARS = 2000
SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".parquet")
# Only these end a line. str.splitlines() also splits at U+2028, \x0c, \x1c.. which may sit inside a
# sentence or a JSON string, and would cut one seed in two.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Control characters other than whitespace (and lone surrogates from JSON escapes) cannot go into a prompt
# or a Parquet string as they are.
_BAD_CHARS = re.compile("[\x01-\x08\x0e-\x1f\x7f\ud800-\udfff]")
_CONTROL_BYTES = frozenset(range(0, 9)) | frozenset(range(14, 32)) | {127}
# Share of control bytes (with at least one NUL) in the first 8 KiB above which a file is binary, not
# text with a few bad rows: UTF-16 text is ~50% NUL, a stray NUL in a text line is well under 1%.
_BINARY_SHARE = 0.10
_HINTS = {
    "seed_missing_field": "pass --column NAME with the field that holds the sentence",
    "seed_bad_json": "a .jsonl file needs one JSON object per line",
    "seed_not_text": "the column must hold strings; pass --column NAME",
    "seed_too_long": f"a seed is one sentence of at most {MAX_SEED_CHARS} characters",
}


@dataclass(frozen=True, slots=True)  # slots: no per-seed __dict__ (100k seeds: 10 MB less)
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
    seeds = list(iter_seeds(path, column=column))
    return seeds[:limit] if limit else seeds


def iter_seeds(path: str | Path, *, column: str = "text") -> Iterator[Seed]:
    """Seeds one at a time in file order, so a run over millions of seeds never holds them all.

    Args:
        path, column: As for ``read_seeds``.

    Yields:
        Seeds in file order; unusable rows carry ``problem``.

    Raises:
        InputError: the file cannot be used: before the first seed for a missing, binary or mistyped
            file, after the last one for a file without a single usable seed.
    """
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    records = _read_parquet if suffix == ".parquet" else _read_jsonl if suffix == ".jsonl" else _read_lines
    problems: Counter[str] = Counter()  # counted only until the first usable seed: then the file is fine
    usable = False
    for seed in records(path, column):
        usable = usable or seed.problem is None
        if not usable:
            problems[seed.problem or ""] += 1
        yield seed
    if not usable and not problems:
        raise InputError(f"seed file {path} holds no sentences; put one sentence per line (or per JSONL record)")
    if not usable:
        problem, count = problems.most_common(1)[0]
        hint = _HINTS.get(problem, "check the file")
        raise InputError(
            f"seed file {path} has no usable seed ({count} of {problems.total()} records: {problem}); {hint}"
        )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"seed file {path} does not exist; pass an existing file to --seeds")
    if path.is_dir():
        raise InputError(f"seed path {path} is a directory; pass a .txt, .jsonl or .parquet file to --seeds")
    if not path.is_file():
        raise InputError(f"seed path {path} is not a regular file; pass a .txt, .jsonl or .parquet file to --seeds")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES and path.suffix != "":
        raise InputError(f"seed file {path} has an unsupported type '{path.suffix}'; use .txt, .jsonl or .parquet")
    if path.stat().st_size == 0:
        raise InputError(f"seed file {path} is empty; put one sentence per line")


def _text_lines(path: Path) -> Iterator[str]:
    """The file's lines (split at LF only, LF removed), decoded as UTF-8 one at a time.

    Reading line by line keeps a 100k-seed file from sitting in memory three times over (bytes, text,
    split list) while the seeds are built.

    Raises:
        InputError: unreadable, Parquet or binary content, or bytes that are not UTF-8 (with the line).
    """
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read seed file {path}: {exc.strerror or exc}; check its permissions") from exc
    with handle:
        _check_text(path, handle.read(8192))
        handle.seek(0)
        offset = 0
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"seed file {path} is not valid UTF-8 (line {number}, byte {offset + exc.start}); re-encode it, "
                    "e.g. iconv -f latin1 -t utf-8"
                ) from exc
            offset += len(raw)
            yield (text.removeprefix("\ufeff") if number == 1 else text).removesuffix("\n")  # BOM: Windows editors


def _check_text(path: Path, sample: bytes) -> None:
    if sample.startswith(b"PAR1"):
        raise InputError(f"seed file {path} is a Parquet file; give it the .parquet suffix and pass --column")
    if b"\x00" in sample and sum(byte in _CONTROL_BYTES for byte in sample) > _BINARY_SHARE * len(sample):
        raise InputError(
            f"seed file {path} looks binary (NUL bytes); pass a UTF-8 text file "
            "(UTF-16 text: iconv -f utf-16 -t utf-8)"
        )


def _make_seed(index: int, text: object) -> Seed:
    if not isinstance(text, str):
        return Seed(index, "" if text is None else _printable(str(text))[:MAX_SEED_CHARS], problem="seed_not_text")
    text = " ".join(text.split())  # collapse CR, tabs and runs of spaces
    if not text:
        return Seed(index, text, problem="seed_empty")
    if "\x00" in text:
        return Seed(index, _printable(text.replace("\x00", ""))[:MAX_SEED_CHARS], problem="seed_has_nul")
    if _BAD_CHARS.search(text):
        return Seed(index, _printable(text)[:MAX_SEED_CHARS], problem="seed_bad_characters")
    if len(text) > MAX_SEED_CHARS:
        return Seed(index, text[:MAX_SEED_CHARS], problem="seed_too_long")
    return Seed(index, text)


def _printable(text: str) -> str:
    """``text`` with control characters and lone surrogates escaped, so a reject can still be written."""
    return _BAD_CHARS.sub(lambda match: match.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


def _read_lines(path: Path, column: str) -> Iterator[Seed]:
    lines = (line for text in _text_lines(path) for line in _LINE_BREAK.split(text) if line.strip())
    return (_make_seed(i, line) for i, line in enumerate(lines))


def _read_jsonl(path: Path, column: str) -> Iterator[Seed]:
    index = 0
    for line in _text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            yield Seed(index, _printable(line.strip())[:MAX_SEED_CHARS], problem="seed_bad_json")
        else:
            if not isinstance(record, dict) or column not in record:
                yield Seed(index, _printable(line.strip())[:MAX_SEED_CHARS], problem="seed_missing_field")
            else:
                yield _make_seed(index, record[column])
        index += 1


def _read_parquet(path: Path, column: str) -> Iterator[Seed]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a non-Parquet file
        raise InputError(f"seed file {path} is not a readable Parquet file ({exc}); check the file") from exc
    names = parquet.schema_arrow.names
    if column not in names:
        raise InputError(f"seed file {path} has no column '{column}' (columns: {', '.join(names)}); pass --column NAME")
    index = 0
    with parquet:
        try:
            for batch in parquet.iter_batches(columns=[column], batch_size=4096):
                for value in batch.column(0).to_pylist():
                    yield _make_seed(index, value)
                    index += 1
        except InputError:
            raise
        except Exception as exc:  # a damaged data page surfaces only when read
            raise InputError(f"seed file {path} cannot be read ({exc}); check or rewrite the Parquet file") from exc
