"""Stage: ask an LLM whether each row's labels are right (``datagen judge``).

Every relation of a row (nli: the entailment and the contradiction; sts: positive, intermediate,
negative; pairs: the positive) is checked by one or more yes/no questions. Which questions a task asks
is its ``prompts/<task>/judge.jinja`` (a ``checks`` list); the questions themselves are few-shot
templates in ``prompts/judge/<question>.jinja``. A check's probability is P(yes) / (P(yes) + P(no)) read
from the first answer token's logprobs (any ``LogprobsEngine``), or one minus that when the right answer
is "no". A check marked ``either_way`` is asked a second time with premise and hypothesis swapped and keeps
the larger probability (a contradiction holds both ways). A relation's probability is the smallest of its checks;
``judge_min`` is the smallest over the row.

With ``stop_below`` bars (``datagen judge --stop-below``, or ``judge: stop_early: true`` in a pipeline, which takes
the filter's bars) the checks are asked in the template's order, and a row that falls below a check's bar is not
asked the later ones: they read NaN, which no filter bar passes. A filter whose bars reach these keeps exactly the
rows a full judge would have given it, for fewer requests; ``datagen filter`` refuses lower bars on such results.

Writes, per data shard, a sidecar ``OUT/judge/part-<i>.parquet`` keyed by ``id`` (same row order as the
shard), each carrying in its Parquet metadata the judge fingerprint and the sha256 of the data shard it
judged. A rerun keeps every part whose fingerprint and data still match, so a killed run resumes shard
by shard. The manifest's ``judge`` section lists every part with its sha256; ``datagen filter
--min-judge`` refuses results that no longer describe the data.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from datagen.config import Frozen, GenerateConfig, OpenAIConfig, RayConfig, SamplingConfig, VLLMConfig, fingerprint
from datagen.dataset.manifest import Manifest, ShardEntry, current_section
from datagen.dataset.shards import file_sha256
from datagen.dataset.writer import DatasetWriter
from datagen.engines import GenerationRequest, build_engine, require_logprobs, resolve_engine_model
from datagen.engines.base import FirstTokenLogprobs
from datagen.errors import InputError, TemplateError
from datagen.generation.prompts import call_macro, load_module, sandbox, templates_dir
from datagen.quality.score import open_scorable
from datagen.tasks import get_task

JUDGE = "judge"
JUDGE_FORMAT_VERSION = 1
YES_NO = ("yes", "no")  # the answers of a question template that declares none


class JudgeConfig(Frozen):
    """Which model judges, on which engine, with which templates.

    The judge is normally a different (larger) model than the generator: by default the embedded
    Qwen2.5-Coder-1.5B when its wheels are installed, else the 0.5B (see :func:`default_judge_model`).
    """

    model: str | None = None  # None: default_judge_model()
    engine: str = "vllm"
    templates_dir: str | None = None  # None: the packaged prompts/
    # Candidates read from the first answer token; 20 is the most vLLM and OpenAI servers return.
    top_k: int = Field(20, ge=1, le=20)
    # Check name -> P: a row whose check falls below P is not asked the checks after it (in judge.jinja's order).
    # Empty: every row is asked every check, so any bar can be picked afterwards; a filter keeps no row that fails
    # a bar anyway, so with the filter's own bars here the same rows are kept for fewer requests (nli: the
    # contradiction, asked both ways, only of the samples whose entailment passed).
    stop_below: dict[str, float] = {}
    vllm: VLLMConfig = VLLMConfig()
    openai: OpenAIConfig = OpenAIConfig()
    ray: RayConfig = RayConfig()


@dataclass(frozen=True)
class JudgeCheck:
    """One question about two fields of a row, and the answer a right row gets.

    ``either_way`` asks it a second time with premise and hypothesis swapped and keeps the larger probability:
    for a symmetric relation (a contradiction holds both ways) a small judge often sees it from one side only.
    On 500 SICK trial pairs the 1.5B's P(false) of the ``truth`` question separated contradictions with an AUC
    of 0.873 one way and 0.985 either way (bench/README.md).
    """

    name: str
    relation: str  # the output field whose label this check tests
    question: str  # template name in prompts/judge/
    premise: str
    hypothesis: str
    want: str  # one of the question's answers ("yes", "no", "false", ...): the answer a right row gets
    either_way: bool = False


@dataclass(frozen=True)
class JudgeQuestion:
    """A few-shot question with a closed set of one-word answers (``answers`` in the template; yes/no when it
    sets none), rendered once up to the pair it asks about (prefix caching)."""

    name: str
    prefix: tuple[dict[str, str], ...]
    sha256: str
    _module: object
    answers: tuple[str, ...] = YES_NO

    def render(self, premise: str, hypothesis: str) -> tuple[dict[str, str], ...]:
        text = call_macro(self._module, "user", self.name, premise, hypothesis)
        return self.prefix + ({"role": "user", "content": text},)


@dataclass(frozen=True)
class JudgePlan:
    """A task's checks and the questions they ask, plus one hash over every template involved."""

    task: str
    checks: tuple[JudgeCheck, ...]
    questions: dict[str, JudgeQuestion]
    sha256: str

    @property
    def relations(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(check.relation for check in self.checks))

    @property
    def requests_per_row(self) -> int:
        return sum(2 if check.either_way else 1 for check in self.checks)


