"""Benchmark: pick judge bars on an audit dev split, by the precision and yield they would give.

Label every validated row of a *generated* dataset (not only the kept ones: ``datagen audit GENERATED --sheet S
--sample <all rows>``, two annotators imported with ``--import``), judge it (``datagen judge GENERATED``), then

    .venv/bin/python bench/judge_bars.py outputs/dev7/sts_default_qwen2.5-1.5b_n4 \
        [--checks positive=positive_entailed,positive_entails_anchor] [--save bench/results/judge_bars_dev7.json] \
        [--bars-for-check intermediate_not_entails_anchor=0,0.2,0.3]

For every combination of per-relation bars it applies the filter's own rule (``filter_reason``) and its
best-sample-per-seed choice (``best_sample_key``), and prints the kept rows, the yield per seed and the precision of
the kept rows with a Wilson 95% interval. A relation counts as right only when every annotator who labelled it said
so (strict), so the figures are a lower estimate. It also prints each judge check's AUC for its relation, so a
question can be tried on the dev split (``--checks`` picks which checks make a relation's probability, as a
``judge.jinja`` would) before it ships.

``--save`` writes the row ids, labels and judge probabilities (no text: the anchors are wiki1m seeds) so that the
bars can be revisited without the output directory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def load_dev_rows(out: Path) -> tuple[list[dict], int]:
    """Rows of ``out`` with their judge probabilities and per-annotator labels; and the number of seeds."""
    import pyarrow.parquet as pq

    from datagen.dataset.manifest import read_manifest
    from datagen.quality.audit import open_audit
    from datagen.quality.judge import read_judge_part

    manifest = read_manifest(out)
    audit = open_audit(out, draw=False)
    labels: dict[str, dict[str, dict[str, str]]] = {}
    for record in audit.history:  # file order: a later label of the same annotator replaces an earlier one
        labels.setdefault(record.id, {})[record.annotator] = dict(record.labels)
    rows = []
    for shard in manifest.shards:
        data = pq.read_table(out / shard.data.path, columns=["id", "seed_index"]).to_pylist()
        judged = {entry["id"]: entry for entry in read_judge_part(out, shard)}
        for row in data:
            rows.append({"id": row["id"], "seed_index": row["seed_index"],
                         "judge": {k: v for k, v in judged.get(row["id"], {}).items() if k != "id"},
                         "labels": labels.get(row["id"], {})})
    return rows, manifest.seeds_done()


def strict_label(row: dict, relation: str) -> str | None:
    """right only if every annotator said right; wrong if any said wrong; None if unlabelled or only unsure."""
    values = [labels.get(relation) for labels in row["labels"].values() if relation in labels]
    if not values:
        return None
    if "wrong" in values:
        return "wrong"
    return "right" if all(v == "right" for v in values) else None


def relation_probability(row: dict, checks: list[str]) -> float:
    values = [row["judge"].get(f"p_{name}") for name in checks]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return math.nan
    return min(values)


def bar_lists(items: list[str]) -> dict[str, list[float]]:
    """``["negative=0.1,0.2", ...]`` (``--bars-for``, ``--bars-for-check``) as ``{"negative": [0.1, 0.2]}``."""
    lists = {}
    for item in items:
        name, _, values = item.partition("=")
        lists[name] = [float(x) for x in values.split(",")]
    return lists


def sweep(rows: list[dict], seeds: int, relations: dict[str, list[str]], grid: dict[str, list[float]],
          check_grid: dict[str, list[float]] | None = None) -> list[dict]:
    """Every combination of relation bars (``grid``) and per-check bars (``check_grid``, the filter's
    ``--min-check``), applied as ``datagen filter --best-per-seed`` would."""
    from datagen.quality.audit import precision, row_verdict
    from datagen.quality.filter import FilterSpec, best_sample_key, filter_reason

    check_grid = check_grid or {}
    results = []
    for bars in itertools.product(*(grid[r] for r in relations), *check_grid.values()):
        by_relation = dict(zip(relations, bars))
        by_check = dict(zip(check_grid, bars[len(relations):]))
        spec = FilterSpec(min_judge_by_relation=by_relation, min_judge_by_check=by_check, best_per_seed=True)
        best: dict[int, tuple[tuple, dict]] = {}
        for row in rows:
            judged = {f"judge_{r}": relation_probability(row, checks) for r, checks in relations.items()}
            judged["judge_min"] = min(judged.values())
            judged.update({f"p_{c}": relation_probability(row, [c]) for c in by_check})
            if filter_reason({}, spec, judged) is not None:
                continue
            key = best_sample_key({}, judged)
            if row["seed_index"] not in best or key > best[row["seed_index"]][0]:
                best[row["seed_index"]] = (key, row)
        kept = [row for _, row in best.values()]
        verdicts = [row_verdict({r: strict_label(row, r) or "unsure" for r in relations}) for row in kept]
        results.append({"bars": by_relation, "check_bars": by_check, "kept": len(kept), "yield": round(len(kept) / seeds, 4),
                        "rows": precision(verdicts),
                        "relations": {r: precision(strict_label(row, r) or "unsure" for row in kept) for r in relations}})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a generated, judged and audited output directory")
    parser.add_argument("--checks", action="append", default=[], metavar="RELATION=CHECK,CHECK",
                        help="the judge checks whose smallest makes a relation's probability; default: all of the relation's")
    parser.add_argument("--bars", default="0.5,0.8,0.9,0.95,0.97,0.99", help="bars tried for every relation")
    parser.add_argument("--bars-for", action="append", default=[], metavar="RELATION=P,P", help="other bars for one relation")
    parser.add_argument("--bars-for-check", action="append", default=[], metavar="CHECK=P,P",
                        help="bars tried for one judge check on its own (datagen filter --min-check)")
    parser.add_argument("--top", type=int, default=15, help="settings printed, best lower Wilson bound first")
    parser.add_argument("--save", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np

    from datagen.dataset.manifest import read_manifest
    from datagen.tasks import get_task
    from judge_accuracy import auc  # same Mann-Whitney AUC as the judge's calibration

    spec = get_task(read_manifest(args.out).task)
    rows, seeds = load_dev_rows(args.out)
    columns = sorted({k[2:] for row in rows for k in row["judge"] if k.startswith("p_")})
    relations = {r: [c for c in columns if c.startswith(f"{r}_")] for r in spec.fields}
    for item in args.checks:
        relation, _, names = item.partition("=")
        relations[relation] = names.split(",")
    grid = {r: [float(x) for x in args.bars.split(",")] for r in relations} | bar_lists(args.bars_for)
    check_grid = bar_lists(args.bars_for_check)

    labelled = [row for row in rows if row["labels"]]
    print(f"{len(rows)} rows of {seeds} seeds, {len(labelled)} labelled; relations from checks: {relations}")
    for column in columns:
        relation = next((r for r in spec.fields if column.startswith(f"{r}_")), None)
        pairs = [(row["judge"].get(f"p_{column}"), strict_label(row, relation)) for row in labelled]
        pairs = [(p, label == "right") for p, label in pairs if p is not None and not math.isnan(p) and label]
        area = auc(np.array([p for p, _ in pairs]), np.array([ok for _, ok in pairs], dtype=bool))
        rights = sum(ok for _, ok in pairs)
        print(f"  AUC {column:34s} {area:.3f}  ({rights} right of {len(pairs)}; nan: one class only)")

    results = sweep(labelled, seeds, relations, grid, check_grid)
    results.sort(key=lambda r: (r["rows"]["ci95"] or [0])[0], reverse=True)
    print(f"\n{'bars':48s} {'kept':>5s} {'yield':>6s} {'precision':>10s}  wilson 95%   " + "  ".join(relations))
    for result in results[:args.top]:
        bars = ", ".join(f"{r}>={p}" for r, p in {**result["bars"], **result["check_bars"]}.items())
        rows_p = result["rows"]
        per = "  ".join(f"{(v['precision'] or 0):.2f}" for v in result["relations"].values())
        print(f"{bars:48s} {result['kept']:5d} {result['yield']:6.1%} {(rows_p['precision'] or 0):10.1%}  "
              f"{rows_p['ci95']}  {per}")
    if args.save:
        args.save.write_text(json.dumps({"out": str(args.out), "seeds": seeds, "relations": relations,
                                         "rows": rows, "sweep": results}, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.save}")


if __name__ == "__main__":
    main()
