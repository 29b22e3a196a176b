from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class HierarchicalTripletLoss(nn.Module):
    def __init__(self, model: nn.Module, margin1: float = 5e-3, margin2: float = 5e-2) -> None:
        """
        Orders three candidates by similarity to the anchor: positive above intermediate by at least ``margin1``,
        intermediate above negative by at least ``margin2`` (cosine similarity):

            L_HT = 1/2 * mean_batch[ relu(cos(a, m) - cos(a, p) + m1) + relu(cos(a, n) - cos(a, m) + m2) ]

        The intermediate keeps the anchor's meaning with fewer details, so it sits between the paraphrase and the
        unrelated sentence; the two hinges teach that graded structure, which plain InfoNCE (one positive, all
        negatives equal) cannot express.

        Args:
            model: A SentenceTransformer (or any module mapping features to ``{"sentence_embedding": ...}``).
            margin1: Margin between positive and intermediate. The paper: 5e-3 (small: both are "similar").
            margin2: Margin between intermediate and negative. The paper: 5e-2 (Wiki seeds) or 1e-1 (NLI seeds).

        Inputs:
            +---------------------------------------------------+--------+
            | Texts                                             | Labels |
            +===================================================+========+
            | (anchor, positive, intermediate, negative) tuples | none   |
            +---------------------------------------------------+--------+

        References:
            - Li et al., Narrowing the Gap between Supervised and Unsupervised Sentence Representation Learning
              with Large Language Model, AAAI 2024, https://arxiv.org/abs/2309.06453
              (code BDBC-KG-NLP/NGCSE, ``models.py``).

        Relations:
            - :class:`sentence_transformers.losses.TripletLoss` is the one-margin, two-candidate case.
            - :class:`datagen.train.losses.NGCSELoss` adds it, weighted by beta, to InfoNCE on projected embeddings.

        Example:
            ::

                from sentence_transformers import SentenceTransformer
                from datagen.train.losses import HierarchicalTripletLoss

                model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
                loss_fn = HierarchicalTripletLoss(model, margin1=5e-3, margin2=5e-2)
                texts = [["A man plays a guitar."], ["A man is playing a guitar."], ["A man plays."], ["It rains."]]
                features = [model.preprocess(column) for column in texts]
                loss = loss_fn(features, labels=None)
        """
        super().__init__()
        if margin1 < 0 or margin2 < 0:
            raise ValueError(f"margins must be >= 0, got margin1={margin1}, margin2={margin2}; the paper uses 5e-3, 5e-2")
        self.model = model
        self.margin1 = margin1
        self.margin2 = margin2

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        embeddings = [self.model(features)["sentence_embedding"] for features in sentence_features]
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        if len(embeddings) != 4:
            raise ValueError(
                f"HierarchicalTripletLoss needs 4 columns (anchor, positive, intermediate, negative), got {len(embeddings)}"
            )
        anchor, positive, intermediate, negative = embeddings  # each (batch_size, dim)
        cos_positive = F.cosine_similarity(anchor, positive, dim=-1)  # (batch_size,)
        cos_intermediate = F.cosine_similarity(anchor, intermediate, dim=-1)  # (batch_size,)
        cos_negative = F.cosine_similarity(anchor, negative, dim=-1)  # (batch_size,)
        upper = torch.relu(cos_intermediate - cos_positive + self.margin1)  # (batch_size,)
        lower = torch.relu(cos_negative - cos_intermediate + self.margin2)  # (batch_size,)
        return 0.5 * (upper + lower).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"margin1": self.margin1, "margin2": self.margin2}
