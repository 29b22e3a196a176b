"""Benchmark: does generated data help a small CSE run, and is datagen's training loop fast?

From the same seed sentences, the same encoder and the same number of steps, compare STS avg and RFD for
  (a) simcse  on plain sentences (two dropout views): the baseline,
  (b) nli     on generated triples (entailment positive, contradiction hard negative),
  (c) sts+HT  on generated tuples (intermediate positive + hierarchical triplet loss),
then time training steps/s against a plain sentence-transformers MNRL fit (same encoder, batch, length).

    .venv/bin/python bench/cse_smallscale.py --nli-data OUT_NLI --sts-data OUT_STS [--steps 60] [--hybrid]

--nli-data/--sts-data are `datagen nli|sts --out` dirs (OUT/data/part-*.parquet); a missing one skips its row.
--hybrid mixes the plain seeds into (b) and (c), as the paper does with its ~20k generated groups.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_SEEDS = REPO.parent / "shared" / "data" / "corpus" / "wiki1m_for_simcse.PREFIX_1280000_bytes.txt"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS, help="plain sentences (one per line)")
    parser.add_argument("--n-seeds", type=int, default=3000, help="plain sentences used")
    parser.add_argument("--nli-data", type=Path, help="datagen nli output dir")
    parser.add_argument("--sts-data", type=Path, help="datagen sts output dir")
    parser.add_argument("--hybrid", action="store_true", help="mix the plain seeds into (b) and (c)")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--pooler", default="avg")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--tasks", default="STS12,STS13,STS14,STS15,STS16,STS-B,SICK-R")
    parser.add_argument("--speed-steps", type=int, default=12, help="steps timed per side; 0 skips the speed test")
    parser.add_argument("--skip-quality", action="store_true", help="only the steps/s comparison")
    parser.add_argument("--only", default="a,b,c", help="variants to run, e.g. 'a' or 'b,c'")
    parser.add_argument("--out", type=Path, default=Path("/tmp/cse_smallscale"))
    return parser.parse_args()


def write_plain_seeds(args: argparse.Namespace) -> Path:
    """The first --n-seeds usable lines of --seeds, as a .txt seed file (the last line of a prefix file may be cut)."""
    lines = [line.strip() for line in args.seeds.read_text(encoding="utf-8").splitlines()[:-1] if line.strip()]
    path = args.out / "plain_seeds.txt"
    path.write_text("\n".join(lines[: args.n_seeds]) + "\n", encoding="utf-8")
    return path


def run_variant(name: str, overrides: dict, args: argparse.Namespace) -> dict:
    from datagen.evaluate.sts import evaluate_path
    from datagen.evaluate.rfd import compute_rfd
    from datagen.train.loop import TrainConfig, train

    run_dir = args.out / name
    config = TrainConfig(encoder=args.encoder, pooler=args.pooler, steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, eval_every=args.eval_every, **overrides)
    result = train(config, run_dir, progress=True)
    scores = evaluate_path(str(run_dir), tasks=tuple(args.tasks.split(",")), save_to=run_dir)
    rfd = compute_rfd(run_dir)
    return {"variant": name, "train_rows": result.train_rows, "best_step": result.best_step,
            "stsb_dev_best": result.best_stsb, "steps_per_s": round(result.steps_per_second, 3),
            **scores, "RFD_a": round(rfd.RFD_a, 4), "RFD_u": round(rfd.RFD_u, 4)}


def time_datagen_steps(plain: Path, args: argparse.Namespace) -> list[float]:
    """Seconds per datagen training step (simcse rows: 2 x batch texts per forward)."""
    import torch

    from datagen.train.losses import NGCSELoss
    from datagen.train.data import iterate_batches, read_plain_rows
    from datagen.train.loop import TrainConfig, build_model, train_step

    config = TrainConfig(objective="simcse", plain=str(plain), encoder=args.encoder, pooler=args.pooler,
                         batch_size=args.batch_size)
    model = build_model(config)
    loss_fn = NGCSELoss(model, model.get_embedding_dimension())
    optimizer = torch.optim.AdamW([p for p in loss_fn.parameters() if p.requires_grad], lr=args.lr)
    batches = iterate_batches(read_plain_rows(plain), args.batch_size, seed=0)
    times = []
    for _ in range(args.speed_steps + 2):
        started = time.perf_counter()
        train_step(model, loss_fn, optimizer, next(batches), config.max_len)
        times.append(time.perf_counter() - started)
    return times[2:]  # first steps warm up allocators and kernels


def time_sentence_transformers_steps(plain: Path, args: argparse.Namespace) -> list[float]:
    """Seconds per step of a plain SentenceTransformerTrainer + MNRL fit on (sentence, sentence) pairs."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    from datagen.encoders import resolve_encoder

    class StepTimer(TrainerCallback):
        """End-to-end intervals between step ends, so batch collation (tokenisation) counts as in ours."""

        def __init__(self):
            self.stamps, self.last = [], None

        def on_step_end(self, *a, **k):
            now = time.perf_counter()
            if self.last is not None:
                self.stamps.append(now - self.last)
            self.last = now

    model = SentenceTransformer(resolve_encoder(args.encoder), device="cpu", local_files_only=True)
    model.max_seq_length = 32
    sentences = plain.read_text(encoding="utf-8").splitlines()[: args.batch_size * (args.speed_steps + 2)]
    timer = StepTimer()
    trainer = SentenceTransformerTrainer(
        model=model, loss=MultipleNegativesRankingLoss(model, scale=20.0),
        train_dataset=Dataset.from_dict({"anchor": sentences, "positive": sentences}),
        args=Args(output_dir=str(args.out / "st_mnrl"), per_device_train_batch_size=args.batch_size,
                  max_steps=args.speed_steps + 2, learning_rate=args.lr, save_strategy="no", report_to="none",
                  logging_strategy="no", use_cpu=True, dataloader_drop_last=True, disable_tqdm=True),
        callbacks=[timer],
    )
    trainer.train()
    return timer.stamps[1:]  # intervals after the first two steps


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plain = write_plain_seeds(args)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": [], "speed": None}
    if not args.skip_quality:
        variants = [("a_simcse", {"objective": "simcse", "plain": str(plain)})]
        extra = {"plain": str(plain)} if args.hybrid else {}
        if args.nli_data:
            variants.append(("b_nli", {"objective": "nli", "data": (str(args.nli_data),), "loss": {"name": "ngcse", "margin2": 1e-1}, **extra}))
        if args.sts_data:
            variants.append(("c_sts_ht", {"objective": "sts", "data": (str(args.sts_data),), **extra}))
        for name, overrides in [v for v in variants if v[0][0] in args.only.split(",")]:
            report["rows"].append(run_variant(name, overrides, args))
            print(json.dumps(report["rows"][-1]), flush=True)
    if args.speed_steps:
        ours, theirs = time_datagen_steps(plain, args), time_sentence_transformers_steps(plain, args)
        report["speed"] = {"datagen_steps_per_s": 1 / statistics.median(ours),
                           "st_mnrl_steps_per_s": 1 / statistics.median(theirs),
                           "ratio": statistics.median(theirs) / statistics.median(ours)}
        print(json.dumps(report["speed"]), flush=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(report)


def print_table(report: dict) -> None:
    columns = ["variant", "train_rows", "STS12", "STS13", "STS14", "STS15", "STS16", "STS-B", "SICK-R", "Avg",
               "RFD_a", "RFD_u", "stsb_dev_best"]
    if report["rows"]:
        print(" | ".join(columns))
        for row in report["rows"]:
            print(" | ".join(str(row.get(c, "-")) for c in columns))
    if report["speed"]:
        s = report["speed"]
        print(f"steps/s: datagen {s['datagen_steps_per_s']:.3f}, sentence-transformers MNRL "
              f"{s['st_mnrl_steps_per_s']:.3f}, ratio {s['ratio']:.2f}x")


if __name__ == "__main__":
    main()
