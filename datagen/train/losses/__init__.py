"""Training losses, one per file, in sentence-transformers' style.

Each loss's ``forward`` only embeds; the math lives in
``compute_loss_from_embeddings`` so tests can check it on plain tensors.
"""

from datagen.train.losses.hierarchical_triplet import HierarchicalTripletLoss
from datagen.train.losses.info_nce import InfoNCELoss
from datagen.train.losses.ngcse import NGCSELoss, NGCSELossParts

__all__ = ["HierarchicalTripletLoss", "InfoNCELoss", "NGCSELoss", "NGCSELossParts"]
