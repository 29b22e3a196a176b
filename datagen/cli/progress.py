"""What the terminal shows while a command loads a model and works: one loading line, then one progress display.

On a terminal both redraw in place (rich): a spinner with the elapsed time while the model loads, then a bar
with the counts, rates and ETA. Elsewhere (CI, ``2>&1 | tee``) and with ``--verbose`` (where the engine's own
lines interleave) they are plain lines: the loading line, a ready line, then a progress line after the
first unit of work and at most every ``plain_every`` seconds after that.

Rates count from when the work began (the engine was ready), never from start-up, so a 50 s engine start
does not drag tokens/s down; units kept from an earlier run do not count either.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from datagen.cli.console import say
from datagen.generation.status import RunStatus

PLAIN_EVERY_S = 10.0  # a CI log gets a line per 10 s at most: enough to see it move, few enough to read


class ProgressDisplay:
    """The loading line and the progress display of one command.

    Args:
        console: Where to draw (datagen's console, on the terminal even while engine output is captured).
        live: Redraw in place (a terminal without ``--verbose``); else print plain lines.
        plain_every: Seconds between plain progress lines.
        clock: Seconds, monotonic (tests pass a fake).
    """

    def __init__(self, console: Console, *, live: bool, plain_every: float = PLAIN_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.live = live
        self.plain_every = plain_every
        self.clock = clock
        self.started: float | None = None  # when the work began: the model was ready, or the first update
        self.baseline: int | None = None  # units done when it began (kept from an earlier run)
        self._bar: Progress | None = None
        self._spinner: Progress | None = None
        self._task = None
        self._last_plain: float | None = None

    @contextmanager
    def loading(self, doing: str, *, ready: str | None = None, note: str = "") -> Iterator[None]:
        """One line while the block runs (``doing``), then ``"<ready> in 41.8 s <note>"`` if ``ready`` is given.

        The work's clock starts when the block ends.
        """
        began = self.clock()
        if self.live:
            spinner = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                               console=self.console, transient=True, redirect_stdout=False, redirect_stderr=False)
            self._spinner = spinner
            with spinner:
                spinner.add_task(doing, total=None)
                yield
            self._spinner = None
        else:
            self._print(doing)
            yield
        self.started = self.clock()
        if ready:
            self._print(f"{ready} in {self.started - began:.1f} s{note and ' ' + note}")

    def update(self, done: int, total: int, *, title: str, unit: str,
               details: Callable[[float, int], str] = lambda seconds, baseline: "") -> None:
        """Show ``done`` of ``total`` ``unit``; ``details(seconds since the work began, units done then)``
        adds the command's own counts and rates."""
        now = self.clock()
        if self.started is None:  # no loading step (a server engine), or the plan before the model loads
            self.baseline = done
            return
        if self.baseline is None:  # no update came before the work began: units arrive one at a time
            self.baseline = max(done - 1, 0)
        seconds = max(now - self.started, 1e-9)
        text = _join(details(seconds, self.baseline), eta(done - self.baseline, total - done, seconds))
        if self.live:
            self._draw(done, total, title=title, unit=unit, text=text)
        elif self._last_plain is None or now - self._last_plain >= self.plain_every or done >= total:
            self._last_plain = now
            self._print(f"{title}: {done}/{total} {unit} · {text}")

    def start_clock(self) -> None:
        """Begin the work's clock now (a command with no loading step)."""
        self.started = self.clock()

    def close(self) -> None:
        """Stop redrawing and show the cursor again; the last state of the bar stays on the terminal.

        Safe from another thread (the forced stop calls it just before ``os._exit``, which runs no cleanup).
        """
        for live in (self._spinner, self._bar):
            if live is not None:
                live.stop()
        self._spinner = self._bar = None
        if self.live:
            self.console.show_cursor(True)

    def _draw(self, done: int, total: int, *, title: str, unit: str, text: str) -> None:
        if self._bar is None:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
                TextColumn("{task.completed}/{task.total} {task.fields[unit]}"), TextColumn("{task.fields[text]}"),
                console=self.console, redirect_stdout=False, redirect_stderr=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(title, total=total, unit=unit, text="")
        self._bar.update(self._task, completed=done, total=total, text=f"· {text}" if text else "")

    def _print(self, line: str) -> None:
        say(line, to=self.console)


def generation_details(status: RunStatus) -> Callable[[float, int], str]:
    """Rows kept, reject rate, seeds/s and tokens/s of a generation run, for ``ProgressDisplay.update``."""

    def details(seconds: float, baseline: int) -> str:
        rejected = "" if status.reject_rate is None else f"{status.reject_rate:.0%} rejected"
        seeds = status.seeds_done - baseline
        rates = (f"{seeds / seconds:.2f} seeds/s · {status.completion_tokens / seconds:.0f} tok/s"
                 if seeds > 0 else "")
        return _join(f"{status.rows} rows kept", rejected, rates)

    return details


def eta(units_done: int, units_left: int, seconds: float) -> str:
    """``ETA 46 s`` from the rate so far; empty before the first unit of this run, or when nothing is left."""
    if units_left <= 0 or units_done <= 0:
        return ""
    return f"ETA {duration(units_left * seconds / units_done)}"


def duration(seconds: float) -> str:
    """``46 s``, ``12 min 5 s``, ``2 h 3 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _join(*parts: str) -> str:
    return " · ".join(part for part in parts if part)


def interrupted_line(status: RunStatus | None) -> str:
    """What a generation run says when Ctrl-C or SIGTERM stopped it."""
    if status is None:
        return "interrupted before generation started; run the same command to resume"
    return (f"interrupted: {status.shards_done} of {status.shards_total} shards kept; "
            "run the same command to resume")


def judge_interrupted_line(done: tuple[int, int] | None) -> str:
    """What ``datagen judge`` says when Ctrl-C or SIGTERM stopped it, ``done``: (shards judged, shards)."""
    if done is None:
        return "interrupted before any shard was judged; run the same command to resume"
    return f"interrupted: {done[0]} of {done[1]} shards judged; run the same command to resume"


__all__ = ["PLAIN_EVERY_S", "ProgressDisplay", "duration", "eta", "generation_details", "interrupted_line",
           "judge_interrupted_line"]
