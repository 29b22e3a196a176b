"""``datagen view``: what the page embeds (sampling, sidecar joins, escaping), then the page in a real browser.

Outputs are written through ``DatasetWriter`` (the one writer of every stage) from synthetic rows, with
score and judge sidecars laid out as ``datagen score`` / ``datagen judge`` write them; one test joins the
judge sidecar that the real judge stage wrote (scripted engine). The browser tests run headless Debian
Chromium through Playwright (``make install`` installs both).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datagen.cli import app
from datagen.dataset.manifest import Manifest
from datagen.dataset.writer import DatasetWriter
from datagen.errors import InputError
from datagen.quality.judge import JUDGE, judge_schema, load_judge_plan
from datagen.quality.score import SCORES, scores_schema
from datagen.quality.view import (
    csp_hash,
    embed_json,
    readable_raw,
    sample_positions,
    seed_stream,
    view_data,
    write_view,
)

SCRIPT_TAG = "<script>alert(1)</script>"
IMG_TAG = '<img src=x onerror="document.body.dataset.pwned=1">'
HOSTILE_ANCHOR = f"Hostile {SCRIPT_TAG} anchor {IMG_TAG} ends </script><!-- here & now."
HOSTILE_RAW = json.dumps({"joint": f"Sure! {IMG_TAG} </script><script>document.body.dataset.pwned=2</script>"})
REASONS = {"copies_anchor": 25, "too_short": 10, "refusal": 5}


# --- synthetic outputs --------------------------------------------------------------------------------------

def synthetic_rows(count: int, start: int = 0) -> list[dict]:
    """sts rows; every 7th row's tier order fails (cos_neg above cos_int); rows 3, 40 and 77 mention zebras."""
    rows = []
    for i in range(start, start + count):
        anchor = HOSTILE_ANCHOR if i == 5 else f"Row {i}: a {'zebra' if i in (3, 40, 77) else 'horse'} grazes."
        rows.append({"id": f"row{i:06d}", "anchor": anchor, "positive": f"Positive sentence {i}.",
                     "intermediate": f"Middle {i}.", "negative": f"Negative sentence {i}.", "model": "synthetic",
                     "template_sha": "t", "mode": "joint", "seed_index": i, "sample_index": 0,
                     "prompt_tokens": 100, "completion_tokens": 20})
    return rows


def synthetic_rejects(reasons: dict[str, int], start: int = 0) -> list[dict]:
    rejects = []
    for reason, count in reasons.items():
        for _ in range(count):
            i = start + len(rejects)
            raw = HOSTILE_RAW if i == 0 else json.dumps({"joint": f"Reply {i} ({reason})."})
            rejects.append({"id": f"rej{i:06d}", "anchor": f"Seed {i} that was rejected.", "stage": "joint",
                            "reason": reason, "raw": raw, "finish_reason": "stop", "model": "synthetic",
                            "template_sha": "t", "mode": "joint", "seed_index": 10**6 + i, "sample_index": 0})
    return rejects


def score_of(row_id: str) -> dict:
    i = int(row_id.removeprefix("row"))
    cos_int, cos_neg = 0.4, (0.7 if i % 7 == 0 else 0.2)
    cos_pos = 0.5 + (i % 50) / 100
    margin = min(cos_pos - cos_int, cos_int - cos_neg)
    return {"id": row_id, "cos_pos": cos_pos, "cos_int": cos_int, "cos_neg": cos_neg,
            "margin_pos_int": cos_pos - cos_int, "margin_int_neg": cos_int - cos_neg, "margin": margin,
            "tier_ok": margin > 0, "jaccard_pos": 0.5, "jaccard_int": 0.3, "jaccard_neg": 0.1,
            "edit_pos": 0.5, "edit_int": 0.3, "edit_neg": 0.1, "overlap": 0.5}


def judge_of(row_id: str, plan) -> dict:
    i = int(row_id.removeprefix("row"))
    p = math.nan if i == 2 else (i % 10) / 10  # row 2: the judge gave neither yes nor no
    return {"id": row_id} | {f"p_{c.name}": p for c in plan.checks} | {f"judge_{r}": p for r in plan.relations} | {
        "judge_min": p}


