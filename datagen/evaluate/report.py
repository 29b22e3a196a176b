"""Stage: PNG plots of one or more runs (matplotlib, Agg backend, no display needed).

- ``rfd_scatter.png``: RFD_u vs RFD_a, one labelled point per run (the paper's figure).
- ``alignment_uniformity.png``: train/eval alignment and uniformity over steps, per run.
- ``sts_results.png``: a table of each run's STS results (``sts_results.json`` in the run dir), if any.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402

from datagen.errors import InputError  # noqa: E402
from datagen.evaluate.sts import RESULTS_FILE  # noqa: E402
from datagen.evaluate.rfd import RFDResult, find_run_dirs, rfd_table  # noqa: E402
from datagen.evaluate.run_files import EVAL_AU_FILE, TRAIN_AU_FILE, find_log, read_log  # noqa: E402


def plot_rfd_scatter(results: Sequence[RFDResult], out: Path) -> Path:
    """Scatter RFD_u (y) against RFD_a (x), each point labelled with its run and top-5 STS-B dev."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for r in results:
        ax.scatter(r.RFD_a, r.RFD_u, s=40)
        label = r.run if r.stsb_top5 is None else f"{r.run} ({r.stsb_top5:.1f})"
        ax.annotate(label, (r.RFD_a, r.RFD_u), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("RFD_a (train - eval alignment)")
    ax.set_ylabel("RFD_u (train - eval uniformity)")
    ax.set_title("Relative fitting difficulty (label: top-5 STS-B dev)")
    return _save(fig, out / "rfd_scatter.png")


def plot_trajectories(run_dirs: Sequence[Path], out: Path) -> Path:
    """Alignment and uniformity against step, solid = held-out train data, dashed = STS-B dev."""
    fig, (ax_a, ax_u) = plt.subplots(1, 2, figsize=(11, 4.5))
    for run_dir in run_dirs:
        label = f"{run_dir.parent.name}/{run_dir.name}"
        for name, style in ((TRAIN_AU_FILE, "-"), (EVAL_AU_FILE, "--")):
            log = read_log(find_log(run_dir, name), ("alignment", "uniformity"))
            steps = sorted(log)
            kind = "train" if name == TRAIN_AU_FILE else "eval"
            ax_a.plot(steps, [log[s]["alignment"] for s in steps], style, label=f"{label} {kind}")
            ax_u.plot(steps, [log[s]["uniformity"] for s in steps], style, label=f"{label} {kind}")
    for ax, what in ((ax_a, "alignment (lower = closer positives)"), (ax_u, "uniformity (lower = more spread)")):
        ax.set_xlabel("step")
        ax.set_ylabel(what)
    ax_u.legend(fontsize=6, loc="best")
    return _save(fig, out / "alignment_uniformity.png")


def load_sts_results(run_dirs: Sequence[Path]) -> dict[str, dict[str, float]]:
    """``{run label: results}`` for runs that hold ``sts_results.json``."""
    table = {}
    for run_dir in run_dirs:
        path = run_dir / RESULTS_FILE
        if path.is_file():
            table[f"{run_dir.parent.name}/{run_dir.name}"] = json.loads(path.read_text(encoding="utf-8"))
    return table


def plot_sts_table(results: dict[str, dict[str, float]], out: Path) -> Path:
    """Render the STS results of several runs as a table image."""
    columns = list(dict.fromkeys(k for row in results.values() for k in row))
    cells = [[f"{row.get(c, float('nan')):.2f}" for c in columns] for row in results.values()]
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.45 * len(results) + 1))
    ax.axis("off")
    ax.table(cellText=cells, rowLabels=list(results), colLabels=columns, loc="center").auto_set_font_size(True)
    ax.set_title("STS (Spearman x100, SentEval 'all')")
    return _save(fig, out / "sts_results.png")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def make_report(roots: Sequence[str | Path], out: str | Path) -> list[Path]:
    """Write the report PNGs for every run dir under ``roots`` into ``out``.

    Returns:
        The PNG paths written.

    Raises:
        InputError: no run dir found under ``roots``.
    """
    run_dirs = find_run_dirs(roots)
    if not run_dirs:
        raise InputError("no run dirs to report on; pass 'datagen train' outputs or paper log dirs")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [plot_rfd_scatter(rfd_table(run_dirs), out), plot_trajectories(run_dirs, out)]
    sts = load_sts_results(run_dirs)
    if sts:
        written.append(plot_sts_table(sts, out))
    return written
