"""The Hugging Face dataset card of an output directory: ``OUT/README.md``.

The YAML header tells ``datasets.load_dataset(OUT)`` (and the Hub) where the splits are: the default config
is ``data/*.parquet`` as split ``train``, the ``rejects`` config is ``rejects/*.parquet``. The Markdown body
says what the columns mean, how the rows were made and what the quality stages found. The card is a view of
the manifest: :func:`render_card` is pure, and ``DatasetWriter.finalize`` rewrites the card after every stage
(generate, filter, score, judge, audit), so it never says something the manifest does not.

A ``README.md`` without :data:`MARKER` was written by someone else and is never replaced.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml

from datagen.dataset.manifest import Manifest
from datagen.dataset.shards import data_schema, rejects_schema, write_atomically
from datagen.tasks import TaskSpec, get_task

CARD = "README.md"
MARKER = "<!-- written by datagen from manifest.json; edits are replaced (delete this line to keep yours) -->"
TEMPLATE = "card.md.jinja"

# The Hub's size buckets: (rows below this, label); more than the last is "n>1T".
SIZE_CATEGORIES = (
    (10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"), (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
)
# datasets 5.2 sizes Parquet batches by a file's first row group; a shard with no rows (every seed of it
# rejected, or the rejects of a clean shard) has an empty row group and fails "BatchSize must be greater
# than 0". A fixed batch size reads such a file as empty. 1024 rows of short sentences is well under 1 MiB.
PARQUET_OPTIONS = {"batch_size": 1024}

# Columns every task's shards have (datagen.dataset.shards); a task's own outputs are described by its spec.
COLUMN_MEANINGS = {
    "id": "stable hash of task, anchor, template hash and sample index; a reject keeps the id its row would "
          "have had",
    "anchor": "the seed sentence",
    "model": "the LLM that wrote the row",
    "template_sha": "sha256 over the prompt templates",
    "mode": "`separate` (one prompt per output) or `joint` (one prompt per seed, JSON answer)",
    "seed_index": "position of the seed in the seed file",
    "sample_index": "which of the seed's samples (`sampling.n`)",
    "prompt_tokens": "prompt tokens, as the engine counted them",
    "completion_tokens": "completion tokens, as the engine counted them",
    "stage": "the output or step that failed",
    "reason": "reason code (table below)",
    "raw": "what the LLM wrote, as JSON (for a `filtered_*` reason: the scores or judge results instead)",
    "finish_reason": "the engine's finish reason (`length`: cut off by `max_tokens`)",
}


def render_card(manifest: Manifest) -> str:
    """The card of the output directory ``manifest`` describes: YAML header, :data:`MARKER`, Markdown body.

    Pure: the same manifest gives the same bytes, and nothing is read but the packaged template.
    """
    header = yaml.safe_dump(card_metadata(manifest), sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n{MARKER}\n\n{_template().render(card_context(manifest))}"


def write_card(out: str | Path, manifest: Manifest) -> bool:
    """Write ``OUT/README.md`` atomically, unless a README.md that datagen did not write is there.

    Returns:
        True if the card was written, False if the user's own README.md was left alone.

    Raises:
        StorageError: the disk is full or ``OUT`` is not writable; no partial file is left.
    """
    path = Path(out) / CARD
    if not is_replaceable(path):
        return False
    write_atomically(path, render_card(manifest).encode("utf-8"), fix="free disk space and rerun")
    return True


def is_replaceable(path: Path) -> bool:
    """True when ``path`` is absent or a card datagen wrote (it carries :data:`MARKER`)."""
    if path.is_symlink():
        return False  # someone put it there on purpose; never replace or write through a link
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return True
    except OSError:
        return False  # a folder, or unreadable: not ours to replace


def card_metadata(manifest: Manifest) -> dict[str, Any]:
    """The YAML header: configs and splits for ``datasets``, and the Hub's search fields."""
    configs = [_config(manifest, "default", "data", "the accepted rows") | {"default": True}]
    if manifest.counts.rejects:  # datasets refuses a split without rows, so a clean run has no rejects config
        configs.append(_config(manifest, "rejects", "rejects", "the rejects, with reasons"))
    return {
        "pretty_name": f"datagen {manifest.task}",
        "configs": configs,
        "task_categories": ["sentence-similarity"],
        "size_categories": [size_category(manifest.counts.rows)],
        "tags": ["datagen", "synthetic", "sentence-transformers"],
    }


def size_category(rows: int) -> str:
    """The Hub's bucket for ``rows`` (``999`` -> ``n<1K``, ``1000`` -> ``1K<n<10K``)."""
    return next((label for bound, label in SIZE_CATEGORIES if rows < bound), "n>1T")


