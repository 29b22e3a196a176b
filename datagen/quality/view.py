"""Look at a dataset in a browser: one self-contained HTML page (``datagen view OUT --html FILE``).

Sits after the other quality stages: it reads the data and rejects shards plus the sidecars they wrote
(``OUT/scores/``, ``OUT/judge/``) and the manifest's stage summaries, and writes nothing inside ``OUT``.
The page holds:

- the summary (task, model, mode, status, counts) and every stage summary of the manifest;
- the reject reasons of the whole dataset as a bar chart (CSS bars);
- a table of kept rows with their score and judge columns (joined by ``id``), and a table of rejects with
  their raw LLM text; both sortable (click a header), filterable (text search; tier order holding or not;
  reject reason) and paginated in the page.

At most ``max_rows`` rows and ``max_rejects`` rejects are embedded, a seeded random sample kept in data
order, and the page says so. The data rides in a ``<script type="application/json">`` tag with ``<``,
``>`` and ``&`` written as ``\\u003c`` etc., so no LLM text can close the tag; the page's script renders
every text with ``textContent``, and its Content-Security-Policy lets only that one script (by sha256)
run and nothing load from outside the file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from markupsafe import Markup

from datagen.dataset.manifest import FileEntry, Manifest, current_section
from datagen.dataset.shards import shard_path, write_atomically
from datagen.errors import DatagenError, InputError, StorageError
from datagen.quality.judge import JUDGE
from datagen.quality.score import SCORES, open_scorable
from datagen.tasks import get_task

TEMPLATE = "view.html.jinja"
# 5,000 sts rows with their scores are ~2.5 MB of JSON: the page opens in about a second and a table of
# that size is still fast to sort and search in plain JavaScript. Enough to spot patterns; the rest stays in
# the shards.
MAX_ROWS = 5000
# Rejects carry raw LLM text (up to RAW_CHARS each), so fewer of them fit the same budget.
MAX_REJECTS = 2000
# A reply cut off at max_tokens can be several KB; the first 2,000 characters show what went wrong.
RAW_CHARS = 2000
FLOAT_DIGITS = 4
ROW_COLUMNS = ("id", "anchor")  # then the task's outputs, then PROVENANCE
PROVENANCE = ("seed_index", "sample_index")
REJECT_COLUMNS = ("id", "anchor", "stage", "reason", "finish_reason", "raw", "seed_index")
CODE_COLUMNS = frozenset({"stage", "reason", "finish_reason"})  # short codes: shown narrow, not as sentences
# Manifest keys that say nothing to a reader of the page (checksums, file lists, full configs).
SECTION_NOISE = frozenset({"files", "data_shards", "checks", "fingerprint", "data_fingerprint", "templates_sha256",
                           "sha256", "format_version", "reject_reasons"})


@dataclass(frozen=True)
class Sidecar:
    """A quality stage's per-row results, joined into the rows table by ``id``.

    Args:
        folder: ``OUT/<folder>/part-<i>.parquet``, one part per data shard; also its manifest section.
        command: The ``datagen`` command that writes it (named in the page when it is missing or stale).
        shown: Which of its columns the table shows (the rest stays in the sidecar).
    """

    folder: str
    command: str
    shown: Callable[[str], bool]


SIDECARS = (
    Sidecar(SCORES, "score", lambda name: name.startswith("cos_") or name in ("margin", "tier_ok", "overlap")),
    Sidecar(JUDGE, "judge", lambda name: name.startswith("judge_")),
)


@dataclass(frozen=True)
class ViewSummary:
    """What :func:`write_view` wrote."""

    html: Path
    bytes: int
    rows: int  # embedded in the page
    rows_total: int
    rejects: int
    rejects_total: int
    seed: int
    joined: tuple[str, ...]  # sidecars whose columns are in the table
    notes: tuple[str, ...]  # why a sidecar is not


def write_view(out: str | Path, html_path: str | Path, *, max_rows: int = MAX_ROWS, max_rejects: int = MAX_REJECTS,
               seed: int = 0) -> ViewSummary:
    """Write one self-contained HTML page showing the dataset in ``out``.

    Args:
        out: A datagen output dir (``datagen <task>``, ``filter``, or an imported one), scored and judged or not.
        html_path: The page to write (replaced atomically); its folder is created if missing.
        max_rows: Most kept rows embedded; more makes the file larger and the page slower to open.
        max_rejects: Most rejects embedded (each with up to ``RAW_CHARS`` of raw LLM text).
        seed: Seed of the random sample, so the same command shows the same rows.

    Returns:
        The path, its size, and how many rows and rejects of how many are on the page.

    Raises:
        InputError: ``out`` is not a datagen output dir, ``html_path`` is a directory, or a limit is negative.
        StorageError: a shard listed in the manifest cannot be read, or the page cannot be written.
    """
    out, html_path = Path(out), Path(html_path)
    check_view_args(html_path, max_rows, max_rejects)
    manifest = open_scorable(out)
    data = view_data(out, manifest, max_rows=max_rows, max_rejects=max_rejects, seed=seed)
    page = render_view(data).encode("utf-8")
    write_atomically(html_path, page, fix="choose another --html path or free disk space")
    sampled = data["sampling"]
    return ViewSummary(html_path, len(page), sampled["rows_shown"], sampled["rows_total"], sampled["rejects_shown"],
                       sampled["rejects_total"], seed, tuple(data["joined"]), tuple(data["notes"]))


def check_view_args(html_path: Path, max_rows: int, max_rejects: int) -> None:
    """Refuse a page path or limits that cannot work, before anything is read.

    Raises:
        InputError: ``html_path`` is a directory, or a limit is negative.
    """
    if html_path.is_dir():
        raise InputError(f"--html {html_path} is a directory; pass a file path such as {html_path / 'view.html'}")
    if max_rows < 0 or max_rejects < 0:
        raise InputError(f"--max-rows {max_rows} / --max-rejects {max_rejects}: pass 0 or more rows to embed")


def view_data(out: Path, manifest: Manifest, *, max_rows: int = MAX_ROWS, max_rejects: int = MAX_REJECTS,
              seed: int = 0) -> dict:
    """Everything the page shows, as plain JSON-ready data (the unit tests read this).

    Returns:
        ``summary``, ``sampling`` (totals, how many shown, seed), ``sections`` (stage summaries as
        ``[key, text]`` lines), ``reasons`` (reason -> count over the whole dataset), ``rows`` and ``rejects``
        (each ``{"columns": [{"name", "kind", "group"}], "data": [[...], ...]}``), ``joined`` and ``notes``.
    """
    rows, joined, notes = rows_table(out, manifest, max_rows, seed)
    rejects = rejects_table(out, manifest, max_rejects, seed)
    counts = manifest.counts
    return {
        "summary": summary_fields(out, manifest),
        "sampling": {"rows_total": counts.rows, "rows_shown": len(rows["data"]), "rejects_total": counts.rejects,
                     "rejects_shown": len(rejects["data"]), "seed": seed},
        "sections": stage_sections(manifest),
        "reasons": dict(counts.reject_reasons),
        "rows": rows,
        "rejects": rejects,
        "joined": joined,
        "notes": notes,
    }


def rows_table(out: Path, manifest: Manifest, limit: int, seed: int) -> tuple[dict, list[str], list[str]]:
    """The sampled kept rows with the shown columns of every current sidecar joined by ``id``.

    Returns:
        The table (``columns``, ``data``), the sidecars joined, and a note per sidecar left out saying why.
    """
    names = [*ROW_COLUMNS, *get_task(manifest.task).fields, *PROVENANCE]
    rows, parts = sample_table(out, [shard.data for shard in manifest.shards], limit, seed_stream(seed, "rows"), names)
    texts = [name for name in rows.column_names if name not in PROVENANCE]
    columns = [column_info(name, rows.schema.field(name).type, "data") for name in texts]
    values = [rows.column(name).to_pylist() for name in texts]
    joined, notes = [], []
    for sidecar in SIDECARS:
        try:
            extra = join_sidecar(out, manifest, sidecar, rows.column("id").to_pylist(), parts)
        except InputError as exc:
            notes.append(f"{sidecar.folder}: {exc}")
            continue
        joined.append(sidecar.folder)
        columns += [{"name": name, "kind": kind, "group": sidecar.folder} for name, kind in extra]
        values += list(extra.values())
    # Provenance last: the scores and judge columns then sit next to the sentences they describe.
    for name in (name for name in rows.column_names if name in PROVENANCE):
        columns.append(column_info(name, rows.schema.field(name).type, "provenance"))
        values.append(rows.column(name).to_pylist())
    return {"columns": columns, "data": transpose(values, rows.num_rows)}, joined, notes


def rejects_table(out: Path, manifest: Manifest, limit: int, seed: int) -> dict:
    """The sampled rejects, their raw LLM text made readable (see :func:`readable_raw`)."""
    rejects, _ = sample_table(out, [shard.rejects for shard in manifest.shards], limit, seed_stream(seed, "rejects"),
                              list(REJECT_COLUMNS))
    values = [rejects.column(name).to_pylist() for name in rejects.column_names]
    if "raw" in rejects.column_names:
        values[rejects.column_names.index("raw")] = [readable_raw(raw) for raw in rejects.column("raw").to_pylist()]
    return {"columns": [column_info(name, rejects.schema.field(name).type, "data") for name in rejects.column_names],
            "data": transpose(values, rejects.num_rows)}


# --- sampling -----------------------------------------------------------------------------------------------

def seed_stream(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per table, so the rows sample does not change when rejects are added."""
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha256(stream.encode()).digest()[:4], "little")])


