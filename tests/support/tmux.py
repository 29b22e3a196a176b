"""Drive a real terminal program in a detached tmux session: type keys, read the screen (test helper).

Each ``TmuxPane`` runs its own tmux server on a socket in a folder the test owns (``tmux -S``) with no
config file, so tests never see or touch anyone's tmux sessions; ``close()`` stops that server only.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path


def tmux_available() -> bool:
    return shutil.which("tmux") is not None


class TmuxPane:
    """A bash shell in a ``width`` x ``height`` tmux pane, its server's socket in ``folder``."""

    def __init__(self, folder: Path, *, width: int = 220, height: int = 50) -> None:
        self.socket = str(folder / "tmux.sock")  # short: a socket path must fit in 108 bytes
        self._tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), "bash --noprofile --norc")

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-S", self.socket, "-f", "/dev/null", *args],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def run(self, command: str) -> None:
        """Type ``command`` and Enter at the shell prompt."""
        self._tmux("send-keys", "-t", "t", "-l", command)
        self._tmux("send-keys", "-t", "t", "Enter")

    def keys(self, *keys: str) -> None:
        """Press each key (literal characters), one send-keys call each, as a person types."""
        for key in keys:
            self._tmux("send-keys", "-t", "t", "-l", key)

    def screen(self) -> str:
        """The visible pane, wrapped lines joined."""
        return self._tmux("capture-pane", "-p", "-J", "-t", "t")

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        """Poll the screen until ``text`` shows; returns the screen.

        Raises:
            AssertionError: with the last screen, when ``text`` did not show within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not show within {timeout} s; the screen was:\n{screen}")
            time.sleep(0.1)

    def clear(self, timeout: float = 30.0) -> None:
        """Clear the shell's screen and scrollback and wait until it shows only the prompt, so a later
        ``wait_for`` cannot match what an earlier program left on the screen."""
        self.run("clear")
        deadline = time.monotonic() + timeout
        while len([line for line in self.screen().splitlines() if line.strip()]) > 1:
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen did not clear within {timeout} s:\n{self.screen()}")
            time.sleep(0.1)
        self._tmux("clear-history", "-t", "t")

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "-f", "/dev/null", "kill-server"], capture_output=True, timeout=30)

    def __enter__(self) -> "TmuxPane":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
