"""Run the real ``datagen`` CLI and SIGKILL it at an exact file-system step (test helper, not product code).

    python tests/crash_runner.py --kill-at replace:data:2:before -- sts --seeds S --out OUT ...
    python tests/crash_runner.py --count-to calls.json -- sts --seeds S --out OUT ...

``--kill-at OP:TARGET:N:WHEN`` wraps ``os.<OP>`` (``replace`` or ``fsync``) for this process only and
kills the process with SIGKILL (no cleanup, no ``finally``, like an OOM kill or a power cut) at the
N-th call whose file lies under ``OUT/<TARGET>``, ``before`` or ``after`` the real call:

    TARGET  data | rejects | manifest | any
    replace:data:1:before     tmp shard fsynced, not yet renamed
    replace:data:1:after      shard renamed, manifest not yet updated
    replace:manifest:2:before manifest.json.tmp written, old manifest still in place
    fsync:any:3:before        a tmp file written but not fsynced

``--count-to FILE`` instead counts those calls per target and writes them as JSON when the CLI exits,
so a test can choose kill points within a run's real number of steps. The product code has no hook for
any of this: the wrapping happens here, before ``datagen.cli`` is imported.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

# Run as a script, this file would import datagen from wherever it is installed (an editable install may point at
# another checkout); the suite must test the checkout it belongs to, like the ``python -m datagen.cli`` runs beside it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

TARGETS = ("data", "rejects", "manifest", "any")


def target_of(path: str, out: Path) -> str | None:
    """Which part of OUT a path belongs to: data, rejects, manifest; None when outside OUT."""
    try:
        relative = Path(os.path.abspath(path)).relative_to(out)
    except ValueError:
        return None
    if relative.parts and relative.parts[0] in ("data", "rejects"):
        return relative.parts[0]
    if relative.name.startswith("manifest.json"):
        return "manifest"
    return None


def call_path(op: str, args: tuple) -> str:
    """The file an os.replace (destination) or os.fsync (open descriptor) call touches."""
    if op == "replace":
        return os.fspath(args[1])
    fd = args[0] if isinstance(args[0], int) else args[0].fileno()
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def instrument(op: str, out: Path, on_call) -> None:
    """Replace ``os.<op>`` by a wrapper that calls ``on_call(target, phase)`` around each call under OUT."""
    real = getattr(os, op)

    def wrapper(*args, **kwargs):
        target = target_of(call_path(op, args), out)
        if target:
            on_call(target, "before")
        result = real(*args, **kwargs)
        if target:
            on_call(target, "after")
        return result

    setattr(os, op, wrapper)


def arm_kill(spec: str, out: Path) -> None:
    op, target, nth, when = spec.split(":")
    if op not in ("replace", "fsync") or target not in TARGETS or when not in ("before", "after"):
        raise SystemExit(f"bad --kill-at {spec!r}; use replace|fsync:{'|'.join(TARGETS)}:N:before|after")
    seen = Counter()

    def on_call(call_target: str, phase: str) -> None:
        if target not in ("any", call_target):
            return
        if phase == "before":
            seen[op] += 1
        if seen[op] == int(nth) and phase == when:
            os.kill(os.getpid(), signal.SIGKILL)

    instrument(op, out, on_call)


def arm_count(path: Path, out: Path) -> None:
    counts: Counter[str] = Counter()

    def counter(op: str):
        def on_call(call_target: str, phase: str) -> None:
            if phase == "before":
                counts[f"{op}:{call_target}"] += 1
                counts[f"{op}:any"] += 1

        return on_call

    for op in ("replace", "fsync"):
        instrument(op, out, counter(op))
    atexit.register(lambda: path.write_text(json.dumps(counts)))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at")
    parser.add_argument("--count-to", type=Path)
    parser.add_argument("cli", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cli = args.cli[1:] if args.cli[:1] == ["--"] else args.cli
    out = Path(os.path.abspath(cli[cli.index("--out") + 1]))
    if args.kill_at:
        arm_kill(args.kill_at, out)
    if args.count_to:
        arm_count(args.count_to, out)
    from datagen.cli import app

    app(args=cli, prog_name="datagen")


if __name__ == "__main__":
    main(sys.argv[1:])