def synthetic_output(out: Path, *, rows: int, reasons: dict[str, int], shard_rows: int = 40, scored: bool = True,
                     judged: bool = True) -> Path:
    """An sts output dir of ``rows`` rows and ``reasons`` rejects over shards of ``shard_rows`` rows (+ rejects)."""
    all_rows, all_rejects = synthetic_rows(rows), synthetic_rejects(reasons)
    shards = max(1, math.ceil(rows / shard_rows))
    per_shard = math.ceil(len(all_rejects) / shards)
    manifest = Manifest(task="sts", fingerprint="f" * 64, config={"mode": "joint", "shard_rows": shard_rows},
                        model={"name": "synthetic-0.5b", "sha256": "s"})
    with DatasetWriter(out) as writer:
        writer.begin(manifest)
        seed = 0
        for index in range(shards):
            part_rows = all_rows[index * shard_rows:(index + 1) * shard_rows]
            part_rejects = all_rejects[index * per_shard:(index + 1) * per_shard]
            writer.write_shard(index, (seed, seed + len(part_rows) + len(part_rejects)), part_rows, part_rejects)
            seed += len(part_rows) + len(part_rejects)
        writer.finalize()
    if scored:
        add_sidecar(out, SCORES, scores_schema("sts"), score_of, {"tier_consistency_rate": 0.857})
    if judged:
        plan = load_judge_plan("sts")
        add_sidecar(out, JUDGE, judge_schema(plan), lambda row_id: judge_of(row_id, plan), {"rows": rows})
    return out


def add_sidecar(out: Path, name: str, schema, values, summary: dict) -> None:
    """A sidecar laid out as the stage writes it, but each part in *reverse* row order: the view must join by id."""
    with DatasetWriter(out) as writer:
        manifest = writer.open_existing()
        shards = manifest.data_shards()
        parts = []
        for shard in shards:
            ids = [row["id"] for row in read_ids(out, shard.data.path)]
            parts.append((shard.index, [values(row_id) for row_id in reversed(ids)]))
        written = writer.replace_sidecar(name, parts, schema, {})
        writer.set_section(name, summary | {
            "data_fingerprint": manifest.fingerprint, "data_shards": {s.data.path: s.data.sha256 for s in shards},
            "files": [entry.model_dump() for entry in written]})
        writer.finalize(status=None)


def read_ids(out: Path, relative: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out / relative, columns=["id"]).to_pylist()


@pytest.fixture
def small(tmp_path) -> Path:
    """250 rows (3 pages in the page), 40 rejects of three reasons, scored and judged."""
    return synthetic_output(tmp_path / "sts", rows=250, reasons=REASONS)


def table(data: dict, key: str) -> list[dict]:
    """The embedded rows of ``key`` as dicts."""
    names = [column["name"] for column in data[key]["columns"]]
    return [dict(zip(names, row)) for row in data[key]["data"]]


def page_data(html: str) -> dict:
    """The JSON the page embeds, read back as the page's own JSON.parse reads it."""
    match = re.search(r'<script type="application/json" id="datagen-data">(.*?)</script>', html, re.DOTALL)
    return json.loads(match.group(1))


def make_data(out: Path, **kwargs) -> dict:
    from datagen.quality.score import open_scorable

    return view_data(out, open_scorable(out), **kwargs)


# --- sampling ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("total, limit", [(0, 5), (5, 5), (4, 0), (10, 3), (100_000, 5_000)])
def test_sample_positions_are_distinct_sorted_and_seeded(total, limit):
    picks = sample_positions(total, limit, seed_stream(0, "rows"))
    assert len(picks) == min(total, limit) and len(set(picks.tolist())) == len(picks)
    assert picks.tolist() == sorted(picks.tolist()) and all(0 <= p < total for p in picks.tolist())
    assert picks.tolist() == sample_positions(total, limit, seed_stream(0, "rows")).tolist()
    if total > limit > 0:
        assert picks.tolist() != sample_positions(total, limit, seed_stream(1, "rows")).tolist()