def sample_positions(total: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """``limit`` distinct positions of ``range(total)`` drawn at random, sorted; all of them when they fit."""
    if total <= limit:
        return np.arange(total)
    return np.sort(rng.choice(total, size=limit, replace=False))


def sample_table(out: Path, entries: list[FileEntry], limit: int, rng: np.random.Generator,
                 columns: list[str]) -> tuple[pa.Table, dict[str, int]]:
    """The sampled rows of the shards ``entries`` (manifest order), reading only the shards a pick falls in.

    Returns:
        The rows in data order, and the shard file name of each part -> how many rows it gave (the sidecar
        parts to join).

    Raises:
        StorageError: a listed shard is missing or unreadable.
    """
    sizes = np.array([entry.rows for entry in entries], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])  # (shards + 1,)
    picks = sample_positions(int(starts[-1]), limit, rng)
    shard_of = np.searchsorted(starts, picks, side="right") - 1  # (picks,)
    tables, parts = [], {}
    for index in np.unique(shard_of):
        entry = entries[index]
        local = picks[shard_of == index] - starts[index]
        table = read_shard(out, entry, columns).take(pa.array(local))
        tables.append(table)
        parts[Path(entry.path).name] = table.num_rows
    if not tables:
        return empty_table(out, entries, columns), parts
    return pa.concat_tables(tables), parts


