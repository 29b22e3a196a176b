"""Stage: train a sentence encoder on generated shards (and/or plain sentences).

A lean torch loop around a sentence-transformers model: one forward pass per
step over every text of the batch, the loss the config's ``loss:`` section
picks (default: the paper's, on a training-only projection), frozen word
embeddings, linear LR decay. Every ``eval_every`` steps
it logs STS-B dev Spearman and alignment / uniformity in the paper's CSV layout
and saves the best checkpoint (by STS-B dev) into the run dir, which
``SentenceTransformer(run_dir)`` loads.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from pydantic import Field, field_validator, model_validator

from datagen.config import Frozen, load_section
from datagen.encoders import DEFAULT_ENCODER, is_local, resolve_encoder
from datagen.errors import ConfigError, InputError
from datagen.tasks import get_task
from datagen.train.losses import AnyLossConfig, GroupLoss, NGCSEConfig, build_loss
from datagen.train.losses.registry import with_default_name
from datagen.evaluate.measures import alignment, cosine_spearman, uniformity
from datagen.train.poolers import PoolerName, PromptTransformer, build_modules
from datagen.evaluate.run_files import EVAL_AU_FILE, METRICS_FILE, TRAIN_AU_FILE, RunLog
from datagen.evaluate.sts_data import STSPairs, default_data_dir, load_sickr, load_stsb
from datagen.train.data import (
    SIMCSE,
    CollatedBatch,
    Objective,
    TrainRow,
    collate,
    iterate_batches,
    read_plain_rows,
    read_shard_rows,
    shard_files,
    split_heldout,
)

# Bump when the run-dir layout (CSV names/columns, train_config.json) changes.
# 2: the loss settings moved from the top level of train_config.json into its "loss" section.
RUN_FORMAT_VERSION = 2
CONFIG_FILE = "train_config.json"
SUMMARY_FILE = "train_summary.json"

# Flat keys the CLI passes (--temp, --margins, --beta) and the ``loss:`` settings they stand for.
LOSS_FLAG_SHORTHANDS = {"temperature": "loss.temperature", "margin1": "loss.margin1", "margin2": "loss.margin2",
                        "beta": "loss.beta"}


class TrainConfig(Frozen):
    """Everything that decides a training run. Defaults are the paper's recipe scaled to a CPU."""

    data: tuple[str, ...] = ()  # generation output dirs (OUT/data/part-*.parquet)
    plain: str | None = None  # seed file of plain sentences: simcse data, or mixed in ("hybrid")
    plain_limit: int | None = Field(None, ge=1)
    # "simcse" (plain sentences, two dropout views) or a registered task (datagen/tasks/), whose spec says
    # which columns are the InfoNCE positive, hard negative and HT hierarchy.
    objective: Objective = "sts"
    encoder: str = DEFAULT_ENCODER
    # avg: all-MiniLM-L6-v2 was trained with mean pooling; the paper's BERT runs use cls (Wiki) or mask.
    pooler: PoolerName = "avg"
    # The paper: batch 256. 64 fits a 2-core CPU at ~1 s/step with MiniLM.
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-5, gt=0)  # the paper's final recipe
    max_len: int = Field(32, ge=8)  # the paper: 32 tokens; STS sentences are short
    epochs: float = Field(1.0, gt=0)
    steps: int | None = Field(None, ge=1)  # overrides epochs when set
    eval_every: int = Field(125, ge=1)  # the paper evaluates every 125 steps
    # The loss and its settings, by name (datagen/train/losses/registry.py); the paper's by default.
    # A ``loss:`` section without ``name`` is ngcse's settings.
    loss: AnyLossConfig = NGCSEConfig()
    seed: int = 42
    heldout_fraction: float = Field(0.1, gt=0, lt=1)  # method.md §4: 10% held out for "train" alignment
    heldout_anchors: int = Field(1000, ge=2)
    uniformity_sentences: int = Field(1000, ge=2)
    # Cap on STS-B dev / SICK trial pairs per evaluation: None = all (the protocol); small values for smoke tests.
    dev_limit: int | None = Field(None, ge=10)
    eval_batch_size: int = Field(128, ge=1)
    data_dir: str | None = None  # SentEval folder; None: $DATAGEN_DATA or ../shared/data/senteval_processed
    threads: int | None = Field(None, ge=1)  # torch threads; None = torch's default

    @model_validator(mode="before")
    @classmethod
    def _loss_settings_live_in_loss(cls, data: Any) -> Any:
        flat = [key for key in LOSS_FLAG_SHORTHANDS if isinstance(data, dict) and key in data]
        if flat:
            raise ValueError(
                f"{', '.join(flat)} moved into the loss section: write 'loss: {{name: ngcse, {flat[0]}: ...}}'"
            )
        return data

    @field_validator("loss", mode="before")
    @classmethod
    def _default_loss_name(cls, value: Any) -> Any:
        return with_default_name(value)

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, value: str) -> str:
        if value != SIMCSE:
            get_task(value)  # raises ConfigError naming the registered tasks
        return value

    @model_validator(mode="after")
    def _check_sources(self) -> TrainConfig:
        if self.objective != SIMCSE and not self.data:
            raise ValueError(f"objective '{self.objective}' needs --data DIR (generated shards)")
        if self.objective == SIMCSE and not (self.plain or self.data):
            raise ValueError(f"objective '{SIMCSE}' needs --plain SEEDS (or --data whose anchors are used)")
        return self


