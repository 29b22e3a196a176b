"""``TaskSpec``: everything datagen needs to know about one task, in one object.

Rendering, parsing, validation, writing, scoring, filtering, export and training ask the spec
(``spec.fields``, ``spec.positive``) instead of testing a task's name. A new task is one module in
``datagen/tasks/`` that defines ``TASK = TaskSpec(...)``, plus its templates ``prompts/<name>/`` and its
defaults ``pipelines/<name>.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datagen.config import packaged
from datagen.tasks.checks import Record

# Column names of scores use short names: cos_pos, edit_con, margin_pos_int, ...
SHORT_NAMES = {"positive": "pos", "intermediate": "int", "negative": "neg", "entailment": "ent",
               "contradiction": "con"}


@dataclass(frozen=True)
class TaskSpec:
    """One task: what it asks the LLM for and how every later stage reads its rows.

    Args:
        name: The CLI command (``datagen <name>``), the manifest's ``task`` and the template folder.
        description: One line for ``datagen --help``.
        record: The pydantic record model: ``anchor`` plus one ``str`` field per output, in tier order
            (most similar to the anchor first). Its validators are the task's checks.
        positive: The output used as the InfoNCE positive when training (the paper uses the STS
            intermediate, method.md §3).
        hard_negative: The output used as an in-batch hard negative, or None.
        hierarchy: Outputs fed to the hierarchical triplet loss as (positive, intermediate, negative), or ().
        ngcse_keys: The NGCSE paper's train.py key ("5" most similar .. "0") for each output (export).
        reasons: Reason codes this task's own record validators can give (beyond the shared ones).
        max_tokens: Default ``sampling.max_tokens`` for joint mode (JSON with all outputs).
    """

    name: str
    description: str
    record: type[Record]
    positive: str
    hard_negative: str | None = None
    hierarchy: tuple[str, ...] = ()
    ngcse_keys: dict[str, str] = field(default_factory=dict)
    reasons: frozenset[str] = frozenset()

    @property
    def fields(self) -> tuple[str, ...]:
        """Generated columns in tier order (Parquet column order)."""
        return self.record.output_fields()

    @property
    def meaning_changing(self) -> frozenset[str]:
        return self.record.meaning_changing

    def short(self, field_name: str) -> str:
        """Short name of an output for score columns (``positive`` -> ``pos``)."""
        return SHORT_NAMES.get(field_name, field_name[:3])

    def joint_schema(self) -> dict:
        """JSON schema for joint mode: one string per output field, nothing else."""
        return {
            "type": "object",
            "properties": {name: {"type": "string", "minLength": 1, "maxLength": 400} for name in self.fields},
            "required": list(self.fields),
            "additionalProperties": False,
        }

    def default_config(self) -> Path | None:
        """``pipelines/<name>.yaml`` shipped with the package, if there is one."""
        path = packaged("pipelines", f"{self.name}.yaml")
        return path if path.is_file() else None