def read_shard(out: Path, entry: FileEntry, columns: list[str]) -> pa.Table:
    """``columns`` of one shard the manifest lists (those it lacks are left out).

    Raises:
        StorageError: the file is missing or is not Parquet.
    """
    path = shard_path(out, entry.path)
    try:
        names = pq.read_schema(path).names
        return pq.read_table(path, columns=[name for name in columns if name in names])
    except (OSError, pa.ArrowInvalid) as exc:
        raise StorageError(f"cannot read {path} ({exc}); the dataset is damaged — rerun the command that wrote "
                           f"{out} to regenerate it") from exc


def empty_table(out: Path, entries: list[FileEntry], columns: list[str]) -> pa.Table:
    """No rows, but the columns of the first shard (so the page still has its headers)."""
    for entry in entries:
        path = shard_path(out, entry.path)
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise StorageError(f"cannot read {path} ({exc}); the dataset is damaged — rerun the command that wrote "
                               f"{out} to regenerate it") from exc
        return pa.schema([schema.field(name) for name in columns if name in schema.names]).empty_table()
    return pa.schema([(name, pa.string()) for name in columns]).empty_table()


# --- joining sidecars -----------------------------------------------------------------------------------------

def join_sidecar(out: Path, manifest: Manifest, sidecar: Sidecar, ids: list[str],
                 parts: dict[str, int]) -> dict[tuple[str, str], list]:
    """The shown columns of ``sidecar`` for the rows ``ids``, in that order (None where a row has none).

    Args:
        parts: Data shard file names the rows came from; only those sidecar parts are read.

    Returns:
        ``(column, kind) -> values``, one value per id.

    Raises:
        InputError: the stage never ran, or its results no longer match the data (the message says the command).
    """
    current_section(out, manifest, sidecar.folder, sidecar.command)
    wanted = pa.array(ids, pa.string())
    found: dict[str, dict] = {}
    names: list[tuple[str, str]] = []
    for name in parts:
        table = pq.read_table(out / sidecar.folder / name)
        names = [(n, column_kind(table.schema.field(n).type)) for n in table.column_names if sidecar.shown(n)]
        table = table.filter(pc.is_in(table.column("id"), value_set=wanted))
        for row in table.select(["id", *(n for n, _ in names)]).to_pylist():
            found[row["id"]] = row
    return {(name, kind): [found.get(row_id, {}).get(name) for row_id in ids] for name, kind in names}


# --- what the page shows ----------------------------------------------------------------------------------------

def column_info(name: str, arrow_type: pa.DataType, group: str) -> dict:
    kind = "raw" if name == "raw" else "code" if name in CODE_COLUMNS else column_kind(arrow_type)
    return {"name": name, "kind": kind, "group": group}


