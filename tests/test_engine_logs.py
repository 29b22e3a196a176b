"""Library output (this process's fds 1 and 2, and its children's) goes to the engine log, never through a symlink."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from datagen.engine_logs import capture_output
from datagen.errors import StorageError


def test_capture_sends_this_process_and_its_children_to_the_log(tmp_path, capfd):
    log = tmp_path / "out" / "logs" / "engine.log"
    with capture_output(log) as terminal:
        os.write(1, b"fd-one\n")
        print("python-stderr", file=sys.__stderr__, flush=True)  # pytest swaps sys.stderr; this one is on fd 2
        subprocess.run([sys.executable, "-c", "import sys; print('child-stderr', file=sys.stderr)"], check=True)
        terminal.write("for the person\n")
    os.write(2, b"after\n")
    captured = capfd.readouterr()
    text = log.read_text()
    assert all(line in text for line in ("fd-one", "python-stderr", "child-stderr"))
    assert "for the person" not in text and "for the person" in captured.err and "after" in captured.err
    assert "fd-one" not in captured.out + captured.err


def test_capture_never_writes_through_a_symlinked_log_folder(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "logs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StorageError, match="symlink"):
        with capture_output(tmp_path / "out" / "logs" / "engine.log"):
            pass
    assert not any((tmp_path / "elsewhere").iterdir())