def load_train_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Build a ``TrainConfig`` from an optional YAML file (``train:`` section or top level) plus overrides.

    Args:
        path: YAML file, or None for the defaults.
        overrides: Flag values by key (dotted for nested: ``"loss.scale"``); None means "not given". The flat keys
            ``temperature``, ``margin1``, ``margin2``, ``beta`` are shorthands for ``loss.<key>``, so they apply
            to whichever loss the YAML picks (a loss without that setting is a ConfigError).

    Raises:
        ConfigError: unreadable YAML or invalid values (an unknown objective or loss among them).
    """
    mapped = {LOSS_FLAG_SHORTHANDS.get(key, key): value for key, value in overrides.items()}
    return load_section(TrainConfig, path, "train", mapped)


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    best_step: int | None
    best_stsb: float | None  # STS-B dev Spearman x100
    steps_per_second: float  # optimisation steps only (evaluation time excluded)
    train_rows: int
    heldout_rows: int


# ---------------------------------------------------------------- data


def read_shard_anchors(data_dir: Path) -> list[TrainRow]:
    """Plain (SimCSE) rows from the anchors of generated shards, whichever task wrote them.

    Only the ``anchor`` column is read; empty anchors are skipped.

    Raises:
        InputError: no shards, or a shard without an ``anchor`` column.
    """
    rows: list[TrainRow] = []
    for path in shard_files(Path(data_dir)):
        if "anchor" not in pq.read_schema(path).names:
            raise InputError(f"{path} has no 'anchor' column; pass a generation output dir to --data")
        for anchor in pq.read_table(path, columns=["anchor"]).column("anchor").to_pylist():
            if isinstance(anchor, str) and anchor.strip():
                rows.append(TrainRow(anchor, anchor, plain=True))
    return rows


def load_rows(config: TrainConfig) -> list[TrainRow]:
    """All training rows for the config's objective: generated rows plus plain sentences (hybrid)."""
    rows: list[TrainRow] = []
    for data_dir in config.data:
        if config.objective == SIMCSE:
            rows += read_shard_anchors(Path(data_dir))
        else:
            rows += read_shard_rows(Path(data_dir), config.objective)
    if config.plain:
        rows += read_plain_rows(Path(config.plain), limit=config.plain_limit)
    if not rows:
        raise InputError("no usable training rows in --data/--plain; check the shards are not empty")
    return rows


# ---------------------------------------------------------------- model