@dataclass
class JudgeSummary:
    out: Path
    rows: int
    shards_judged: int
    shards_kept: int
    pass_rates: dict[str, float]
    seconds: float
    model: str
    skipped_checks: int = 0  # (row, check) pairs never asked: the row had fallen below an earlier stop_below bar


def default_judge_model() -> str:
    """The embedded 1.5B model when its wheels are installed, else the 0.5B default generator."""
    from datagen.models import list_models

    installed = {info.name for info in list_models() if info.installed}
    return "qwen2.5-1.5b" if "qwen2.5-1.5b" in installed else "qwen2.5-0.5b"


def load_judge_plan(task: str, directory: str | Path | None = None) -> JudgePlan:
    """Read ``prompts/<task>/judge.jinja`` and the question templates its checks name.

    Raises:
        TemplateError: a template is missing or malformed, or a check names a field the task lacks.
    """
    spec = get_task(task)
    root = templates_dir(directory)
    env = sandbox(root)
    module, plan_sha = load_module(env, root, f"{task}/judge.jinja")
    raw = getattr(module, "checks", None)
    if not isinstance(raw, (list, tuple)) or not raw:
        raise TemplateError(f"{root / task / 'judge.jinja'} must define a non-empty `checks` list")
    fields = {"anchor", *spec.fields}
    checks = []
    for item in raw:
        try:
            check = JudgeCheck(**{key: str(item[key]) for key in _REQUIRED_CHECK_KEYS},
                               either_way=_flag(item, "either_way"))
        except (KeyError, TypeError, ValueError) as exc:
            raise TemplateError(f"{root / task / 'judge.jinja'}: a check lacks {exc} or has it malformed; each needs "
                                "name, relation, question, premise, hypothesis and want, and may set either_way "
                                "(true or false)") from exc
        if {check.premise, check.hypothesis, check.relation} - fields:
            raise TemplateError(f"{root / task / 'judge.jinja'}: check '{check.name}' names a field {task} rows do "
                                f"not have (they have {sorted(fields)})")
        checks.append(check)
    questions = {name: _load_question(env, root, name) for name in dict.fromkeys(c.question for c in checks)}
    for check in checks:
        if check.want not in questions[check.question].answers:
            raise TemplateError(f"{root / task / 'judge.jinja'}: check '{check.name}' wants '{check.want}', which "
                                f"question '{check.question}' cannot answer (its answers: "
                                f"{', '.join(questions[check.question].answers)})")
    digest = fingerprint({"plan": plan_sha, "questions": {n: q.sha256 for n, q in questions.items()}})
    return JudgePlan(task, tuple(checks), questions, digest)


_REQUIRED_CHECK_KEYS = ("name", "relation", "question", "premise", "hypothesis", "want")


