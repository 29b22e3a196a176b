"""Stage: RFD (Relative Fitting Difficulty) from a run's logs.

RFD_a = mean over checkpoints t > 0 of [alignment(train, t) - alignment(eval, t)];
RFD_u likewise with uniformity (method.md §4). Reads both our run dirs and the
paper's log dirs (same file names and columns). Also reports the mean of the
top-5 STS-B dev Spearman (x100), the accuracy the paper plots against RFD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from datagen.errors import InputError
from datagen.evaluate.run_files import EVAL_AU_FILE, METRICS_FILE, TRAIN_AU_FILE, find_log, read_log

TOP_K = 5


@dataclass(frozen=True)
class RFDResult:
    run: str
    RFD_a: float
    RFD_u: float
    stsb_top5: float | None  # mean of the top-5 STS-B dev Spearman x100; None without a metrics file
    checkpoints: int

    def as_dict(self) -> dict[str, float | None]:
        return {"RFD_a": self.RFD_a, "RFD_u": self.RFD_u, "stsb_top5": self.stsb_top5}


def fitting_differences(train: dict[int, dict[str, float]], evaluation: dict[int, dict[str, float]]) -> tuple[float, float, int]:
    """Mean train-minus-eval alignment and uniformity over the shared checkpoints after step 0."""
    steps = sorted(s for s in train.keys() & evaluation.keys() if s > 0)
    if not steps:
        raise InputError("no checkpoint after step 0 appears in both train and eval logs; train for longer")
    rfd_a = sum(train[s]["alignment"] - evaluation[s]["alignment"] for s in steps) / len(steps)
    rfd_u = sum(train[s]["uniformity"] - evaluation[s]["uniformity"] for s in steps) / len(steps)
    return rfd_a, rfd_u, len(steps)


def top_k_mean(values: Sequence[float], k: int = TOP_K) -> float:
    """Mean of the ``k`` largest values (all of them when fewer)."""
    if not values:
        raise InputError("no STS-B dev values to average")
    best = sorted(values, reverse=True)[:k]
    return sum(best) / len(best)


def compute_rfd(run_dir: str | Path) -> RFDResult:
    """RFD_a, RFD_u and the top-5 STS-B dev mean of one run dir (ours or the paper's layout).

    Raises:
        InputError: the folder lacks the alignment/uniformity logs.
    """
    run_dir = Path(run_dir)
    train_path, eval_path = find_log(run_dir, TRAIN_AU_FILE), find_log(run_dir, EVAL_AU_FILE)
    if train_path is None or eval_path is None:
        raise InputError(
            f"{run_dir} has no {TRAIN_AU_FILE} / {EVAL_AU_FILE}; pass a 'datagen train' run dir "
            "or a paper log dir such as ../shared/data/ngcse-logs/wiki/sts_ht"
        )
    columns = ("alignment", "uniformity")
    rfd_a, rfd_u, checkpoints = fitting_differences(read_log(train_path, columns), read_log(eval_path, columns))
    metrics_path = find_log(run_dir, METRICS_FILE)
    stsb_top5 = None
    if metrics_path is not None:
        stsb = [row["stsb"] for row in read_log(metrics_path, ("stsb",)).values()]
        stsb_top5 = 100 * top_k_mean(stsb)
    return RFDResult(run_label(run_dir), rfd_a, rfd_u, stsb_top5, checkpoints)


def run_label(run_dir: Path) -> str:
    """``parent/name`` (e.g. ``wiki/sts_ht``), which tells the paper's settings apart."""
    resolved = run_dir.resolve()
    return f"{resolved.parent.name}/{resolved.name}"


def find_run_dirs(roots: Sequence[str | Path]) -> list[Path]:
    """Expand each root: a run dir itself, or every run dir below it (e.g. ``ngcse-logs/`` gives 13).

    Raises:
        InputError: a root with no run dir inside.
    """
    found: list[Path] = []
    for root in map(Path, roots):
        if find_log(root, TRAIN_AU_FILE):
            found.append(root)
            continue
        below = sorted({p.parent for p in root.rglob(f"{TRAIN_AU_FILE}*") if p.is_file()})
        if not below:
            raise InputError(f"{root} holds no {TRAIN_AU_FILE} log; pass a run dir or a folder of run dirs")
        found += below
    return found


def rfd_table(roots: Sequence[str | Path]) -> list[RFDResult]:
    """RFD for every run dir under ``roots``, in path order."""
    return [compute_rfd(path) for path in find_run_dirs(roots)]


def format_rfd_table(results: Sequence[RFDResult]) -> str:
    """Plain-text table: run, RFD_a, RFD_u, stsb_top5."""
    width = max([len(r.run) for r in results] + [3])
    lines = [f"{'run'.ljust(width)}  {'RFD_a':>8}  {'RFD_u':>8}  {'stsb_top5':>9}"]
    for r in results:
        top5 = f"{r.stsb_top5:.2f}" if r.stsb_top5 is not None else "-"
        lines.append(f"{r.run.ljust(width)}  {r.RFD_a:8.4f}  {r.RFD_u:8.4f}  {top5:>9}")
    return "\n".join(lines)


def results_as_records(results: Sequence[RFDResult]) -> list[dict]:
    """JSON-ready records (one per run)."""
    return [asdict(r) for r in results]
