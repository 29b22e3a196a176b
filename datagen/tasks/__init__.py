"""What each task asks the LLM for: its output fields and their order.

Shared by rendering, parsing, validation and writing, so a field name lives in one place.
"""

from __future__ import annotations

from datagen.config import Task

TASK_FIELDS: dict[str, tuple[str, ...]] = {
    "nli": ("entailment", "contradiction"),
    "sts": ("positive", "intermediate", "negative"),
}


def output_fields(task: Task) -> tuple[str, ...]:
    """The generated columns of ``task``, in Parquet column order."""
    return TASK_FIELDS[task]


def joint_schema(task: Task) -> dict:
    """JSON schema for joint mode: one string per output field, nothing else."""
    fields = output_fields(task)
    return {
        "type": "object",
        "properties": {name: {"type": "string", "minLength": 1, "maxLength": 400} for name in fields},
        "required": list(fields),
        "additionalProperties": False,
    }