def _flag(item: dict, key: str) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key}={value!r}")
    return value


def load_question(name: str, directory: str | Path | None = None) -> JudgeQuestion:
    """One question template ``prompts/judge/<name>.jinja`` (benchmarks calibrate them one by one).

    Raises:
        TemplateError: missing or malformed template.
    """
    root = templates_dir(directory)
    return _load_question(sandbox(root), root, name)


def _load_question(env, root: Path, name: str) -> JudgeQuestion:
    module, sha = load_module(env, root, f"judge/{name}.jinja")
    where = root / "judge" / f"{name}.jinja"
    shots = getattr(module, "shots", None)
    if not isinstance(shots, (list, tuple)):
        raise TemplateError(f"template {where} must define a `shots` list (it may be empty)")
    prefix = [{"role": "system", "content": call_macro(module, "system", where)}]
    for shot in shots:
        prefix.append({"role": "user", "content": call_macro(module, "user", where, shot["premise"], shot["hypothesis"])})
        prefix.append({"role": "assistant", "content": call_macro(module, "assistant", where, shot)})
    answers = getattr(module, "answers", None) or YES_NO
    if not isinstance(answers, (list, tuple)) or len(answers) < 2 or not all(isinstance(a, str) and a for a in answers):
        raise TemplateError(f"template {where}: `answers` must list at least two one-word answers")
    return JudgeQuestion(name, tuple(prefix), sha, module, tuple(a.strip().lower() for a in answers))


# --- pure helpers ----------------------------------------------------------------------------------------------

REVERSED = "~reversed"  # request id suffix of an either-way check's second question (premise and hypothesis swapped)


def judge_requests(plan: JudgePlan, rows: Sequence[dict],
                   checks: Sequence[JudgeCheck] | None = None) -> list[GenerationRequest]:
    """One request per (row, check), id ``"<row id>/<check name>"``, and a second one, id
    ``"<row id>/<check name>~reversed"``, for an either-way check. ``checks``: a part of the plan's (default: all)."""
    requests = []
    for row in rows:
        for check in plan.checks if checks is None else checks:
            question = plan.questions[check.question]
            requests.append(GenerationRequest(f"{row['id']}/{check.name}",
                                              question.render(row[check.premise], row[check.hypothesis])))
            if check.either_way:
                requests.append(GenerationRequest(f"{row['id']}/{check.name}{REVERSED}",
                                                  question.render(row[check.hypothesis], row[check.premise])))
    return requests


def check_name(request_id: str) -> str:
    """The check a request of :func:`judge_requests` asks, either way round."""
    return request_id.rsplit("/", 1)[1].removesuffix(REVERSED)


def wanted_share(plan: JudgePlan, check: JudgeCheck, result: FirstTokenLogprobs) -> float | None:
    """P(the check's wanted answer) against the question's other answers; None when the judge gave none of them."""
    if result.error:
        return None
    others = [answer for answer in plan.questions[check.question].answers if answer != check.want]
    return result.share([check.want], others)


def check_probabilities(plan: JudgePlan, rows: Sequence[dict], answers: dict[str, float | None]) -> dict[str, np.ndarray]:
    """Per-row columns from the answers (request id -> P(the check's wanted answer), None when none was read).

    Returns:
        ``p_<check>``: the probability the check passes (NaN when the judge gave none of the question's answers);
        ``judge_<relation>``: the smallest of its checks; ``judge_min``: the smallest relation. NaN propagates,
        so an unanswered check never passes a threshold.
    """
    columns: dict[str, np.ndarray] = {}
    for check in plan.checks:
        values = [_either(answers.get(f"{row['id']}/{check.name}"),
                          answers.get(f"{row['id']}/{check.name}{REVERSED}") if check.either_way else None)
                  for row in rows]
        columns[f"p_{check.name}"] = np.array([math.nan if p is None else p for p in values], dtype=np.float64)
    for relation in plan.relations:
        parts = [columns[f"p_{c.name}"] for c in plan.checks if c.relation == relation]
        columns[f"judge_{relation}"] = np.min(np.stack(parts), axis=0) if rows else np.empty(0)
    relations = [columns[f"judge_{r}"] for r in plan.relations]
    columns["judge_min"] = np.min(np.stack(relations), axis=0) if rows else np.empty(0)
    return columns


