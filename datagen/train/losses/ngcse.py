from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from datagen.train.losses.base import LossConfig
from datagen.train.losses.groups import GroupLayout, GroupLoss
from datagen.train.losses.hierarchical_triplet import HierarchicalTripletLoss
from datagen.train.losses.info_nce import InfoNCELoss

__all__ = ["GroupLayout", "NGCSEConfig", "NGCSELoss", "NGCSELossParts", "PROJECTION_INIT_STD"]

# The paper initialises its projection from N(0, 0.006): small, so early training is dominated by the encoder.
PROJECTION_INIT_STD = 0.006


@dataclass(frozen=True)
class NGCSELossParts:
    total: Tensor  # () what backward() is called on
    info_nce: Tensor  # ()
    ht: Tensor  # () zero when the batch holds no STS tuple

    def detach(self) -> NGCSELossParts:
        return NGCSELossParts(self.total.detach(), self.info_nce.detach(), self.ht.detach())


class NGCSELoss(GroupLoss):
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

        ``forward`` returns the total; its terms of the last batch stay in ``last_parts`` (detached, for logs),
        and ``compute_loss_from_embeddings`` returns all three with their graphs.

        Args:
            model: A SentenceTransformer whose forward returns ``sentence_embedding``.
            hidden_size: Width of the pooled embedding (the projection is hidden -> hidden, no activation).
            temperature: InfoNCE temperature; 0.05 as in the paper.
            margin1: HT margin positive > intermediate; the paper: 5e-3.
            margin2: HT margin intermediate > negative; the paper: 5e-2 (Wiki) or 1e-1 (NLI).
            beta: Weight of the HT term; the paper: 1. 0 turns this into plain InfoNCE ("sts" without HT).

        Inputs:
            A group batch (``datagen.train.losses.groups``): one feature dict of every text, one forward pass.

            +----------------------------------------------------------+--------------------------------------+
            | Texts (mixed freely within one batch)                    | Labels (group labels, one row each)  |
            +==========================================================+======================================+
            | plain sentence (two dropout views)                       | anchor, positive                     |
            +----------------------------------------------------------+--------------------------------------+
            | (anchor, entailment, contradiction) NLI triples          | anchor, positive, hard negative      |
            +----------------------------------------------------------+--------------------------------------+
            | (anchor, positive, intermediate, negative) STS tuples    | anchor, positive, HT columns         |
            +----------------------------------------------------------+--------------------------------------+

        References:
            - Li et al., Narrowing the Gap between Supervised and Unsupervised Sentence Representation Learning
              with Large Language Model, AAAI 2024, https://arxiv.org/abs/2309.06453
              (code BDBC-KG-NLP/NGCSE, ``models.py``).

        Relations:
            - :class:`datagen.train.losses.InfoNCELoss` and :class:`datagen.train.losses.HierarchicalTripletLoss`
              are its terms.

        Example:
            ::

                from datagen.train.data import collate

                loss_fn = NGCSELoss(model, model.get_embedding_dimension(), beta=1.0)
                batch = collate(rows)  # TrainRow objects
                loss = loss_fn([model.preprocess(batch.texts)], batch.labels)
                loss.backward()
                loss_fn.last_parts.info_nce, loss_fn.last_parts.ht
        """
        super().__init__(model)
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}; the paper uses 1")
        self.beta = beta
        self.projection = nn.Linear(hidden_size, hidden_size)
        nn.init.normal_(self.projection.weight, mean=0.0, std=PROJECTION_INIT_STD)
        nn.init.zeros_(self.projection.bias)
        # The terms only see projected embeddings, never features, so they hold no model.
        self.info_nce = InfoNCELoss(None, temperature)
        self.hierarchical_triplet = HierarchicalTripletLoss(None, margin1, margin2)
        self.last_parts: NGCSELossParts | None = None

    def loss_from_layout(self, embeddings: Tensor, layout: GroupLayout) -> Tensor:
        parts = self.compute_loss_from_embeddings(embeddings, layout)
        self.last_parts = parts.detach()
        return parts.total

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


class NGCSEConfig(LossConfig):
    """``loss: {name: ngcse}`` (the default): the paper's InfoNCE + beta * HT on a training-only projection."""

    name: Literal["ngcse"] = "ngcse"
    temperature: float = Field(0.05, gt=0)  # the paper's InfoNCE temperature
    margin1: float = Field(5e-3, ge=0)  # positive above intermediate: small, both keep the anchor's meaning
    margin2: float = Field(5e-2, ge=0)  # intermediate above negative: 5e-2 for Wiki seeds, 1e-1 for NLI seeds
    beta: float = Field(1.0, ge=0)  # HT weight; 0 = InfoNCE on the projection only

    def build(self, model: nn.Module) -> NGCSELoss:
        return NGCSELoss(model, model.get_embedding_dimension(), temperature=self.temperature,
                         margin1=self.margin1, margin2=self.margin2, beta=self.beta)