def column_kind(arrow_type: pa.DataType) -> str:
    """How the page renders and sorts a column: text, int, num (a float: 3 decimals) or bool."""
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "num"
    return "text"


def transpose(columns: list[list], count: int) -> list[list]:
    """Column lists -> row lists, floats rounded (NaN and inf become null: JSON has neither)."""
    return [[plain(column[i]) for column in columns] for i in range(count)]


def plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, FLOAT_DIGITS) if math.isfinite(value) else None
    return value


def readable_raw(raw: str | None, limit: int = RAW_CHARS) -> str:
    """A reject's raw LLM text for reading: the ``{"output name": "text"}`` JSON it is stored as, one
    ``name: text`` per line; cut at ``limit`` characters."""
    if raw is None:
        return ""
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and parsed:
        raw = "\n".join(f"{key}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
                        for key, value in parsed.items())
    if len(raw) > limit:
        return raw[:limit] + f" … [{len(raw) - limit:,} more characters]"
    return raw


def summary_fields(out: Path, manifest: Manifest) -> dict:
    counts = manifest.counts
    total = counts.rows + counts.rejects
    return {
        "out": str(out),
        "task": manifest.task,
        "model": (manifest.model or {}).get("name"),
        "mode": manifest.config.get("mode"),
        "status": manifest.status,
        "shards": len(manifest.shards),
        "rows": counts.rows,
        "rejects": counts.rejects,
        "acceptance_rate": round(counts.rows / total, 4) if total else None,
        "fingerprint": manifest.fingerprint[:16],
    }


def stage_sections(manifest: Manifest) -> dict[str, list[list[str]]]:
    """Every stage summary of the manifest (``scores``, ``judge``, ``audit``, ``filter``, ``parent``, ...) as
    ``[dotted key, text]`` lines; a dict of plain values (quantiles, pass rates) becomes one line."""
    return {key: flatten(value) for key, value in (manifest.model_extra or {}).items() if isinstance(value, dict)}


def flatten(value: dict, prefix: str = "") -> list[list[str]]:
    lines = []
    for key, item in value.items():
        if key in SECTION_NOISE:
            continue
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item and not all(isinstance(v, (str, int, float, bool, type(None)))
                                                       for v in item.values()):
            lines += flatten(item, name + ".")
        elif isinstance(item, dict):
            shown = {k: v for k, v in item.items() if k not in SECTION_NOISE}
            lines.append([name, " · ".join(f"{k} {show(v)}" for k, v in shown.items()) or "—"])
        else:
            lines.append([name, show(item)])
    return lines


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return "—" if value is None else str(value)


# --- the page -----------------------------------------------------------------------------------------------

def embed_json(data: Any) -> str:
    """``data`` as JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left, so
    ``</script>`` or ``<!--`` in LLM text cannot end the tag (``JSON.parse`` reads ``\\u003c`` back as ``<``)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def csp_hash(script: str) -> str:
    """The Content-Security-Policy source that lets exactly this inline script run."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def render_view(data: dict) -> str:
    """The page: ``view.html.jinja`` (package data next to this module) with ``data`` embedded.

    Raises:
        DatagenError: the packaged template is missing (a broken install).
    """
    try:
        source = resources.files("datagen.quality").joinpath(TEMPLATE).read_text(encoding="utf-8")
    except OSError as exc:
        raise DatagenError(f"the page template {TEMPLATE} is missing from datagen.quality; reinstall datagen") from exc
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["csp_hash"] = lambda script: Markup(csp_hash(script))  # quotes and base64 only: nothing to escape
    return env.from_string(source).render(title=Path(data["summary"]["out"]).name or data["summary"]["out"],
                                          data_json=Markup(embed_json(data)))


def view_summary_line(summary: ViewSummary) -> str:
    """One line for the CLI: where, how big, what was sampled, which sidecars were joined."""
    def part(shown: int, total: int, noun: str) -> str:
        return f"all {total:,} {noun}" if shown == total else f"{shown:,} of {total:,} {noun}"

    sample = f"{part(summary.rows, summary.rows_total, 'rows')}, {part(summary.rejects, summary.rejects_total, 'rejects')}"
    if (summary.rows, summary.rejects) != (summary.rows_total, summary.rejects_total):
        sample += f" (random sample, seed {summary.seed})"
    joined = ", ".join(summary.joined) if summary.joined else "no sidecars"
    return f"wrote {summary.html} ({summary.bytes / 1e6:.1f} MB): {sample}; joined {joined}"


__all__ = ["MAX_REJECTS", "MAX_ROWS", "ViewSummary", "view_data", "view_summary_line", "write_view"]
