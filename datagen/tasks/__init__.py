"""The task registry: every module of this package that defines ``TASK = TaskSpec(...)`` is a task.

Tasks are found by listing the package, so adding one means adding a module; nothing else names it.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from datagen.errors import ConfigError
from datagen.tasks.base import TaskSpec

__all__ = ["TaskSpec", "all_tasks", "get_task", "output_fields", "joint_schema"]


@cache
def _registry() -> dict[str, TaskSpec]:
    tasks: dict[str, TaskSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "TASK", None)
        if isinstance(spec, TaskSpec):
            if spec.name in tasks:
                raise ConfigError(f"two task modules define the task '{spec.name}'; rename one of them")
            tasks[spec.name] = spec
    return tasks


def all_tasks() -> tuple[TaskSpec, ...]:
    """Every registered task, by name."""
    return tuple(_registry().values())


def get_task(name: str) -> TaskSpec:
    """The task called ``name``.

    Raises:
        ConfigError: no such task.
    """
    try:
        return _registry()[name]
    except KeyError:
        known = ", ".join(sorted(_registry()))
        raise ConfigError(f"unknown task '{name}'; use one of: {known}") from None


def output_fields(task: str) -> tuple[str, ...]:
    """The generated columns of ``task``, in Parquet (tier) order."""
    return get_task(task).fields


def joint_schema(task: str) -> dict:
    """JSON schema for joint mode of ``task``."""
    return get_task(task).joint_schema()
