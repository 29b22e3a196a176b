"""The group batch: every text of a batch in one forward pass, roles given as index labels.

sentence-transformers losses take one feature dict per column (anchor, positive, ...), so every row of a
batch must have the same shape and the transformer runs once per column. datagen's batches mix shapes
(plain sentences, NLI triples, STS tuples), so its own losses take a *group batch* instead, through the
same ``forward(sentence_features, labels)`` signature:

- ``sentence_features``: a one-element list, the features of all texts of the batch (one forward pass);
- ``labels``: a ``(batch_size, 6)`` long tensor, one row per training row, holding the index of each role's
  text among those texts, or ``NO_TEXT`` where the row has no such role (see ``GROUP_COLUMNS``).

One forward pass also gives every text its own dropout mask, so a plain sentence listed twice gets its two
SimCSE views for free.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

# Columns of the group labels, in order. The HT intermediate may point at the same text as the positive
# (the paper's STS rows use the intermediate as the InfoNCE positive), so it is embedded once.
GROUP_COLUMNS = ("anchor", "positive", "hard_negative", "ht_positive", "ht_intermediate", "ht_negative")
NO_TEXT = -1  # a role the row does not have


@dataclass(frozen=True)
class GroupLayout:
    """Where each role sits among the texts of one batch, which are embedded in a single forward pass."""

    anchor: Tensor  # (batch_size,) indices into the embedded texts
    positive: Tensor  # (batch_size,) the InfoNCE positive of each anchor
    hard_negative: Tensor  # (num_hard_negatives,) extra InfoNCE candidates (NLI contradictions)
    ht: Tensor  # (num_ht_rows, 4) anchor, positive, intermediate, negative indices for the HT loss

    @classmethod
    def from_labels(cls, labels: Tensor) -> GroupLayout:
        """Read the group labels (``(batch_size, 6)``, columns ``GROUP_COLUMNS``) into index tensors.

        Raises:
            ValueError: labels of the wrong shape, or a row with only part of the HT roles.
        """
        if labels is None or labels.dim() != 2 or labels.size(1) != len(GROUP_COLUMNS):
            shape = None if labels is None else tuple(labels.shape)
            raise ValueError(
                f"group labels must be a (batch_size, {len(GROUP_COLUMNS)}) index tensor, got {shape}; "
                "build them with datagen.train.data.collate(rows).labels"
            )
        hard = labels[:, 2]  # (batch_size,)
        hierarchy = labels[:, 3:]  # (batch_size, 3)
        has_ht = hierarchy[:, 0] != NO_TEXT  # (batch_size,)
        if bool(((hierarchy != NO_TEXT) != has_ht.unsqueeze(1)).any()):
            raise ValueError("a row of the group labels has only some HT roles; give all three or none")
        return cls(
            anchor=labels[:, 0],
            positive=labels[:, 1],
            hard_negative=hard[hard != NO_TEXT],
            ht=labels[has_ht][:, [0, 3, 4, 5]],  # (num_ht_rows, 4)
        )


class GroupLoss(nn.Module):
    """Base of losses that take a group batch (see the module docstring); subclasses define ``loss_from_layout``.

    The training loop checks for this type: a ``GroupLoss`` gets one feature dict of all texts plus group labels,
    any other loss (sentence-transformers') gets one feature dict per column.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        features = list(sentence_features)
        if len(features) != 1:
            raise ValueError(
                f"{type(self).__name__} takes a group batch: one feature dict holding every text, got {len(features)}; "
                "see datagen.train.losses.groups"
            )
        embeddings = self.model(features[0])["sentence_embedding"]  # (num_texts, hidden)
        return self.loss_from_layout(embeddings, GroupLayout.from_labels(labels))

    def loss_from_layout(self, embeddings: Tensor, layout: GroupLayout) -> Tensor:
        """The loss (a scalar tensor) of one batch's embeddings, ``(num_texts, hidden)``."""
        raise NotImplementedError

    def get_config_dict(self) -> dict[str, Any]:
        return {}
