from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

from datagen.train.losses.base import LossConfig
from datagen.train.losses.groups import GroupLayout, GroupLoss


class InfoNCELoss(GroupLoss):
    def __init__(self, model: nn.Module, temperature: float = 0.05) -> None:
        """
        InfoNCE with in-batch negatives and optional hard negatives for only *some* rows.

        For anchor i the candidates are every row's positive plus every hard negative in the batch; the target is
        its own positive. Unlike :class:`sentence_transformers.losses.MultipleNegativesRankingLoss`, rows may lack a
        hard negative, which is what mixing generated NLI triples with plain sentences (the paper's hybrid data)
        needs. With a hard negative for every row the two losses are equal (``scale = 1 / temperature``).
        It works on the pooled embeddings as they are (no projection); :class:`NGCSELoss` with ``beta=0`` is the
        same term on the paper's training-only projection.

        Args:
            model: A SentenceTransformer (or any module mapping features to ``{"sentence_embedding": ...}``).
            temperature: Softmax temperature on cosine similarities. 0.05 as in SimCSE and the paper;
                lower sharpens the distribution and makes training less stable.

        Inputs:
            A group batch (``datagen.train.losses.groups``): one feature dict of every text, one forward pass.

            +----------------------------------------------+----------------------------------------------+
            | Texts (mixed freely within one batch)        | Labels (group labels, one row per example)   |
            +==============================================+==============================================+
            | plain sentence (two dropout views)           | anchor, positive indices                     |
            +----------------------------------------------+----------------------------------------------+
            | (anchor, positive, hard negative) triplets   | anchor, positive, hard negative indices      |
            +----------------------------------------------+----------------------------------------------+

        References:
            - SimCSE: Simple Contrastive Learning of Sentence Embeddings, https://arxiv.org/abs/2104.08821
            - van den Oord et al. 2018, https://arxiv.org/abs/1807.03748

        Relations:
            - :class:`sentence_transformers.losses.MultipleNegativesRankingLoss` (``loss: {name: mnrl}``): same loss,
              every row same shape, one forward pass per column.
            - :class:`datagen.train.losses.NGCSELoss` uses this on projected embeddings plus the hierarchical triplet loss.

        Example:
            ::

                from datagen.train.data import collate
                from datagen.train.losses import InfoNCELoss

                loss_fn = InfoNCELoss(model, temperature=0.05)
                batch = collate(rows)  # TrainRow objects
                loss = loss_fn([model.preprocess(batch.texts)], batch.labels)
        """
        super().__init__(model)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}; the paper uses 0.05")
        self.temperature = temperature

    def loss_from_layout(self, embeddings: Tensor, layout: GroupLayout) -> Tensor:
        anchors = embeddings[layout.anchor]  # (batch_size, hidden)
        candidates = embeddings[torch.cat([layout.positive, layout.hard_negative])]  # (batch_size + num_hard, hidden)
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


class InfoNCEConfig(LossConfig):
    """``loss: {name: info_nce}``: InfoNCE on the pooled embeddings, hybrid batches allowed."""

    name: Literal["info_nce"] = "info_nce"
    temperature: float = Field(0.05, gt=0)  # SimCSE's and the paper's; lower is sharper and less stable

    def build(self, model: nn.Module) -> InfoNCELoss:
        return InfoNCELoss(model, temperature=self.temperature)