def early_stops(plan: JudgePlan, stop_below: dict[str, float]) -> dict[str, float]:
    """The bars of ``stop_below`` that stop anything: a bar on the plan's last check skips no later check.

    Raises:
        InputError: a bar names no check of the plan.
    """
    names = [check.name for check in plan.checks]
    if unknown := sorted(set(stop_below) - set(names)):
        raise InputError(f"--stop-below {unknown[0]}: the {plan.task} judge asks no check of that name; use one of "
                         f"{', '.join(names)}")
    return {name: bar for name, bar in stop_below.items() if name != names[-1]}


def check_stages(plan: JudgePlan, stops: dict[str, float]) -> list[tuple[JudgeCheck, ...]]:
    """The plan's checks in order, cut after each check that has a bar: one engine call per stage."""
    stages, stage = [], []
    for check in plan.checks:
        stage.append(check)
        if check.name in stops:
            stages.append(tuple(stage))
            stage = []
    return stages + [tuple(stage)] if stage else stages


def passes_stop(answers: dict[str, float | None], row_id: str, check: JudgeCheck, bar: float) -> bool:
    """Whether a row's answer to ``check`` (either way round, if so asked) reaches ``bar``; no answer does not."""
    p = _either(answers.get(f"{row_id}/{check.name}"),
                answers.get(f"{row_id}/{check.name}{REVERSED}") if check.either_way else None)
    return p is not None and p >= bar


def ask_checks(plan: JudgePlan, rows: Sequence[dict], ask: Callable[[list[GenerationRequest]], dict[str, float | None]],
               stops: dict[str, float]) -> dict[str, float | None]:
    """Every answer the rows need, stage by stage: after a stage, rows below one of its bars leave.

    Args:
        ask: sends requests to the judge and returns request id -> P(the check's wanted answer).
    """
    answers: dict[str, float | None] = {}
    alive = list(rows)
    for stage in check_stages(plan, stops):
        if not alive:
            break
        answers |= ask(judge_requests(plan, alive, stage))
        alive = [row for row in alive
                 if all(passes_stop(answers, row["id"], c, stops[c.name]) for c in stage if c.name in stops)]
    return answers


def skipped_checks(plan: JudgePlan, stops: dict[str, float], judged: dict) -> int:
    """How many checks of one sidecar row were never asked: those after the first stop bar it fell below."""
    for position, check in enumerate(plan.checks):
        if check.name in stops and not judged[f"p_{check.name}"] >= stops[check.name]:
            return len(plan.checks) - position - 1
    return 0


def _either(forward: float | None, reversed_: float | None) -> float | None:
    """The larger of the two ways a check was asked; one that got no answer does not count."""
    read = [p for p in (forward, reversed_) if p is not None]
    return max(read) if read else None


def judge_schema(plan: JudgePlan) -> pa.Schema:
    names = [f"p_{c.name}" for c in plan.checks] + [f"judge_{r}" for r in plan.relations] + ["judge_min"]
    return pa.schema([("id", pa.string())] + [(name, pa.float64()) for name in names])


# --- the stage -------------------------------------------------------------------------------------------------

EngineFactory = Callable[[GenerateConfig, object], object]