def test_view_samples_rows_and_rejects_by_seed_in_data_order(tmp_path):
    out = synthetic_output(tmp_path / "sts", rows=100, reasons={"too_short": 30}, shard_rows=16, scored=False,
                           judged=False)
    data = make_data(out, max_rows=7, max_rejects=4, seed=3)
    ids = [row["id"] for row in table(data, "rows")]
    assert len(ids) == 7 and ids == sorted(ids) and len({int(i[3:]) // 16 for i in ids}) > 1  # several shards
    assert data["sampling"] == {"rows_total": 100, "rows_shown": 7, "rejects_total": 30, "rejects_shown": 4, "seed": 3}
    assert [r["id"] for r in table(make_data(out, max_rows=7, max_rejects=4, seed=3), "rows")] == ids
    assert [r["id"] for r in table(make_data(out, max_rows=7, max_rejects=4, seed=4), "rows")] != ids
    assert [r["id"] for r in table(make_data(out, max_rows=7, max_rejects=9, seed=3), "rows")] == ids  # own stream
    rows_by_id = {row["id"]: row for row in synthetic_rows(100)}
    assert all(row["anchor"] == rows_by_id[row["id"]]["anchor"] for row in table(data, "rows"))
    everything = make_data(out, max_rows=1000, max_rejects=1000)
    assert len(everything["rows"]["data"]) == 100 and len(everything["rejects"]["data"]) == 30


# --- joins ------------------------------------------------------------------------------------------------------

def test_scores_and_judge_are_joined_by_id(small):
    data = make_data(small)
    assert data["joined"] == [SCORES, JUDGE] and data["notes"] == []
    groups = {column["name"]: (column["group"], column["kind"]) for column in data["rows"]["columns"]}
    assert groups["cos_pos"] == ("scores", "num") and groups["tier_ok"] == ("scores", "bool")
    assert groups["judge_min"] == ("judge", "num") and groups["anchor"] == ("data", "text")
    assert [name for name, _ in list(groups.items())[-2:]] == ["seed_index", "sample_index"]  # provenance last
    assert groups["seed_index"] == ("provenance", "int")
    assert "jaccard_pos" not in groups and "p_positive_entailed" not in groups  # kept in the sidecar only
    plan = load_judge_plan("sts")
    for row in table(data, "rows"):
        scores, judged = score_of(row["id"]), judge_of(row["id"], plan)
        assert row["cos_pos"] == pytest.approx(scores["cos_pos"]) and row["tier_ok"] == scores["tier_ok"]
        assert row["margin"] == pytest.approx(round(scores["margin"], 4))
        assert row["judge_min"] == (None if math.isnan(judged["judge_min"]) else pytest.approx(judged["judge_min"]))
    assert sum(not row["tier_ok"] for row in table(data, "rows")) == len(range(0, 250, 7))


def test_a_missing_or_stale_sidecar_is_left_out_with_a_note_saying_the_fix(tmp_path):
    out = synthetic_output(tmp_path / "sts", rows=20, reasons={"too_short": 2}, judged=False)
    part = out / SCORES / "part-00000.parquet"
    part.write_bytes(part.read_bytes() + b"x")  # changed after `datagen score` recorded its sha256
    data = make_data(out)
    assert data["joined"] == []
    assert any(n.startswith("scores:") and f"datagen score {out}" in n for n in data["notes"])
    assert any(n.startswith("judge:") and f"datagen judge {out}" in n for n in data["notes"])
    assert {c["group"] for c in data["rows"]["columns"]} == {"data", "provenance"}


def test_judge_sidecar_written_by_the_judge_stage_joins(tmp_path, seed_file, monkeypatch):
    from datagen import models
    from tests.quality.test_judge import judge, make_nli

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha-" + name))
    out = make_nli(tmp_path / "nli", seed_file)
    judge(out)
    rows = {row["anchor"]: row for row in table(make_data(out), "rows")}
    assert len(rows) == 10
    assert rows["Two dogs are running along the beach."]["judge_min"] == pytest.approx(0.2)
    assert rows["The bakery opens at six every morning."]["judge_min"] == pytest.approx(0.8)
    assert rows["A girl is painting a picture of a lighthouse."]["judge_min"] is None  # NaN: no answer


# --- what is embedded -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [SCRIPT_TAG, "</script><script>x()</script>", "<!-- <script>", IMG_TAG,
                                  "a & b &amp; c", "\u2028 line separator", "Łódź 東京 🙂", ""])
def test_embedded_json_has_no_markup_characters_and_reads_back(text):
    embedded = embed_json({"text": text, "nested": [text]})
    assert not set("<>&") & set(embedded)
    assert json.loads(embedded) == {"text": text, "nested": [text]}