def build_model(config: TrainConfig):
    """A fresh (transformer, pooler) encoder with frozen word embeddings."""
    from sentence_transformers import SentenceTransformer

    resolved = resolve_encoder(config.encoder)
    modules = build_modules(resolved, pooler=config.pooler, max_seq_length=512, local_files_only=is_local(resolved))
    model = SentenceTransformer(modules=modules, device="cpu")
    model.max_seq_length = min(512, model[0].tokenizer.model_max_length or 512)
    # The paper freezes the word-embedding layer: generated data is small, and moving rare-word vectors overfits.
    model[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
    return model


def preprocess(model, texts: list[str], templates: list[str | None] | None, max_len: int) -> dict[str, Any]:
    """Tokenise a list of texts (templated for the mask pooler) with truncation at ``max_len``."""
    first = model[0]
    if isinstance(first, PromptTransformer):
        return first.preprocess(texts, templates=templates, max_length=max_len)
    return first.preprocess(texts, max_length=max_len)


@torch.no_grad()
def embed(model, texts: Sequence[str], *, max_len: int, batch_size: int, dropout: bool = False,
          templates: Sequence[str | None] | None = None) -> torch.Tensor:
    """Pooled embeddings (no projection) in batches; ``dropout=True`` gives a SimCSE training view."""
    model.train(dropout)
    chunks = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        chunk_templates = list(templates[start : start + batch_size]) if templates else None
        features = preprocess(model, chunk, chunk_templates, max_len)
        chunks.append(model(features)["sentence_embedding"].float())  # (chunk, hidden)
    model.train(False)
    return torch.cat(chunks) if chunks else torch.empty(0)


# ---------------------------------------------------------------- monitoring


@dataclass(frozen=True)
class DevSets:
    stsb: STSPairs
    sick: STSPairs
    heldout: list[TrainRow]


def _truncate(pairs: STSPairs, limit: int | None) -> STSPairs:
    if limit is None:
        return pairs
    return STSPairs(pairs.task, pairs.sentences1[:limit], pairs.sentences2[:limit], pairs.scores[:limit])


def load_dev_sets(config: TrainConfig, heldout: list[TrainRow]) -> DevSets:
    """STS-B dev and SICK trial (SimCSE's dev pair), plus the held-out training rows."""
    data_dir = Path(config.data_dir) if config.data_dir else default_data_dir()
    return DevSets(
        stsb=_truncate(load_stsb(data_dir, "dev"), config.dev_limit),
        sick=_truncate(load_sickr(data_dir, "trial"), config.dev_limit),
        heldout=heldout[: config.heldout_anchors],
    )


def _dev_spearman(model, pairs: STSPairs, config: TrainConfig) -> tuple[float, torch.Tensor, torch.Tensor]:
    left = embed(model, pairs.sentences1, max_len=512, batch_size=config.eval_batch_size)
    right = embed(model, pairs.sentences2, max_len=512, batch_size=config.eval_batch_size)
    return cosine_spearman(left.numpy(), right.numpy(), pairs.scores), left, right


def measure_eval_geometry(left: torch.Tensor, right: torch.Tensor, pairs: STSPairs, n_uniform: int) -> tuple[float, float]:
    """method.md §4 "eval": alignment on gold >= 4 pairs; uniformity on the first sentences of gold >=4 or <=1 pairs."""
    positive = torch.as_tensor(pairs.scores >= 4.0)
    extreme = np.flatnonzero((pairs.scores >= 4.0) | (pairs.scores <= 1.0))
    flattened = torch.stack([t for i in extreme for t in (left[i], right[i])])[:n_uniform]
    return alignment(left[positive], right[positive]), uniformity(flattened)


def measure_train_geometry(model, heldout: list[TrainRow], config: TrainConfig) -> tuple[float, float]:
    """method.md §4 "train": alignment on (anchor, InfoNCE positive); uniformity on the first flattened sentences.

    Plain rows' positive is the same sentence under another dropout mask, so those pairs are embedded with
    dropout on (otherwise their distance would be exactly 0).
    """
    kwargs = {"max_len": config.max_len, "batch_size": config.eval_batch_size}
    anchors = embed(model, [r.anchor for r in heldout], **kwargs)
    positives = embed(model, [r.positive for r in heldout], **kwargs)
    plain = [i for i, r in enumerate(heldout) if r.plain]
    if plain:
        texts = [heldout[i].anchor for i in plain]
        anchors[plain] = embed(model, texts, dropout=True, **kwargs)
        positives[plain] = embed(model, texts, dropout=True, **kwargs)
    flattened = [s for r in heldout for s in r.sentences()][: config.uniformity_sentences]
    return alignment(anchors, positives), uniformity(embed(model, flattened, **kwargs))


def evaluate_checkpoint(model, dev: DevSets, config: TrainConfig, log: RunLog, step: int, loss: float | None) -> float | None:
    """Log alignment/uniformity (and, after step 0, dev Spearman); return STS-B dev Spearman or None at step 0."""
    stsb, left, right = _dev_spearman(model, dev.stsb, config)
    log.append(TRAIN_AU_FILE, [step, *measure_train_geometry(model, dev.heldout, config)])
    log.append(EVAL_AU_FILE, [step, *measure_eval_geometry(left, right, dev.stsb, config.uniformity_sentences)])
    if loss is None:
        return None  # step 0: the paper's metrics file starts at the first evaluation after training starts
    sickr, _, _ = _dev_spearman(model, dev.sick, config)
    log.append(METRICS_FILE, [step, loss, stsb, sickr, (stsb + sickr) / 2])
    return stsb


# ---------------------------------------------------------------- loop


def total_steps(config: TrainConfig, n_rows: int) -> int:
    """``steps`` if given, else ``epochs`` over the training rows."""
    return config.steps or max(1, math.ceil(config.epochs * n_rows / config.batch_size))


def save_checkpoint(model, run_dir: Path) -> None:
    """Write the encoder (no projection) so ``SentenceTransformer(run_dir)`` loads it."""
    model.save(str(run_dir), create_model_card=False)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def prepare_run_dir(config: TrainConfig, run_dir: Path) -> Path:
    """Create ``run_dir`` and record the config in it (with the run format version).

    Raises:
        InputError: ``run_dir`` exists as a file.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"--out {run_dir} is a file; pass a directory path")
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / CONFIG_FILE, {"format_version": RUN_FORMAT_VERSION, **config.model_dump(mode="json")})
    return run_dir


def build_optimization(model, config: TrainConfig, n_steps: int):
    """The config's loss (NGCSE's owns a training-only projection), AdamW over trainable weights, linear LR decay."""
    loss_fn = build_loss(config.loss, model)
    params = [p for p in loss_fn.parameters() if p.requires_grad]  # frozen word embeddings are left out
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / n_steps))
    return loss_fn, optimizer, scheduler


def train(config: TrainConfig, run_dir: Path, *, progress: bool = True) -> TrainResult:
    """Train, evaluating every ``eval_every`` steps, and keep the best STS-B dev checkpoint in ``run_dir``.

    Args:
        config: The run's settings.
        run_dir: Output folder: model files + ``metrics``, ``*_alignment_and_uniformity`` CSVs, configs.
        progress: Show a progress bar with steps/s.

    Returns:
        What was trained and the best dev score.

    Raises:
        InputError: unusable data or run dir. ConfigError: invalid pooler for the encoder.
    """
    from tqdm.auto import tqdm

    if config.threads:
        torch.set_num_threads(config.threads)
    _seed_everything(config.seed)
    run_dir = prepare_run_dir(config, run_dir)
    train_rows, heldout = split_heldout(load_rows(config), config.heldout_fraction, config.seed)
    dev = load_dev_sets(config, heldout)
    model = build_model(config)
    n_steps = total_steps(config, len(train_rows))
    loss_fn, optimizer, scheduler = build_optimization(model, config, n_steps)
    log = RunLog(run_dir)
    evaluate_checkpoint(model, dev, config, log, step=0, loss=None)

    best_stsb, best_step, losses, train_seconds = -math.inf, None, [], 0.0
    batches = iterate_batches(train_rows, config.batch_size, config.seed)
    with tqdm(total=n_steps, unit="step", disable=not progress, dynamic_ncols=True) as bar:
        for step in range(1, n_steps + 1):
            started = time.perf_counter()
            losses.append(train_step(model, loss_fn, optimizer, next(batches), config.max_len))
            scheduler.step()
            train_seconds += time.perf_counter() - started  # steps/s excludes evaluation
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", best_stsb=f"{100 * best_stsb:.2f}" if best_step else "-")
            if step % config.eval_every == 0 or step == n_steps:
                stsb = evaluate_checkpoint(model, dev, config, log, step, float(np.mean(losses)))
                losses = []
                if stsb is not None and stsb > best_stsb:
                    best_stsb, best_step = stsb, step
                    save_checkpoint(model, run_dir)
    result = TrainResult(run_dir, n_steps, best_step, round(100 * best_stsb, 2) if best_step else None,
                         n_steps / train_seconds, len(train_rows), len(heldout))
    _write_json(run_dir / SUMMARY_FILE, {**{k: v for k, v in result.__dict__.items() if k != "run_dir"},
                                         "format_version": RUN_FORMAT_VERSION})
    return result


def text_columns(collated: CollatedBatch) -> list[list[int]]:
    """Column batches for sentence-transformers losses: indices of (anchor, positive[, hard negative]) texts.

    The hard-negative column is there only when every row has one (ST losses need equal columns), so a hybrid
    batch (plain rows mixed with NLI triples) trains without them; HT texts are never used.
    """
    layout = collated.layout
    columns = [layout.anchor.tolist(), layout.positive.tolist()]
    if len(layout.hard_negative) == len(layout.anchor):
        columns.append(layout.hard_negative.tolist())
    return columns


def loss_inputs(model, loss_fn: torch.nn.Module, batch: list[TrainRow], max_len: int):
    """``(sentence_features, labels)`` for ``loss_fn.forward``, in the shape the loss takes.

    A ``GroupLoss`` (datagen's) gets one feature dict of every text (a single forward pass) and the group labels;
    any other loss, sentence-transformers' column layout with ``labels=None`` (datagen's rows carry no scores).
    """
    collated = collate(batch)
    if isinstance(loss_fn, GroupLoss):
        return [preprocess(model, collated.texts, collated.templates, max_len)], collated.labels
    features = [
        preprocess(model, [collated.texts[i] for i in column], [collated.templates[i] for i in column], max_len)
        for column in text_columns(collated)
    ]
    return features, None


def train_step(model, loss_fn: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: list[TrainRow],
               max_len: int) -> float:
    """One optimisation step on one batch with any ``forward(sentence_features, labels) -> Tensor`` loss.

    Returns:
        The loss value.
    """
    model.train()
    sentence_features, labels = loss_inputs(model, loss_fn, batch, max_len)
    loss = loss_fn(sentence_features, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