def judge_dataset(out: str | Path, config: JudgeConfig = JudgeConfig(), *,
                  engine_factory: EngineFactory | None = None,
                  on_progress: Callable[[int, int], None] | None = None) -> JudgeSummary:
    """Judge every row of ``out`` and write ``OUT/judge/`` plus the manifest's ``judge`` section.

    Args:
        out: A datagen output dir (``datagen <task>``, ``filter``, or one made by :func:`import_rows`).
        config: Judge model, engine and templates.
        engine_factory: Builds the engine; default: the engine registry (tests inject fakes).
        on_progress: Called after each shard with (shards done, shards total).

    Raises:
        InputError: ``out`` has no manifest or no rows.
        ConfigError: the engine cannot return logprobs.
        StorageError: another run holds the lock, or writing failed.
    """
    out, started = Path(out), time.perf_counter()
    open_scorable(out)
    with DatasetWriter(out) as writer:
        manifest = writer.open_existing()
        shards = manifest.data_shards()
        if not shards:
            raise InputError(f"{out} holds no rows to judge; generate some first (datagen {manifest.task} --out {out})")
        plan = load_judge_plan(manifest.task, config.templates_dir)
        stops = early_stops(plan, config.stop_below)
        engine_config = judge_engine_config(manifest.task, config)
        model = resolve_engine_model(engine_config)
        # Stops enter the fingerprint only when set, so results judged before they existed stay current.
        judge_fp = fingerprint({"format": JUDGE_FORMAT_VERSION, "plan": plan.sha256, "model": model.name,
                                "model_sha256": model.sha256, "top_k": config.top_k,
                                **({"stops": stops} if stops else {})})
        todo = [shard for shard in shards if not _part_is_current(out, shard, judge_fp)]
        if todo:
            engine = require_logprobs((engine_factory or build_engine)(engine_config, model))
            try:
                for done, shard in enumerate(todo, 1):
                    _judge_shard(writer, shard, plan, engine, config.top_k, judge_fp, stops)
                    if on_progress:
                        on_progress(len(shards) - len(todo) + done, len(shards))
            finally:
                engine.close()
        summary = _summarise(out, shards, plan, judge_fp, model, manifest, stops)
        writer.set_section(JUDGE, summary)
        writer.finalize(status=None)
    return JudgeSummary(out, summary["rows"], len(todo), len(shards) - len(todo), summary["pass_rates"]["p50"],
                        round(time.perf_counter() - started, 2), model.name, summary["skipped_checks"])


def judge_input(dataset: str | Path, config: JudgeConfig = JudgeConfig(), *, task: str | None = None,
                out: str | Path | None = None, overwrite: bool = False, **kwargs) -> JudgeSummary:
    """Judge a datagen output dir in place, or import a .parquet/.jsonl dataset into ``out`` and judge it there.

    Raises:
        InputError: a file dataset without ``task`` and ``out``, or a directory that is not a datagen output.
    """
    dataset = Path(dataset)
    if not dataset.exists():
        raise InputError(f"{dataset} does not exist; pass a datagen output directory or a .parquet/.jsonl file")
    if dataset.is_dir():
        if out is not None and Path(out).resolve() != dataset.resolve():
            raise InputError(f"{dataset} is a datagen output, judged in place; drop --out (filter into a new "
                             "directory afterwards with `datagen filter --min-judge`)")
        return judge_dataset(dataset, config, **kwargs)
    if task is None or out is None:
        raise InputError(f"{dataset} is a file: pass --task (nli, sts, pairs, ...) and --out DIR to import and judge it")
    from datagen.dataset.imports import import_rows

    import_rows(dataset, task, out, overwrite=overwrite)
    return judge_dataset(out, config, **kwargs)


def judge_engine_config(task: str, config: JudgeConfig) -> GenerateConfig:
    """The judge's engine settings in the shape the engine registry reads (greedy, one token)."""
    return GenerateConfig(task=task, model=config.model or default_judge_model(), engine=config.engine,
                          sampling=SamplingConfig(temperature=0.0, max_tokens=1), vllm=config.vllm,
                          openai=config.openai, ray=config.ray)


def _part_path(out: Path, shard: ShardEntry) -> Path:
    return out / JUDGE / Path(shard.data.path).name


def _part_is_current(out: Path, shard: ShardEntry, judge_fp: str) -> bool:
    path = _part_path(out, shard)
    if not path.is_file() or path.is_symlink():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False  # a damaged part is judged again
    return (json.loads(meta.get(b"datagen.judge_fingerprint", b"null")) == judge_fp
            and json.loads(meta.get(b"datagen.data_sha256", b"null")) == shard.data.sha256)