def card_context(manifest: Manifest) -> dict[str, Any]:
    """Everything the template shows, as plain strings and rows of table cells."""
    spec = get_task(manifest.task)
    counts = manifest.counts
    total = counts.rows + counts.rejects
    return {
        "task": spec.name,
        "summary": _first_line(spec.record.__doc__).rstrip("."),
        "status": manifest.status,
        "columns": _columns(data_schema(spec.name), {name: output_meaning(spec, name) for name in spec.fields}),
        "reject_columns": _columns(rejects_schema(), {}),
        "train_columns": ["anchor", spec.positive, *([spec.hard_negative] if spec.hard_negative else [])],
        "has_rejects_config": bool(counts.rejects),
        "made": _made(manifest),
        "templates": [[name, _code(sha)] for name, sha in manifest.templates.items()],
        "counts": [["rows (split `train`)", _num(counts.rows)], ["rejects", _num(counts.rejects)],
                   ["acceptance", _pct(counts.rows / total) if total else "—"],
                   ["seeds used", _num(manifest.seeds_done())]],
        "reasons": [[_code(reason), _num(count), _pct(count / counts.rejects)]
                    for reason, count in counts.reject_reasons.items()],
        "parent": _settings(manifest.section("parent")),
        "filter": _settings(manifest.section("filter")),
        "scores": _scores(spec, manifest.section("scores")),
        "judge": _judge(manifest.section("judge")),
        "audit": _audit(manifest.section("audit")),
    }


def output_meaning(spec: TaskSpec, name: str) -> str:
    """What a generated column is, from the task spec alone: tier, meaning, role in training."""
    field = spec.record.model_fields[name]
    parts = [field.description] if field.description else []
    if len(spec.fields) > 1:
        parts.append(f"generated, tier {spec.fields.index(name) + 1} of {len(spec.fields)} (1: closest to the anchor)")
    else:
        parts.append("generated")
    parts.append("meant to change the anchor's meaning" if name in spec.meaning_changing
                 else "meant to keep the anchor's meaning")
    if name == spec.positive:
        parts.append("the positive in training")
    if name == spec.hard_negative:
        parts.append("the hard negative in training")
    return "; ".join(parts)


# --- sections ---------------------------------------------------------------------------------------------------

def _config(manifest: Manifest, name: str, folder: str, what: str) -> dict[str, Any]:
    """One ``configs`` entry. Its description carries a digest of the shards' sha256: datasets names its cache
    after the card's configs (glob patterns, not file times), so without it a dataset regenerated into the same
    OUT would load the old rows from the cache."""
    digest = hashlib.sha256(" ".join(getattr(shard, folder).sha256 for shard in manifest.shards).encode()).hexdigest()
    return {"config_name": name, "description": f"{what}; shards digest {digest[:16]}",
            "data_files": [{"split": "train", "path": f"{folder}/*.parquet"}], **PARQUET_OPTIONS}


def _columns(schema, meanings: dict[str, str]) -> list[list[str]]:
    return [[_code(f.name), str(f.type), meanings.get(f.name) or COLUMN_MEANINGS.get(f.name, "")] for f in schema]


def _made(manifest: Manifest) -> list[list[str]]:
    """How the rows were made: model, mode, templates, sampling, seeds; rows the manifest lacks are left out."""
    config, model, seeds = manifest.config, manifest.model or {}, manifest.seeds or {}
    rows = [
        ("task", _code(manifest.task)),
        ("mode", _code(config.get("mode"))),
        ("model", _code(model.get("name"))),
        ("model sha256", _code(model.get("sha256"))),
        ("engine", _code(config.get("engine"))),
        ("templates folder", _code(config.get("templates_dir"))),
        ("prompt variant", _code(config.get("prompt_variant"))),
        ("templates sha256 (all)", _code(manifest.template_sha)),
        ("sampling", _inline(config.get("sampling"))),
        ("validation", _inline(config.get("validation"))),
        # the file's name only: a card is written to be published, and a local path says nothing to its readers
        ("seed file", _code(Path(seeds["path"]).name if seeds.get("path") else None)),
        ("seeds sha256", _code(seeds.get("sha256"))),
        ("seed count", _num(seeds.get("count"))),
        ("run fingerprint", _code(manifest.fingerprint)),
        ("manifest format", _num(manifest.format_version)),
    ]
    return [[name, value] for name, value in rows if value != "—"]


def _settings(section: dict | None) -> list[list[str]] | None:
    """A flat section (``parent``, ``filter``) as rows; settings that are off (None, False) are left out."""
    if not section:
        return None
    return [[key, _value(value)] for key, value in section.items() if value is not None and value is not False and value != {}]


