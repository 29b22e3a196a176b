"""Embedding measurements shared by training and evaluation.

Cosine Spearman (the STS score), and alignment / uniformity (Wang & Isola 2020)
as method.md §4 defines them. Pure functions on arrays plus one encoder helper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.stats import spearmanr

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def encode_unique(model: SentenceTransformer, sentences: Sequence[str], *, batch_size: int = 128) -> dict[str, np.ndarray]:
    """Embed each distinct sentence once (STS files repeat many sentences).

    Returns:
        Sentence -> float32 embedding (raw pooled state, not normalised).
    """
    unique = list(dict.fromkeys(sentences))
    embeddings = model.encode(unique, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return dict(zip(unique, embeddings))


def cosine_rows(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, dim) arrays."""
    left = left / np.clip(np.linalg.norm(left, axis=1, keepdims=True), 1e-12, None)
    right = right / np.clip(np.linalg.norm(right, axis=1, keepdims=True), 1e-12, None)
    return np.sum(left * right, axis=1)


def cosine_spearman(left: np.ndarray, right: np.ndarray, gold: np.ndarray) -> float:
    """Spearman correlation between pair cosines and gold scores (a fraction, not x100)."""
    return float(spearmanr(cosine_rows(left, right), gold).statistic)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


def alignment(left: np.ndarray | torch.Tensor, right: np.ndarray | torch.Tensor) -> float:
    """Mean squared L2 distance between normalised positive pairs (lower = better aligned)."""
    x, y = _normalise(torch.as_tensor(left)), _normalise(torch.as_tensor(right))  # (n, dim)
    return float((x - y).norm(dim=1).pow(2).mean())


def uniformity(embeddings: np.ndarray | torch.Tensor) -> float:
    """log mean over pairs i<j of exp(-2 ||f_i - f_j||^2) on normalised embeddings (lower = more uniform)."""
    x = _normalise(torch.as_tensor(embeddings))  # (n, dim)
    squared = torch.pdist(x, p=2).pow(2)  # (n * (n - 1) / 2,)
    return float(squared.mul(-2).exp().mean().log())
