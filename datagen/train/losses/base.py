"""``LossConfig``: the frozen settings of one loss, and how to build it.

Each loss module defines one subclass with ``name: Literal["<name>"]`` and ``build(model)``; the registry
(``datagen.train.losses.registry``) lists them, and the ``loss:`` section of a training config is validated
against them by ``name``.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator
from torch import nn

from datagen.config import Frozen


class LossConfig(Frozen):
    """Settings of one loss; ``name`` picks the loss in a ``loss:`` section."""

    name: str

    @model_validator(mode="before")
    @classmethod
    def _known_settings(cls, data: Any) -> Any:
        # Friendlier than pydantic's "extra inputs": say which settings this loss has (e.g. --temp given to mnrl).
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                known = ", ".join(k for k in cls.model_fields if k != "name") or "none"
                raise ValueError(
                    f"loss '{data.get('name')}' has no setting {', '.join(unknown)}; its settings: {known}"
                )
        return data

    def build(self, model: nn.Module) -> nn.Module:
        """The loss module for ``model``, with ``forward(sentence_features, labels) -> Tensor``."""
        raise NotImplementedError
