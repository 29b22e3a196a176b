"""Stage: PNG plots of a scored dataset (``datagen score OUT --report DIR``; matplotlib, Agg backend).

- ``score_margins.png``: histogram of each tier margin (``margin_pos_int``, ``margin_int_neg`` or
  ``margin_ent_con``) with the zero line: mass left of zero is rows whose tier order fails;
- ``score_cosines.png``: the anchor's cosine with each tier, overlaid;
- ``score_reject_reasons.png``: reject counts by reason (generation rejects and ``filtered_*``);
- ``score_overlap.png``: token edit ratio of (anchor, output) per tier: a spike near 1 is trivial edits.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402

from datagen.quality.score import margin_names, open_scorable, read_scores  # noqa: E402
from datagen.tasks import get_task  # noqa: E402


def plot_scores(out: str | Path, report_dir: str | Path) -> list[Path]:
    """Draw the four PNGs of a scored dataset into ``report_dir``.

    Raises:
        InputError: ``out`` is not a datagen output or has not been scored.
    """
    out, report_dir = Path(out), Path(report_dir)
    manifest = open_scorable(out)
    scores = read_scores(out).to_pydict()
    spec = get_task(manifest.task)
    report_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    if margin_names(spec.name):  # a task with one output has no tiers to compare
        plots.append(_histograms({n: scores[n] for n in margin_names(spec.name)}, "anchor-cosine margin between tiers",
                                 report_dir / "score_margins.png", zero_line=True))
    return plots + [
        _histograms({f: scores[f"cos_{spec.short(f)}"] for f in spec.fields}, "cosine(anchor, output)",
                    report_dir / "score_cosines.png"),
        _reasons(manifest.counts.reject_reasons, report_dir / "score_reject_reasons.png"),
        _histograms({f: scores[f"edit_{spec.short(f)}"] for f in spec.fields}, "token edit ratio (anchor, output)",
                    report_dir / "score_overlap.png", value_range=(0.0, 1.0)),
    ]


def _histograms(series: dict[str, list[float]], xlabel: str, path: Path, *, zero_line: bool = False,
                value_range: tuple[float, float] | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in series.items():
        ax.hist(values, bins=30, range=value_range, alpha=0.5, label=f"{name} (n={len(values)})")
    if zero_line:
        ax.axvline(0, color="black", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _reasons(reasons: dict[str, int], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.4 * len(reasons) + 1)))
    names = list(reasons) or ["(no rejects)"]
    ax.barh(names, [reasons.get(n, 0) for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("rejected rows")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