def test_page_holds_llm_text_only_as_escaped_json(small, tmp_path):
    html_path = tmp_path / "page" / "view.html"  # a folder that does not exist yet
    summary = write_view(small, html_path)
    html = html_path.read_text(encoding="utf-8")
    assert SCRIPT_TAG not in html and "<img" not in html and "<!-- here" not in html
    assert html.count("</script>") == 2  # the data tag and the page's own script
    data = page_data(html)
    assert any(row["anchor"] == HOSTILE_ANCHOR for row in table(data, "rows"))
    assert any(IMG_TAG in row["raw"] for row in table(data, "rejects"))
    assert summary.rows == summary.rows_total == 250 and summary.rejects == summary.rejects_total == 40
    assert summary.bytes == html_path.stat().st_size and summary.joined == (SCORES, JUDGE)


def test_content_security_policy_allows_exactly_the_page_script(small, tmp_path):
    write_view(small, tmp_path / "view.html")
    html = (tmp_path / "view.html").read_text(encoding="utf-8")
    script = html.rsplit("<script>", 1)[1].split("</script>", 1)[0]
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
    assert f"script-src {csp_hash(script)};" in policy and "default-src 'none'" in policy


@pytest.mark.parametrize("raw, expected", [
    (json.dumps({"joint": '{"positive": "A."}'}), 'joint: {"positive": "A."}'),
    (json.dumps({"positive": "A.", "negative": "B."}), "positive: A.\nnegative: B."),
    (json.dumps({"scores": {"tier_ok": False}}), 'scores: {"tier_ok": false}'),
    ("not json <b>", "not json <b>"),
    (None, ""),
    ("x" * 2005, "x" * 2000 + " … [5 more characters]"),
])
def test_readable_raw(raw, expected):
    assert readable_raw(raw) == expected


def test_stage_summaries_are_flattened_without_checksums(small):
    sections = make_data(small)["sections"]
    assert set(sections) == {SCORES, JUDGE}
    assert ["tier_consistency_rate", "0.857"] in sections[SCORES]
    assert not any(key.startswith(("files", "data_shards", "data_fingerprint")) for key, _ in sections[SCORES])


def test_an_output_without_rows_or_without_rejects_still_has_its_tables(tmp_path):
    no_rows = make_data(synthetic_output(tmp_path / "rejects_only", rows=0, reasons={"refusal": 3}))
    assert no_rows["rows"]["data"] == [] and [c["name"] for c in no_rows["rows"]["columns"]][:2] == ["id", "anchor"]
    assert len(no_rows["rejects"]["data"]) == 3
    no_rejects = make_data(synthetic_output(tmp_path / "rows_only", rows=5, reasons={}, judged=False), max_rows=0)
    assert no_rejects["rejects"]["data"] == [] and no_rejects["reasons"] == {}
    assert no_rejects["rows"]["data"] == [] and no_rejects["sampling"]["rows_total"] == 5
    assert "raw" in [c["name"] for c in no_rejects["rejects"]["columns"]]


# --- bad input ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make_out, html_name, message", [
    (lambda p: p, "view.html", "is not a datagen output (no manifest.json)"),
    (lambda p: p / "missing", "view.html", "is not a datagen output"),
    (None, ".", "is a directory; pass a file path"),
])
def test_bad_input_is_a_typed_error_saying_the_fix(tmp_path, small, make_out, html_name, message):
    out = small if make_out is None else make_out(tmp_path / "empty")
    (tmp_path / "empty").mkdir(exist_ok=True)
    with pytest.raises(InputError, match=re.escape(message)):
        write_view(out, tmp_path / html_name)


def test_negative_limits_are_refused(small, tmp_path):
    with pytest.raises(InputError, match="0 or more"):
        write_view(small, tmp_path / "view.html", max_rows=-1)


