"""``loss: {name: mnrl}``: sentence-transformers' MultipleNegativesRankingLoss, unchanged.

A column loss: the loop gives it (anchor, positive) columns, plus a hard-negative column when every row of the
batch has one (NLI triples). Hybrid batches that mix plain sentences with triples therefore train without their
hard negatives; ``info_nce`` keeps them. One forward pass per column (the candidate columns may share one), where
datagen's own losses need one per batch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from torch import nn

from datagen.train.losses.base import LossConfig


class MNRLConfig(LossConfig):
    """Settings of :class:`sentence_transformers.losses.MultipleNegativesRankingLoss`."""

    name: Literal["mnrl"] = "mnrl"
    # Multiplies the cosine similarities: 20 = 1 / 0.05, the paper's temperature (sentence-transformers' default).
    scale: float = Field(20.0, gt=0)

    def build(self, model: nn.Module) -> MultipleNegativesRankingLoss:
        return MultipleNegativesRankingLoss(model, scale=self.scale)
