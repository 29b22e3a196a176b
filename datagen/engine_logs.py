"""Keep what the libraries print (vLLM, Ray, torch, transformers) off the terminal, in a log file.

vLLM's EngineCore and its workers are separate processes that write straight to file descriptors 1 and 2,
so configuring Python logging cannot catch them. ``capture_output`` points fds 1 and 2 of this process at
the log file (``os.dup2``) for as long as it is open: every process started meanwhile inherits the file, and
so does every Python stream and logging handler bound to ``sys.stdout``/``sys.stderr``. The program's own
console keeps writing to the terminal through the stream it yields, a duplicate of the original stderr.

    with capture_output(engine_log_path(out)) as terminal:
        console.file = terminal      # datagen's lines still reach the person
        ...                          # build and run the engine
"""

from __future__ import annotations

import io
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from datagen.errors import StorageError

LOG_DIR = "logs"
ENGINE_LOG = "engine.log"

# Set before the libraries are imported (they read them once). Progress bars of weight loading and saving
# are noise in a log and on a terminal alike; datagen draws its own progress.
QUIET_ENVIRONMENT = {"HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def engine_log_path(out: str | Path) -> Path:
    """Where a command that writes ``out`` keeps its engine's output: ``OUT/logs/engine.log``."""
    return Path(out) / LOG_DIR / ENGINE_LOG


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Turn off the libraries' own progress bars (weight loading, shard writing) within the block; a value the
    user exported wins. A library imported meanwhile keeps the setting (they read it once)."""
    added = [name for name in QUIET_ENVIRONMENT if name not in os.environ]
    os.environ.update({name: QUIET_ENVIRONMENT[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextmanager
def capture_output(log_path: str | Path, *, python_stderr_to_terminal: bool = False) -> Iterator[TextIO]:
    """Send everything written to fds 1 and 2, by this process and every process it starts meanwhile, to ``log_path``.

    Args:
        log_path: Appended to (a resumed run keeps the log of the run it resumes); its folder is created.
        python_stderr_to_terminal: Also point ``sys.stderr`` at the terminal, for a command whose own
            progress bar writes there (``datagen train``); output below Python (C++, subprocesses) still
            goes to the log.

    Yields:
        A text stream on the original stderr (the terminal), for the program's own console.

    Raises:
        StorageError: the log cannot be opened (the folder is a symlink, the disk is full, ...); nothing
            was redirected.
    """
    log_fd = _open_log(Path(log_path))
    _flush(sys.stdout, sys.stderr)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = _text_stream(os.dup(saved[2]), like=sys.stderr)
    python_stderr = sys.stderr
    try:
        for fd in (1, 2):
            os.dup2(log_fd, fd)
        if python_stderr_to_terminal:
            sys.stderr = terminal
        yield terminal
    finally:
        sys.stderr = python_stderr
        _flush(sys.stdout, sys.stderr, terminal)
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(log_fd)
        terminal.close()


def _open_log(path: Path) -> int:
    """Open ``path`` for appending, never through a symlink (nothing is written outside the output dir)."""
    try:
        if path.parent.is_symlink():
            raise StorageError(f"{path.parent} is a symlink; datagen writes its log only inside the output directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open the log {path}: {exc.strerror or exc}") from exc
    header = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {' '.join(sys.argv)}\n"
    try:
        os.write(fd, header.encode("utf-8", "replace"))
    except OSError as exc:
        os.close(fd)
        raise StorageError(f"cannot write the log {path}: {exc.strerror or exc}") from exc
    return fd


def _text_stream(fd: int, *, like: TextIO) -> TextIO:
    encoding = getattr(like, "encoding", None) or "utf-8"
    return io.TextIOWrapper(io.FileIO(fd, "w"), encoding=encoding, errors="replace", line_buffering=True)


def _flush(*streams: TextIO) -> None:
    for stream in streams:
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream has nothing left to lose
            pass


__all__ = ["ENGINE_LOG", "LOG_DIR", "capture_output", "engine_log_path", "quiet_libraries"]