def _judge_shard(writer: DatasetWriter, shard: ShardEntry, plan: JudgePlan, engine, top_k: int, judge_fp: str,
                 stops: dict[str, float]) -> None:
    rows = pq.read_table(writer.out / shard.data.path, columns=["id", "anchor", *get_task(plan.task).fields]).to_pylist()
    checks = {check.name: check for check in plan.checks}

    def ask(requests: list[GenerationRequest]) -> dict[str, float | None]:
        results = engine.first_token_logprobs(requests, top_k=top_k)
        return {r.request_id: wanted_share(plan, checks[check_name(r.request_id)], r) for r in results}

    answers = ask_checks(plan, rows, ask, stops)
    columns = check_probabilities(plan, rows, answers)
    records = [{"id": row["id"]} | {name: float(values[i]) for name, values in columns.items()}
               for i, row in enumerate(rows)]
    metadata = {"datagen.judge_fingerprint": judge_fp, "datagen.data_sha256": shard.data.sha256}
    writer.write_sidecar_part(JUDGE, shard.index, records, judge_schema(plan), metadata)


def _summarise(out: Path, shards: list[ShardEntry], plan: JudgePlan, judge_fp: str, model, manifest: Manifest,
               stops: dict[str, float]) -> dict:
    tables = [pq.read_table(_part_path(out, shard)) for shard in shards]
    table = pa.concat_tables(tables)
    relation_columns = [f"judge_{r}" for r in plan.relations] + ["judge_min"]
    pass_rates = {}
    for threshold in (0.5, 0.7, 0.9):
        pass_rates[f"p{int(threshold * 100)}"] = {
            name: round(float(np.mean(np.nan_to_num(table.column(name).to_numpy(), nan=-1.0) >= threshold)), 4)
            for name in relation_columns}
    skipped = sum(skipped_checks(plan, stops, row) for row in table.to_pylist()) if stops else 0
    unanswered = int(sum(np.isnan(table.column(f"p_{c.name}").to_numpy()).sum() for c in plan.checks)) - skipped
    return {
        "format_version": JUDGE_FORMAT_VERSION,
        "fingerprint": judge_fp,
        "model": {"name": model.name, "sha256": model.sha256},
        "templates_sha256": plan.sha256,
        "checks": [vars(check) for check in plan.checks],
        "rows": table.num_rows,
        "unanswered_checks": unanswered,
        "stop_below": stops,
        "skipped_checks": skipped,
        "pass_rates": pass_rates,
        "data_fingerprint": manifest.fingerprint,
        "data_shards": {shard.data.path: shard.data.sha256 for shard in shards},
        "files": [{"path": f"{JUDGE}/{_part_path(out, s).name}", "rows": t.num_rows,
                   "bytes": _part_path(out, s).stat().st_size, "sha256": file_sha256(_part_path(out, s))}
                  for s, t in zip(shards, tables)],
    }


def check_judge_current(out: Path, manifest: Manifest) -> dict:
    """The manifest's ``judge`` section, if it describes the data shards as they are now.

    Raises:
        InputError: never judged, judged before the data changed, or the sidecar files do not match.
    """
    return current_section(out, manifest, JUDGE, "judge")


def read_judge_part(out: Path, shard: ShardEntry) -> list[dict]:
    """The judge rows of one data shard (same order)."""
    return pq.read_table(_part_path(out, shard)).to_pylist()


def judge_summary_line(summary: JudgeSummary) -> str:
    rates = ", ".join(f"{name.removeprefix('judge_')} {rate:.0%}" for name, rate in summary.pass_rates.items())
    return (f"{summary.out}: judged {summary.rows} rows with {summary.model} ({summary.shards_judged} shards judged, "
            f"{summary.shards_kept} kept); pass at P >= 0.5: {rates}; "
            + (f"{summary.skipped_checks} checks not asked after a stop bar; " if summary.skipped_checks else "")
            + f"{summary.seconds:.1f} s")


__all__ = ["JudgeConfig", "judge_dataset", "judge_input", "load_judge_plan", "check_judge_current", "default_judge_model"]
