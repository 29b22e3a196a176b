"""Chain the stages from one YAML file: generate -> train -> eval -> rfd (-> report).

``datagen run pipelines/ngcse_small.yaml``. Each section holds the same keys as
that stage's own config, plus where its output goes. A missing ``generate``
section trains on existing shards; ``train.data`` defaults to ``generate.out``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from datagen.config import Frozen, GenerateConfig
from datagen.errors import ConfigError
from datagen.evaluate.sts import TASKS, evaluate_path
from datagen.evaluate.rfd import compute_rfd
from datagen.train.loop import TrainConfig, train


class GenerateStep(Frozen):
    seeds: str
    out: str
    overwrite: bool = False
    config: GenerateConfig


class TrainStep(Frozen):
    out: str
    config: TrainConfig


class EvalStep(Frozen):
    tasks: tuple[str, ...] = TASKS
    data_dir: str | None = None


class ReportStep(Frozen):
    out: str


class PipelineSpec(Frozen):
    generate: GenerateStep | None = None
    train: TrainStep
    eval: EvalStep | None = EvalStep()
    rfd: bool = True
    report: ReportStep | None = None


def _split_section(section: dict[str, Any], step_keys: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    step = {k: section[k] for k in step_keys if k in section}
    rest = {k: v for k, v in section.items() if k not in step_keys}
    return step, rest


def parse_pipeline(data: dict[str, Any]) -> PipelineSpec:
    """Validate a pipeline mapping (see ``pipelines/ngcse_small.yaml``).

    Raises:
        ConfigError: missing sections or invalid values.
    """
    if not isinstance(data.get("train"), dict):
        raise ConfigError("a pipeline needs a 'train:' section with at least 'out:'; see pipelines/ngcse_small.yaml")
    payload: dict[str, Any] = {k: v for k, v in data.items() if k not in ("generate", "train")}
    if isinstance(data.get("generate"), dict):
        step, rest = _split_section(data["generate"], ("seeds", "out", "overwrite"))
        payload["generate"] = {**step, "config": rest}
    step, rest = _split_section(data["train"], ("out",))
    if not rest.get("data") and "generate" in payload and rest.get("objective", "sts") != "simcse":
        rest["data"] = [payload["generate"].get("out")]
    payload["train"] = {**step, "config": rest}
    try:
        return PipelineSpec.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p != "config")
        raise ConfigError(f"invalid pipeline value for '{where}': {first['msg']}; fix the pipeline YAML") from exc


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Read and validate a pipeline YAML file.

    Raises:
        ConfigError: unreadable file or invalid pipeline.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read pipeline {path}: {exc}; pass a YAML file such as pipelines/ngcse_small.yaml")
    if not isinstance(data, dict):
        raise ConfigError(f"pipeline {path} must be a YAML mapping with generate/train/eval sections")
    return parse_pipeline(data)


def _generate(step: GenerateStep):
    from datagen.generation.run import generate

    return generate(step.config, Path(step.seeds), Path(step.out), overwrite=step.overwrite)


def run_pipeline(spec: PipelineSpec, *, progress: bool = True, log: Callable[[str], None] = print,
                 run_generate: Callable[[GenerateStep], Any] | None = None) -> dict[str, Any]:
    """Run the stages in order; each later stage reads what the earlier one wrote.

    Args:
        run_generate: Runs the generation stage and returns its summary; default: ``generate`` as is (the
            CLI passes one that keeps vLLM's output in the stage's ``OUT/logs/engine.log``).

    Returns:
        ``{"generate": summary | None, "train": TrainResult, "eval": results | None, "rfd": dict | None,
        "report": [png paths] | None}``.
    """
    outcome: dict[str, Any] = {"generate": None, "eval": None, "rfd": None, "report": None}
    if spec.generate is not None:
        log(f"generate -> {spec.generate.out}")
        outcome["generate"] = (run_generate or _generate)(spec.generate)
    run_dir = Path(spec.train.out)
    log(f"train -> {run_dir}")
    outcome["train"] = train(spec.train.config, run_dir, progress=progress)
    if spec.eval is not None:
        log(f"eval {run_dir}")
        data_dir = Path(spec.eval.data_dir) if spec.eval.data_dir else None
        outcome["eval"] = evaluate_path(str(run_dir), tasks=spec.eval.tasks, data_dir=data_dir, save_to=run_dir)
    if spec.rfd:
        outcome["rfd"] = compute_rfd(run_dir).as_dict()
    if spec.report is not None:
        from datagen.evaluate.report import make_report

        outcome["report"] = make_report([run_dir], spec.report.out)
    return outcome