def _scores(spec: TaskSpec, scores: dict | None) -> dict | None:
    if not scores:
        return None
    diversity, difficulty = scores.get("diversity") or {}, scores.get("difficulty") or {}
    generated = difficulty.get("generated") or {}
    cosines, overlap = scores.get("cosines") or {}, scores.get("overlap") or {}
    return {
        "summary": [[name, value] for name, value in (
            ("encoder", _code(scores.get("encoder"))),
            ("rows scored", _num(scores.get("rows"))),
            ("tier order holds", _pct(scores.get("tier_consistency_rate"))),
            ("distinct-1 / distinct-2", _pair(diversity, "distinct_1", "distinct_2")),
            ("near-duplicate rate", _pct(diversity.get("near_duplicate_rate"))),
            ("alignment / uniformity (generated)", _pair(generated, "alignment", "uniformity")),
            ("Δ alignment / Δ uniformity vs STS-B dev", _pair(difficulty, "delta_alignment", "delta_uniformity")),
        ) if value != "—"],
        "outputs": [[_code(name), *(_num((cosines.get(name) or {}).get(q)) for q in ("mean", "p05", "p50", "p95")),
                     _num((overlap.get(name) or {}).get("p50")), _num((overlap.get(name) or {}).get("jaccard_mean"))]
                    for name in spec.fields],
        "margins": [[_code(name), *(_num((stats or {}).get(q)) for q in ("mean", "p05", "p50", "p95"))]
                    for name, stats in (scores.get("margins") or {}).items()],
    }


def _judge(judge: dict | None) -> dict | None:
    if not judge:
        return None
    model = judge.get("model") or {}
    pass_rates = judge.get("pass_rates") or {}
    thresholds = list(pass_rates)  # p50, p70, p90: P(label right) >= 0.5, 0.7, 0.9
    relations = list(next(iter(pass_rates.values()), {}))
    return {
        "summary": [[name, value] for name, value in (
            ("judge model", _code(model.get("name"))), ("judge model sha256", _code(model.get("sha256"))),
            ("judge templates sha256", _code(judge.get("templates_sha256"))), ("rows judged", _num(judge.get("rows"))),
            ("checks without an answer", _num(judge.get("unanswered_checks"))),
        ) if value != "—"],
        "thresholds": [_threshold(key) for key in thresholds],
        "rates": [[_relation(name), *(_pct(pass_rates[key].get(name)) for key in thresholds)] for name in relations],
    }


def _audit(audit: dict | None) -> dict | None:
    if not audit:
        return None
    sample = audit.get("sample") or {}
    verdicts = [[_code(name), stats] for name, stats in (audit.get("relations") or {}).items()]
    verdicts.append(["row (every relation right)", audit.get("rows")])
    return {
        "summary": [[name, value] for name, value in (
            ("rows labelled", _num(audit.get("labelled_rows"))), ("sample drawn", _num(sample.get("drawn"))),
            ("sample seed", _num(sample.get("seed"))), ("annotators", _inline(audit.get("annotators"))),
            ("labelling guide", _code(audit.get("guide"))), ("reported", _code(audit.get("reported_at"))),
        ) if value != "—"],
        "precision": [[name, *(_num((stats or {}).get(key)) for key in ("right", "wrong", "unsure")),
                       _pct((stats or {}).get("precision")), _interval((stats or {}).get("ci95"))]
                      for name, stats in verdicts],
    }


# --- cells ------------------------------------------------------------------------------------------------------

def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{round(value, 4):g}"
    return str(value)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _code(value: Any) -> str:
    return "—" if value is None else f"`{str(value).replace('`', '')}`"


def _pair(mapping: dict, first: str, second: str) -> str:
    """Two figures of ``mapping`` as ``a / b``; ``—`` when neither is there."""
    values = [mapping.get(first), mapping.get(second)]
    return "—" if values == [None, None] else " / ".join(map(_num, values))


def _interval(bounds: list[float] | None) -> str:
    return "—" if not bounds else f"[{_pct(bounds[0])}, {_pct(bounds[1])}]"


def _inline(mapping: dict | None) -> str:
    """``{"temperature": 0.8, "n": 1}`` -> ``temperature 0.8 · n 1``."""
    return "—" if not mapping else " · ".join(f"{key} {_value(value)}" for key, value in mapping.items())


def _value(value: Any) -> str:
    if isinstance(value, str):
        return _code(value)
    if isinstance(value, (dict, list)):
        return _code(json.dumps(value, separators=(",", ":")))
    return _num(value)


def _relation(column: str) -> str:
    """``judge_entailment`` -> ``entailment``; ``judge_min`` (the weakest relation) -> every relation."""
    return "row (every relation)" if column == "judge_min" else _code(column.removeprefix("judge_"))


def _threshold(key: str) -> str:
    """``p70`` -> ``P ≥ 0.7``."""
    digits = key.removeprefix("p")
    return f"P ≥ {int(digits) / 100:g}" if digits.isdigit() else key


def _first_line(doc: str | None) -> str:
    """The record's summary line, lower-cased to continue a sentence (``Anchor and ...`` -> ``anchor and ...``)."""
    line = (doc or "").strip().split("\n", 1)[0]
    return line[:1].lower() + line[1:]


def _cell(value: Any) -> str:
    """One Markdown table cell: a ``|`` or a line break would end the cell or the row."""
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


@cache
def _template() -> jinja2.Template:
    # Our own template, rendered with manifest values as data (never as template source).
    source = resources.files("datagen.dataset").joinpath(TEMPLATE).read_text(encoding="utf-8")
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True, autoescape=False)
    environment.filters["cell"] = _cell
    return environment.from_string(source)
