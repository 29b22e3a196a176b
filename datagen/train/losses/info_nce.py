from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class InfoNCELoss(nn.Module):
    def __init__(self, model: nn.Module, temperature: float = 0.05) -> None:
        """
        InfoNCE with in-batch negatives and optional hard negatives for only *some* rows.

        For anchor i the candidates are every row's positive plus every hard negative in the batch; the target is
        its own positive. Unlike :class:`sentence_transformers.losses.MultipleNegativesRankingLoss`, rows may lack a
        hard negative, which is what mixing generated NLI triples with plain sentences (the paper's hybrid data)
        needs. With a hard negative for every row the two losses are equal (``scale = 1 / temperature``).

        Args:
            model: A SentenceTransformer (or any module mapping features to ``{"sentence_embedding": ...}``).
            temperature: Softmax temperature on cosine similarities. 0.05 as in SimCSE and the paper;
                lower sharpens the distribution and makes training less stable.

        Inputs:
            +---------------------------------------------+--------+
            | Texts                                       | Labels |
            +=============================================+========+
            | (anchor, positive) pairs                    | none   |
            +---------------------------------------------+--------+
            | (anchor, positive, hard negative) triplets  | none   |
            +---------------------------------------------+--------+

        References:
            - SimCSE: Simple Contrastive Learning of Sentence Embeddings, https://arxiv.org/abs/2104.08821
            - van den Oord et al. 2018, https://arxiv.org/abs/1807.03748

        Relations:
            - :class:`sentence_transformers.losses.MultipleNegativesRankingLoss`: same loss, every row same shape.
            - :class:`datagen.train.losses.NGCSELoss` uses this on projected embeddings plus the hierarchical triplet loss.

        Example:
            ::

                from datagen.train.losses import InfoNCELoss

                loss_fn = InfoNCELoss(model, temperature=0.05)
                features = [model.preprocess(column) for column in (anchors, positives, negatives)]
                loss = loss_fn(features, labels=None)
        """
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}; the paper uses 0.05")
        self.model = model
        self.temperature = temperature

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        embeddings = [self.model(features)["sentence_embedding"] for features in sentence_features]
        anchors, positives, *negatives = embeddings
        candidates = torch.cat([positives, *negatives], dim=0)  # (batch_size * (1 + num_negative_columns), dim)
        return self.compute_loss_from_embeddings(anchors, candidates)

    def compute_loss_from_embeddings(self, anchors: Tensor, candidates: Tensor) -> Tensor:
        """Cross-entropy where anchor i's target is candidate i.

        Args:
            anchors: (batch_size, dim).
            candidates: (batch_size + num_hard_negatives, dim); the first ``batch_size`` rows are the positives.
        """
        batch_size = anchors.size(0)
        if candidates.size(0) < batch_size:
            raise ValueError(f"need at least one candidate per anchor: {candidates.size(0)} < {batch_size}")
        similarities = F.cosine_similarity(anchors.unsqueeze(1), candidates.unsqueeze(0), dim=-1)  # (bs, n_cand)
        targets = torch.arange(batch_size, device=anchors.device)  # (batch_size,)
        return F.cross_entropy(similarities / self.temperature, targets)

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature}