def test_cli_writes_the_page_and_prints_one_line(small, tmp_path):
    result = CliRunner().invoke(app, ["view", str(small), "--html", str(tmp_path / "v.html"), "--max-rows", "10",
                                      "--seed", "2"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "10 of 250 rows" in lines[0] and "seed 2" in lines[0]
    assert page_data((tmp_path / "v.html").read_text(encoding="utf-8"))["sampling"]["rows_shown"] == 10
    bad = CliRunner().invoke(app, ["view", str(tmp_path), "--html", str(tmp_path / "w.html")])
    assert bad.exit_code == 2 and "error:" in bad.output and "no manifest.json" in bad.output


# --- 100k rows --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """100,000 scored rows and 10,000 rejects in shards of 10,000 rows (about 10 s to write)."""
    return synthetic_output(tmp_path_factory.mktemp("big") / "sts", rows=100_000,
                            reasons={"copies_anchor": 6_000, "too_short": 4_000}, shard_rows=10_000, judged=False)


@pytest.fixture(scope="module")
def big_page(big, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big_page") / "view.html"
    write_view(big, path)
    return path


def test_100k_rows_embed_a_bounded_sample_and_say_so(big_page):
    size = big_page.stat().st_size
    assert size < 4_000_000, f"{size:,} bytes"  # 5,000 rows + 2,000 rejects, not 110,000
    data = page_data(big_page.read_text(encoding="utf-8"))
    assert data["sampling"] == {"rows_total": 100_000, "rows_shown": 5_000, "rejects_total": 10_000,
                                "rejects_shown": 2_000, "seed": 0}
    assert data["reasons"] == {"copies_anchor": 6_000, "too_short": 4_000}  # the chart counts every reject
    shards = {int(row["id"][3:]) // 10_000 for row in table(data, "rows")}
    assert shards == set(range(10))  # a sample of the whole dataset, not its head


# --- in a real browser ------------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing; run `make install` (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser):
    """Open a page file; collect script errors, dialogs and any request that leaves the file."""
    pages = []

    def load(path: Path):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.problems = []
        page.on("pageerror", lambda error: page.problems.append(f"script error: {error}"))
        page.on("dialog", lambda dialog: (page.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        page.on("request", lambda request: request.url.startswith("file://") or
                page.problems.append(f"request: {request.url}"))
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        pages.append(page)
        return page

    yield load
    for page in pages:
        page.close()


def column_texts(page, panel: str, column: str) -> list[str]:
    """Texts of one column's cells on the shown page of a table."""
    index = page.eval_on_selector_all(f"#{panel}-table thead tr:last-child th",
                                      f"(ths) => ths.findIndex((th) => th.dataset.column === {json.dumps(column)})")
    assert index >= 0, column
    return page.eval_on_selector_all(f"#{panel}-table tbody tr", f"(trs) => trs.map((tr) => tr.cells[{index}].textContent)")


def status(page, panel: str) -> str:
    return page.text_content(f"#{panel}-status")


@pytest.mark.browser
def test_page_in_chromium_counts_filters_sorts_and_shows_llm_text_as_text(small, tmp_path, open_page):
    write_view(small, tmp_path / "view.html")
    page = open_page(tmp_path / "view.html")

    # Counts: summary cards, reason bars, the sample note, the first page of rows.
    assert page.text_content("[data-key=rows] .value") == "250"
    assert page.text_content("[data-key=rejects] .value") == "40"
    bars = {page.get_attribute(f".bar-row >> nth={i}", "data-reason"): page.text_content(f".bar-row >> nth={i} >> .count")
            for i in range(page.locator(".bar-row").count())}
    assert bars == {reason: str(count) for reason, count in REASONS.items()}
    assert page.text_content("#sampling") == "Showing all 250 rows and all 40 rejects."
    assert status(page, "rows") == "250 of 250 rows match" and page.locator("#rows-table tbody tr").count() == 100
    assert page.text_content("#rows-page") == "page 1 of 3"
    page.click("#rows-panel button.page:has-text('next')")
    assert page.text_content("#rows-page") == "page 2 of 3" and column_texts(page, "rows", "seed_index")[0] == "100"

    # Untrusted text shows as text: no element, no script ran.
    page.fill("#rows-search", "alert(1)")
    assert status(page, "rows") == "1 of 250 rows match"
    assert column_texts(page, "rows", "anchor") == [HOSTILE_ANCHOR]
    assert page.locator("img").count() == 0 and page.get_attribute("body", "data-pwned") is None

    # Text search, then the tier-order filter on top of it.
    page.fill("#rows-search", "zebra")
    assert status(page, "rows") == "3 of 250 rows match"
    assert all("zebra" in text for text in column_texts(page, "rows", "anchor"))
    page.select_option("#rows-tier", "fails")
    assert column_texts(page, "rows", "seed_index") == ["77"]  # 77 = 7 * 11: the one zebra whose tiers fail
    page.fill("#rows-search", "")
    assert status(page, "rows") == f"{len(range(0, 250, 7))} of 250 rows match"
    assert set(column_texts(page, "rows", "tier_ok")) == {"✗ no"}
    page.select_option("#rows-tier", "")

    # Sorting: a click sorts ascending, a second click descending; nulls stay last.
    page.click("#rows-table th[data-column=cos_pos]")
    values = [float(v) for v in column_texts(page, "rows", "cos_pos")]
    assert values == sorted(values) and values[0] == 0.5
    page.click("#rows-table th[data-column=cos_pos]")
    assert float(column_texts(page, "rows", "cos_pos")[0]) == pytest.approx(0.99)
    page.click("#rows-table th[data-column=judge_min]")
    assert column_texts(page, "rows", "judge_min")[0] == "0.000"  # a float column keeps its decimals at 0
    page.click("#rows-table th[data-column=judge_min]")
    assert column_texts(page, "rows", "judge_min")[0] == "0.900"
    page.click("#rows-panel button.page:has-text('next')")
    page.click("#rows-panel button.page:has-text('next')")
    assert column_texts(page, "rows", "judge_min")[-1] == "—"  # row 2's unanswered judge, last either way

    # Rejects: the reason filter, a click on a bar, and raw LLM text shown as text.
    page.click("#rejects-tab")
    assert page.is_hidden("#rows-panel") and status(page, "rejects") == "40 of 40 rejects match"
    page.select_option("#rejects-reason", "too_short")
    assert status(page, "rejects") == "10 of 40 rejects match"
    assert set(column_texts(page, "rejects", "reason")) == {"too_short"}
    page.click(".bar-row[data-reason=copies_anchor]")
    assert page.input_value("#rejects-reason") == "copies_anchor" and status(page, "rejects") == "25 of 40 rejects match"
    page.fill("#rejects-search", "onerror")
    assert column_texts(page, "rejects", "raw") == [readable_raw(HOSTILE_RAW)]
    assert page.locator("img").count() == 0 and page.get_attribute("body", "data-pwned") is None

    page.fill("#rejects-search", "")
    page.select_option("#rejects-reason", "")
    shot = tmp_path / "view.png"
    page.screenshot(path=str(shot), full_page=True)
    blob = shot.read_bytes()
    assert blob.startswith(b"\x89PNG") and len(blob) > 30_000 and len(zlib.compress(blob)) > 20_000
    assert page.problems == []


@pytest.mark.browser
def test_page_of_an_output_without_rows_in_chromium(tmp_path, open_page):
    out = synthetic_output(tmp_path / "sts", rows=0, reasons={"refusal": 3}, scored=False, judged=False)
    write_view(out, tmp_path / "view.html")
    page = open_page(tmp_path / "view.html")
    assert status(page, "rows") == "0 of 0 rows match" and page.text_content("#rows-table tbody") == "No rows match."
    assert page.text_content("#notes").count("run `datagen") == 2 and page.problems == []


@pytest.mark.browser
def test_100k_page_in_chromium_says_it_is_a_sample_and_pages_through_it(big_page, tmp_path, open_page):
    page = open_page(big_page)
    assert page.text_content("#sampling") == ("Showing 5,000 of 100,000 rows and 2,000 of 10,000 rejects: a random "
                                              "sample, seed 0 (datagen view --max-rows / --max-rejects / --seed).")
    assert page.text_content("[data-key=rows] .value") == "100,000"
    assert status(page, "rows") == "5,000 of 5,000 rows match" and page.text_content("#rows-page") == "page 1 of 50"
    assert page.locator("#rows-table tbody tr").count() == 100
    page.fill("#rows-search", "zebra")  # rows 3, 40 and 77 are in the sample only if drawn
    assert int(page.get_attribute("#rows-status", "data-matching")) <= 3
    page.fill("#rows-search", "")
    page.click("#rows-table th[data-column=margin]")
    margins = [float(v) for v in column_texts(page, "rows", "margin")]
    assert margins == sorted(margins)
    page.screenshot(path=str(tmp_path / "big.png"))
    assert (tmp_path / "big.png").stat().st_size > 30_000 and page.problems == []
