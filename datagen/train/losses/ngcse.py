from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from datagen.train.losses.hierarchical_triplet import HierarchicalTripletLoss
from datagen.train.losses.info_nce import InfoNCELoss

# The paper initialises its projection from N(0, 0.006): small, so early training is dominated by the encoder.
PROJECTION_INIT_STD = 0.006


@dataclass(frozen=True)
class GroupLayout:
    """Where each role sits among the texts of one batch, which are embedded in a single forward pass.

    One forward pass gives every text its own dropout mask, so a plain sentence listed twice gets the two
    SimCSE views for free, and the transformer runs once per step instead of once per column.
    """

    anchor: Tensor  # (batch_size,) indices into the embedded texts
    positive: Tensor  # (batch_size,) the InfoNCE positive of each anchor
    hard_negative: Tensor  # (num_hard_negatives,) extra InfoNCE candidates (NLI contradictions)
    ht: Tensor  # (num_ht_rows, 4) anchor, positive, intermediate, negative indices for the HT loss


@dataclass(frozen=True)
class NGCSELossParts:
    total: Tensor  # () what backward() is called on
    info_nce: Tensor  # ()
    ht: Tensor  # () zero when the batch holds no STS tuple


class NGCSELoss(nn.Module):
    def __init__(
        self,
        model: nn.Module,
        hidden_size: int,
        *,
        temperature: float = 0.05,
        margin1: float = 5e-3,
        margin2: float = 5e-2,
        beta: float = 1.0,
    ) -> None:
        """
        The paper's objective: L = L_InfoNCE + beta * L_HT, both on a training-only linear projection of the
        pooled embeddings. The projection is owned by the loss, so it is never saved with the encoder:
        evaluation uses the raw pooled state, as in the paper.

        Args:
            model: A SentenceTransformer whose forward returns ``sentence_embedding``.
            hidden_size: Width of the pooled embedding (the projection is hidden -> hidden, no activation).
            temperature: InfoNCE temperature; 0.05 as in the paper.
            margin1: HT margin positive > intermediate; the paper: 5e-3.
            margin2: HT margin intermediate > negative; the paper: 5e-2 (Wiki) or 1e-1 (NLI).
            beta: Weight of the HT term; the paper: 1. 0 turns this into plain InfoNCE ("sts" without HT).

        Inputs:
            +----------------------------------------------------------+--------+
            | Texts (mixed freely within one batch)                    | Labels |
            +==========================================================+========+
            | plain sentence (two dropout views)                       | none   |
            +----------------------------------------------------------+--------+
            | (anchor, entailment, contradiction) NLI triples          | none   |
            +----------------------------------------------------------+--------+
            | (anchor, positive, intermediate, negative) STS tuples    | none   |
            +----------------------------------------------------------+--------+

        References:
            - NGCSE (AAAI 2024), code BDBC-KG-NLP/NGCSE, ``models.py``.

        Relations:
            - :class:`datagen.train.losses.InfoNCELoss` and :class:`datagen.train.losses.HierarchicalTripletLoss` are its terms.

        Example:
            ::

                loss_fn = NGCSELoss(model, model.get_embedding_dimension(), beta=1.0)
                parts = loss_fn(model.preprocess(texts), layout)
                parts.total.backward()
        """
        super().__init__()
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}; the paper uses 1")
        self.model = model
        self.beta = beta
        self.projection = nn.Linear(hidden_size, hidden_size)
        nn.init.normal_(self.projection.weight, mean=0.0, std=PROJECTION_INIT_STD)
        nn.init.zeros_(self.projection.bias)
        self.info_nce = InfoNCELoss(model, temperature)
        self.hierarchical_triplet = HierarchicalTripletLoss(model, margin1, margin2)

    def forward(self, features: dict[str, Any], layout: GroupLayout) -> NGCSELossParts:
        embeddings = self.model(features)["sentence_embedding"]  # (num_texts, hidden)
        return self.compute_loss_from_embeddings(embeddings, layout)

    def compute_loss_from_embeddings(self, embeddings: Tensor, layout: GroupLayout) -> NGCSELossParts:
        projected = self.projection(embeddings)  # (num_texts, hidden)
        anchors = projected[layout.anchor]  # (batch_size, hidden)
        candidates = projected[torch.cat([layout.positive, layout.hard_negative])]  # (batch_size + num_hard, hidden)
        info_nce = self.info_nce.compute_loss_from_embeddings(anchors, candidates)
        if layout.ht.numel() == 0 or self.beta == 0:
            ht = projected.new_zeros(())
        else:
            ht = self.hierarchical_triplet.compute_loss_from_embeddings(
                [projected[layout.ht[:, column]] for column in range(4)]  # 4 x (num_ht_rows, hidden)
            )
        return NGCSELossParts(total=info_nce + self.beta * ht, info_nce=info_nce, ht=ht)

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.info_nce.get_config_dict(), **self.hierarchical_triplet.get_config_dict(), "beta": self.beta}
