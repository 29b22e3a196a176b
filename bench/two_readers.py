"""Benchmark: the audited precision of kept rows that two readers labelled, pooled over runs, as the bench/README
tables report it.

A row counts as right when both readers call every relation right and as wrong when both call some relation
wrong; rows they disagree on, and rows both left unsure, are counted but left out ("both readers agree"). The
strict figure calls a row right only when both do, over the rows neither left unsure. A relation is scored the same
way on its own. With ``--sentence-seeds`` the rows whose anchor ``validation.sentence_seeds`` would have refused
are left out, which is what a run with that check on keeps: the check only removes seeds, never changes another
seed's rows.

    .venv/bin/python bench/two_readers.py outputs/nli_heldout10/kept outputs/nli_heldout10b/kept [--sentence-seeds]
        [--seeds N] [--seconds S]

``--seeds`` (all seeds of the runs) gives the yield, ``--seconds`` (their wall time) the correct rows per second.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datagen.dataset.manifest import read_manifest  # noqa: E402
from datagen.dataset.sentence_shape import seed_shape_problem  # noqa: E402
from datagen.dataset.shards import read_rows  # noqa: E402
from datagen.quality.audit import read_labels, row_verdict, wilson_interval  # noqa: E402
from datagen.tasks import get_task  # noqa: E402


def both_readers(outs: list[Path], *, sentence_seeds: bool) -> dict:
    relations: tuple[str, ...] = ()
    rows_outcome: Counter[str] = Counter()
    strict: Counter[str] = Counter()
    by_relation: dict[str, Counter[str]] = {}
    kept = 0
    for out in outs:
        relations = get_task(read_manifest(out).task).fields
        anchors = dict(zip(*(read_rows(out, columns=["id", "anchor"]).column(c).to_pylist() for c in ("id", "anchor"))))
        latest: dict[str, dict[str, dict]] = {}
        for record in read_labels(out / "audit" / "labels.jsonl"):
            latest.setdefault(record.id, {})[record.annotator] = record.labels
        for row_id, anchor in anchors.items():
            if sentence_seeds and seed_shape_problem(anchor):
                continue
            kept += 1
            readers = list(latest.get(row_id, {}).values())[-2:]
            if len(readers) < 2:
                rows_outcome["unread"] += 1
                continue
            for name in relations:
                verdicts = {labels[name] for labels in readers}
                by_relation.setdefault(name, Counter())[verdicts.pop() if len(verdicts) == 1 else "disagree"] += 1
            verdicts = [row_verdict(labels) for labels in readers]
            rows_outcome[verdicts[0] if len(set(verdicts)) == 1 else "disagree"] += 1
            if "unsure" not in verdicts:
                strict["right" if set(verdicts) == {"right"} else "wrong"] += 1
    return {"relations": relations, "kept": kept, "rows": rows_outcome, "strict": strict, "by_relation": by_relation}


def share(right: int, wrong: int) -> str:
    judged = right + wrong
    if not judged:
        return "—"
    low, high = wilson_interval(right, judged)
    return f"{100 * right / judged:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({right}/{judged})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outs", nargs="+", type=Path, help="kept-row output directories with audit/labels.jsonl")
    parser.add_argument("--sentence-seeds", action="store_true", help="leave out anchors the seed-shape check refuses")
    parser.add_argument("--seeds", type=int, help="seeds of all the runs, for the yield")
    parser.add_argument("--seconds", type=float, help="wall time of all the runs, for correct rows/s")
    args = parser.parse_args()
    result = both_readers(args.outs, sentence_seeds=args.sentence_seeds)
    rows, strict = result["rows"], result["strict"]
    print(f"kept rows: {result['kept']}" + (" (sentence_seeds applied)" if args.sentence_seeds else ""))
    print(f"rows right, both readers agree: {share(rows['right'], rows['wrong'])}; "
          f"disagree {rows['disagree']}, both unsure {rows['unsure']}, unread {rows['unread']}")
    print(f"rows right, strict: {share(strict['right'], strict['wrong'])}")
    for name in result["relations"]:
        counts = result["by_relation"].get(name, Counter())
        print(f"  {name:<14} {share(counts['right'], counts['wrong'])}")
    if args.seeds:
        print(f"yield: {100 * result['kept'] / args.seeds:.1f}% ({result['kept']} of {args.seeds} seeds)")
    if args.seconds and rows["right"] + rows["wrong"]:
        correct = result["kept"] * rows["right"] / (rows["right"] + rows["wrong"])
        print(f"correct rows/s: {correct / args.seconds:.3f} ({result['kept']} kept in {args.seconds:.0f} s)")


if __name__ == "__main__":
    main()
