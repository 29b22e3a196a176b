"""Training losses, one per file, in sentence-transformers' style, picked by name from the registry.

Each loss's ``forward(sentence_features, labels)`` only embeds; the math lives in
``compute_loss_from_embeddings`` so tests can check it on plain tensors. datagen's own losses
take a group batch (``groups.py``: one forward pass over every text); sentence-transformers'
losses take their usual columns.
"""

from datagen.train.losses.base import LossConfig
from datagen.train.losses.groups import GROUP_COLUMNS, NO_TEXT, GroupLayout, GroupLoss
from datagen.train.losses.hierarchical_triplet import HierarchicalTripletLoss
from datagen.train.losses.info_nce import InfoNCEConfig, InfoNCELoss
from datagen.train.losses.mnrl import MNRLConfig
from datagen.train.losses.ngcse import NGCSEConfig, NGCSELoss, NGCSELossParts
from datagen.train.losses.registry import DEFAULT_LOSS, LOSSES, AnyLossConfig, build_loss, parse_loss_config

__all__ = [
    "AnyLossConfig", "DEFAULT_LOSS", "GROUP_COLUMNS", "GroupLayout", "GroupLoss", "HierarchicalTripletLoss",
    "InfoNCEConfig", "InfoNCELoss", "LOSSES", "LossConfig", "MNRLConfig", "NGCSEConfig", "NGCSELoss",
    "NGCSELossParts", "NO_TEXT", "build_loss", "parse_loss_config",
]
