"""Chain the stages from one YAML file: generate -> judge -> filter -> train -> eval -> rfd (-> report).

``datagen run pipelines/ngcse_small.yaml``. Each section holds the same keys as
that stage's own config, plus where its output goes. Every section is optional, as long as each stage has its
input: ``judge`` judges ``generate.out``; ``filter`` reads ``generate.out`` (with its judge results) and writes
``filter.out``; ``train.data`` defaults to ``filter.out``, else ``generate.out``. ``pipelines/nli_checked.yaml``
runs generate -> judge -> filter alone.
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
from datagen.quality.filter import FilterSpec
from datagen.quality.judge import JudgeConfig
from datagen.train.loop import TrainConfig, train


class GenerateStep(Frozen):
    seeds: str
    out: str
    overwrite: bool = False
    config: GenerateConfig


class JudgeStep(Frozen):
    # True: the judge takes the filter section's bars as its early stops (JudgeConfig.stop_below), so a row that
    # fails one check is not asked the later ones. The filter keeps the same rows; the judge asks fewer questions.
    stop_early: bool = False
    config: JudgeConfig = JudgeConfig()


class FilterStep(Frozen):
    out: str
    overwrite: bool = False
    spec: FilterSpec = FilterSpec()


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
    judge: JudgeStep | None = None
    filter: FilterStep | None = None
    train: TrainStep | None = None
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
    stages = ("generate", "judge", "filter", "train")
    for name in stages:
        if name in data and not isinstance(data[name], dict):
            raise ConfigError(f"pipeline section '{name}:' must be a mapping of that stage's keys; see "
                              "pipelines/ngcse_small.yaml")
    if not any(name in data for name in stages):
        raise ConfigError("a pipeline needs a 'generate:' or a 'train:' section (with 'out:'); see "
                          "pipelines/ngcse_small.yaml or pipelines/nli_checked.yaml")
    if ("judge" in data or "filter" in data) and "generate" not in data:
        raise ConfigError("the pipeline's judge: and filter: sections work on its generate: output; add a "
                          "generate: section, or run `datagen judge` / `datagen filter` on an existing dataset")
    payload: dict[str, Any] = {k: v for k, v in data.items() if k not in stages}
    if "train" not in data:
        if "eval" in data or "report" in data or data.get("rfd"):
            raise ConfigError("the pipeline's eval:, rfd: and report: sections evaluate its train: run; add a "
                              "train: section, or drop them")
        payload.update({"eval": None, "rfd": False})
    if "generate" in data:
        step, rest = _split_section(data["generate"], ("seeds", "out", "overwrite"))
        payload["generate"] = {**step, "config": rest}
    if "judge" in data:
        step, rest = _split_section(data["judge"], ("stop_early",))
        if step.get("stop_early") and "filter" not in data:
            raise ConfigError("judge: stop_early takes its bars from the filter: section; add one with judge bars "
                              "(min_judge, min_judge_by_relation or min_judge_by_check), or drop stop_early")
        payload["judge"] = {**step, "config": rest}
    if "filter" in data:
        step, rest = _split_section(data["filter"], ("out", "overwrite"))
        payload["filter"] = {**step, "spec": rest}
    if "train" in data:
        step, rest = _split_section(data["train"], ("out",))
        upstream = (data.get("filter") or data.get("generate") or {}).get("out")
        if not rest.get("data") and upstream and rest.get("objective", "sts") != "simcse":
            rest["data"] = [upstream]
        payload["train"] = {**step, "config": rest}
    try:
        return PipelineSpec.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p not in ("config", "spec"))
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


def _judge(step: JudgeStep, dataset: Path):
    from datagen.quality.judge import judge_dataset

    return judge_dataset(dataset, step.config)


def judge_step_with_stops(spec: PipelineSpec) -> JudgeStep:
    """The judge step, with the filter's bars as its early stops when it asks for them (``stop_early``)."""
    step = spec.judge
    if not step.stop_early or spec.filter is None:
        return step
    from datagen.quality.judge import load_judge_plan

    plan = load_judge_plan(spec.generate.config.task, step.config.templates_dir)
    bars = spec.filter.spec.bars_per_check((check.name, check.relation) for check in plan.checks)
    return step.model_copy(update={"config": step.config.model_copy(update={"stop_below": bars})})


def run_pipeline(spec: PipelineSpec, *, progress: bool = True, log: Callable[[str], None] = print,
                 run_generate: Callable[[GenerateStep], Any] | None = None,
                 run_judge: Callable[[JudgeStep, Path], Any] | None = None) -> dict[str, Any]:
    """Run the stages in order; each later stage reads what the earlier one wrote.

    Args:
        run_generate: Runs the generation stage and returns its summary; default: ``generate`` as is (the
            CLI passes one that keeps vLLM's output in the stage's ``OUT/logs/engine.log``).
        run_judge: Runs the judge on a dataset directory and returns its summary; default: ``judge_dataset``.

    Returns:
        ``{"generate": summary | None, "judge": summary | None, "filter": summary | None,
        "train": TrainResult | None, "eval": results | None, "rfd": dict | None, "report": [png paths] | None}``.
    """
    from datagen.quality.filter import filter_dataset

    outcome: dict[str, Any] = {"generate": None, "judge": None, "filter": None, "train": None, "eval": None,
                               "rfd": None, "report": None}
    if spec.generate is not None:
        log(f"generate -> {spec.generate.out}")
        outcome["generate"] = (run_generate or _generate)(spec.generate)
    if spec.judge is not None:
        log(f"judge {spec.generate.out}")
        outcome["judge"] = (run_judge or _judge)(judge_step_with_stops(spec), Path(spec.generate.out))
    if spec.filter is not None:
        log(f"filter {spec.generate.out} -> {spec.filter.out}")
        outcome["filter"] = filter_dataset(spec.generate.out, spec.filter.out, spec.filter.spec,
                                           overwrite=spec.filter.overwrite)
    if spec.train is None:
        return outcome
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
