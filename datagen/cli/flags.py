"""Turning flags into config overrides, and help texts shared by several command groups."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datagen.tasks import all_tasks


def overrides(flags: Mapping[str, Any]) -> dict[str, Any]:
    """Config overrides from command flags, ready for ``load_config`` / ``load_train_config``.

    Args:
        flags: Config keys (dotted for nested ones: ``"sampling.seed"``) to flag values.

    Returns:
        The same keys; paths become ``str`` and repeated flags tuples of ``str``, because config is
        plain data. ``None`` (a flag not given) is kept: the loaders skip it, so the YAML value stays.
    """
    return {key: _plain(value) for key, value in flags.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return tuple(_plain(item) for item in value)
    return value


def generation_commands() -> str:
    """The commands that write a generation run, for help texts: ``datagen nli, datagen pairs or datagen sts``."""
    names = [f"datagen {spec.name}" for spec in all_tasks()]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def verbose_help(log: str = "OUT/logs/engine.log") -> str:
    """The ``--verbose`` help of a command that loads a model and keeps the libraries' output in ``log``."""
    return f"Show the libraries' own output (vLLM, Ray, torch, transformers) live instead of writing it to {log}."


RUN_DIR_HELP = f"Output directory of a generation run ({generation_commands()})."
