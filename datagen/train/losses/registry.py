"""The loss registry: ``loss:`` names to their config classes, and ``build_loss``.

Adding a loss: one module defining a ``LossConfig`` subclass (with ``name: Literal["<name>"]`` and
``build(model)``), plus its class in ``_CONFIGS`` below. Nothing else names a loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError
from torch import nn

from datagen.errors import ConfigError
from datagen.train.losses.base import LossConfig
from datagen.train.losses.info_nce import InfoNCEConfig
from datagen.train.losses.mnrl import MNRLConfig
from datagen.train.losses.ngcse import NGCSEConfig

_CONFIGS: tuple[type[LossConfig], ...] = (NGCSEConfig, InfoNCEConfig, MNRLConfig)

LOSSES: dict[str, type[LossConfig]] = {config.model_fields["name"].default: config for config in _CONFIGS}
DEFAULT_LOSS = "ngcse"  # the paper's loss; a ``loss:`` section without ``name`` means it
# The ``loss:`` section's type: one of the registered configs, picked by its ``name``.
AnyLossConfig = Annotated[Union[_CONFIGS], Field(discriminator="name")]  # type: ignore[valid-type]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyLossConfig)


def with_default_name(data: Any) -> Any:
    """A ``loss:`` mapping without ``name`` is the default loss's settings."""
    if isinstance(data, Mapping) and "name" not in data:
        return {"name": DEFAULT_LOSS, **data}
    return data


def parse_loss_config(data: Mapping[str, Any]) -> LossConfig:
    """Validate a ``loss:`` mapping (``{"name": "mnrl", "scale": 20}``).

    Raises:
        ConfigError: an unknown name or invalid settings.
    """
    data = with_default_name(data)
    if data.get("name") not in LOSSES:
        raise ConfigError(f"unknown loss '{data.get('name')}'; use one of: {', '.join(LOSSES)}")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "loss"
        raise ConfigError(f"invalid loss setting '{where}': {first['msg']}; fix the loss: section") from exc


def build_loss(config: LossConfig | Mapping[str, Any], model: nn.Module) -> nn.Module:
    """The loss module a ``loss:`` config describes, for ``model``.

    Args:
        config: A registered loss config, or a ``loss:`` mapping.
        model: The SentenceTransformer being trained.

    Returns:
        An ``nn.Module`` with ``forward(sentence_features, labels) -> Tensor``; its ``parameters()`` include the
        model's and any the loss owns (NGCSE's projection).

    Raises:
        ConfigError: an unknown loss or invalid settings.
    """
    if isinstance(config, Mapping):
        config = parse_loss_config(config)
    if type(config) not in _CONFIGS:
        raise ConfigError(f"{type(config).__name__} is not a registered loss config; use one of: {', '.join(LOSSES)}")
    return config.build(model)
