"""Ctrl-C and SIGTERM stop a command the way an error does: ``finally`` blocks run, the lock is released.

- ``StopSignals`` turns SIGINT and SIGTERM into ``Stopped`` (a ``KeyboardInterrupt``) in the main thread.
  Only the first signal raises: later ones would cut the cleanup short (the manifest written whole, the
  lock removed, the engine shut down; vLLM's own timeouts bound that to seconds).
- A terminal sends Ctrl-C to the whole process group, so vLLM's EngineCore and workers got it too and died
  mid-step, each with a traceback ("RuntimeError: cancelled") and shared memory left behind. While an
  engine starts (``StopSignals.engine_start``) the main thread blocks SIGINT, and a blocked signal stays
  blocked in every process started from that thread, across exec: the engine's processes never see Ctrl-C,
  and datagen shuts them down itself, through vLLM's normal path (SIGTERM, then a clean exit).
- An engine half-started cannot be shut down cleanly (measured: interrupting vLLM's start left the
  EngineCore waiting for a handshake for minutes), so a stop that arrives while it starts waits until it
  is up, and says so at once. A second one meanwhile stops at once, without cleanup: the engine's
  processes are killed, and the lock is left for the next run to take over (its owner is dead).
- Cleanup that must run whole (the engine's shutdown, the manifest's last write, the terminal's fds restored)
  runs ``StopSignals.shielded()``: a signal meanwhile is recorded, not raised, and later ones are ignored; a
  run whose work was done when it came finishes as it would have.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from contextlib import contextmanager
from multiprocessing import resource_tracker
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; ``exit_code`` is the shell's convention for it (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code_of(stop: KeyboardInterrupt) -> int:
    """130 for a plain ``KeyboardInterrupt`` (one that arrived before the handlers were in place)."""
    return stop.exit_code if isinstance(stop, Stopped) else 128 + signal.SIGINT


class StopSignals:
    """SIGINT and SIGTERM handlers for the length of a ``with`` block (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.stopping = False  # a stop was acted on (raised, or deferred): the command is cleaning up
        self.pending: int | None = None  # a signal that came while an engine started
        self.deferred: int | None = None  # a signal that came during shielded cleanup
        self._starting = False
        self._shielded = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        if self.stopping:
            return
        if self._shielded:
            self.deferred, self.stopping = signum, True  # stopping: later signals cannot cut the cleanup short
            return
        if self._starting:
            self.pending = self.pending or signum
            return
        self.stopping = True
        raise Stopped(signum)

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """Run the block whole: a stop signal meanwhile is recorded in ``deferred``, not raised (nor any after it).

        For cleanup that a ``Stopped`` would cut short, leaving processes, shared memory or redirected fds
        behind: the engine's ``close()``, the manifest's last write, the session's exit. The command then
        ends as it would have: a run that had done its work still succeeds.
        """
        outer, self._shielded = self._shielded, True
        try:
            yield
        finally:
            self._shielded = outer

    @contextmanager
    def engine_start(self, *, waiting: Callable[[], None], forced: Callable[[], None]) -> Iterator[None]:
        """Start an engine: its processes never see SIGINT, and a stop waits until it has started.

        Args:
            waiting: Called (from a helper thread) as soon as a first stop signal arrives, to say that
                datagen stops once the engine is up.
            forced: Called (from that thread) on a second one, just before the engine's processes are
                killed and datagen exits.

        Raises:
            Stopped: on leaving the block, for a signal that came meanwhile (close the engine first).
        """
        if not self._previous:  # not the main thread: nothing to guard
            yield
            return
        resource_tracker.ensure_running()  # started later, it would unblock SIGINT again (it ends with SIG_UNBLOCK)
        self._starting = True  # first: from here a signal is recorded, so none can raise before the finally
        watcher: _SignalWatcher | None = None
        previous_mask: set | None = None
        try:
            watcher = _SignalWatcher(waiting, forced)
            previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            yield
        finally:
            if previous_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            if watcher is not None:
                watcher.close()
                self.pending = self.pending or watcher.first
            if self.pending is not None:
                self.stopping = True  # before _starting ends: a handler that runs late for this signal does nothing
            self._starting = False
        if self.pending is not None:
            raise Stopped(self.pending)


class _SignalWatcher:
    """A daemon thread that hears about signals as they arrive (``signal.set_wakeup_fd``), even while the main
    thread sits in C code for the whole engine start and Python's handler cannot run yet.

    It is started before the main thread blocks SIGINT, so it keeps SIGINT unblocked: the kernel can deliver it.
    """

    def __init__(self, waiting: Callable[[], None], forced: Callable[[], None]) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._waiting, self._forced = waiting, forced
        self.first: int | None = None  # the first stop signal heard, read once the thread has ended
        self._thread = threading.Thread(target=self._watch, name="datagen-signals", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        seen = 0
        while data := os.read(self._read, 64):
            for signum in data:
                if signum not in STOP_SIGNALS:
                    continue
                seen += 1
                if seen == 1:
                    self.first = signum
                    self._waiting()
                else:
                    self._forced()
                    children = multiprocessing.active_children()
                    for child in children:
                        child.kill()  # the EngineCore; its workers exit when it does (they watch it)
                    for child in children:
                        child.join(timeout=2)
                    os._exit(128 + signum)

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._write)  # the thread reads end-of-file and ends
        self._thread.join(timeout=5)
        os.close(self._read)


__all__ = ["STOP_SIGNALS", "StopSignals", "Stopped", "exit_code_of"]
