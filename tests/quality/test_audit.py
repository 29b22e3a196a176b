"""The human audit: seeded sample, labels saved line by line and resumed, report, imports, the real TUI."""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from scipy.optimize import brentq
from scipy.stats import norm

from datagen.config import load_config
from datagen.errors import InputError
from datagen.generation.run import generate
from datagen.quality.audit import (
    cohen_kappa,
    AUDIT,
    LABELS_FILE,
    SAMPLE_FILE,
    AuditScreen,
    LabelRecord,
    allocate,
    append_labels,
    audit_report,
    draw_sample,
    import_labels,
    label_in_terminal,
    open_audit,
    read_labels,
    row_verdict,
    summarise_labels,
    wilson_interval,
    write_sheet,
)
from tests.support.fakes import FakeEngine
from tests.support.tmux import TmuxPane, tmux_available

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_model_preparation(monkeypatch):
    from datagen import models

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha-" + name))


def make_dataset(out: Path, seeds: Path, task: str = "nli", *, overwrite: bool = False) -> Path:
    """The real pipeline with a scripted engine: 10 rows in shards of 4, 4 and 2."""
    config = load_config(None, {"task": task, "mode": "joint", "shard_rows": 4})
    generate(config, seeds, out, overwrite=overwrite, engine_factory=lambda c, m: FakeEngine(task))
    return out


@pytest.fixture
def nli_out(tmp_path, seed_file) -> Path:
    return make_dataset(tmp_path / "nli", seed_file)


class Keys:
    """A scripted keyboard: hands out ``keys`` one by one, then "" (end of input)."""

    def __init__(self, keys: str):
        self.keys = list(keys)

    def __call__(self) -> str:
        return self.keys.pop(0) if self.keys else ""


def sit(out: Path, keys: str, **options):
    screen = io.StringIO()
    sitting = label_in_terminal(out, annotator="ann", console=Console(file=screen, width=160), read_key=Keys(keys),
                                **options)
    return sitting, screen.getvalue()


def labels_file(out: Path) -> list[LabelRecord]:
    return read_labels(out / AUDIT / LABELS_FILE)


# --- Wilson interval ---------------------------------------------------------------------------------------------

def wilson_by_root_finding(k: int, n: int) -> tuple[float, float]:
    """The Wilson bounds as the two p where the score test is exactly at z: (k/n - p)^2 = z^2 p (1-p) / n."""
    z, phat = norm.ppf(0.975), k / n
    score = lambda p: (phat - p) ** 2 - z * z * p * (1 - p) / n  # noqa: E731
    # score < 0 strictly between 0 and 1 at phat (or just inside the edge when phat is 0 or 1): a bracket
    inside = min(max(phat, 1e-12), 1 - 1e-12)
    low = 0.0 if k == 0 else brentq(score, 0.0, inside)
    high = 1.0 if k == n else brentq(score, inside, 1.0)
    return low, high


@pytest.mark.parametrize("k, n", [(45, 50), (0, 10), (10, 10), (1, 1), (7, 150), (149, 150), (500, 1000)])
def test_wilson_interval_matches_the_score_test_it_inverts(k, n):
    assert wilson_interval(k, n) == pytest.approx(wilson_by_root_finding(k, n), abs=1e-9)


def test_wilson_interval_known_value_and_edges():
    low, high = wilson_interval(45, 50)
    assert (round(low, 3), round(high, 3)) == (0.786, 0.957)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(10, 10)[0] < 1.0  # unlike Wald, all-right is not certainty
    for bad in [(-1, 5), (6, 5), (0, -1)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)


# --- sampling ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("counts, size, expected", [
    ({"a": 4, "b": 4, "c": 2}, 5, {"a": 2, "b": 2, "c": 1}),
    ({"a": 4, "b": 4, "c": 2}, 100, {"a": 4, "b": 4, "c": 2}),  # more than there is: everything
    ({"a": 1, "b": 1, "c": 1}, 2, {"a": 1, "b": 1, "c": 0}),  # ties: listed order
    ({"a": 97, "b": 2, "c": 1}, 10, {"a": 10, "b": 0, "c": 0}),
    ({"only": 7}, 3, {"only": 3}),
    ({}, 5, {}),
])  # fmt: skip
def test_allocate_is_proportional_and_sums_to_the_size(counts, size, expected):
    assert allocate(counts, size) == expected


def test_draw_sample_is_seeded_stratified_and_shuffled():
    keyed = [(f"s{shard}-{i}", f"shard{shard}") for shard, rows in enumerate((40, 40, 20)) for i in range(rows)]
    first = draw_sample(keyed, 30, seed=0)
    assert first == draw_sample(keyed, 30, seed=0) and first != draw_sample(keyed, 30, seed=1)
    assert len(set(first)) == 30
    per_shard = {s: sum(row_id.startswith(f"s{s}-") for row_id in first) for s in range(3)}
    assert per_shard == {0: 12, 1: 12, 2: 6}
    assert [row_id[:2] for row_id in first[:12]] != ["s0"] * 12  # not shown shard by shard
    assert sorted(draw_sample(keyed, 500, seed=3)) == sorted(row_id for row_id, _ in keyed)


def test_the_sample_is_drawn_once_and_saved(nli_out):
    audit = open_audit(nli_out, size=5, seed=7)
    saved = json.loads((nli_out / AUDIT / SAMPLE_FILE).read_text())
    assert saved["format_version"] == 1 and saved["ids"] == audit.sample.ids and len(audit.sample.ids) == 5
    assert (saved["seed"], saved["stratify"], saved["size"]) == (7, "shard", 5)
    shards = {}
    for row_id in audit.sample.ids:
        shards[audit.rows[row_id]["shard"]] = shards.get(audit.rows[row_id]["shard"], 0) + 1
    assert shards == {"data/part-00000.parquet": 2, "data/part-00001.parquet": 2, "data/part-00002.parquet": 1}
    assert open_audit(nli_out).sample == audit.sample == open_audit(nli_out, seed=7, size=5).sample
    with pytest.raises(InputError, match="was drawn with --seed 7, not --seed 8; drop those flags"):
        open_audit(nli_out, seed=8)


def test_stratify_by_mode_and_none(tmp_path, seed_file):
    out = make_dataset(tmp_path / "sts", seed_file, "sts")
    by_mode = open_audit(out, size=4, stratify="mode")
    assert by_mode.relations == ("positive", "intermediate", "negative")
    assert {row["mode"] for row in by_mode.rows.values()} == {"joint"}
    (out / AUDIT / SAMPLE_FILE).unlink()
    assert len(open_audit(out, size=4, stratify="none").sample.ids) == 4
    with pytest.raises(InputError, match="unknown --stratify 'seed'"):
        open_audit(out, stratify="seed")
    with pytest.raises(InputError, match="draws no rows"):
        open_audit(out, size=0)


def test_a_sample_of_other_data_is_refused(tmp_path, seed_file):
    out = make_dataset(tmp_path / "nli", seed_file)
    open_audit(out, size=3)
    more = tmp_path / "more.txt"
    more.write_text(seed_file.read_text() + "A new seed about a quiet harbour at dawn.\n")
    make_dataset(out, more, overwrite=True)  # regenerated from other seeds: not the rows the sample was drawn from
    with pytest.raises(InputError, match="changed since .* was drawn; delete that file"):
        open_audit(out)


# --- labelling and resuming --------------------------------------------------------------------------------------

def test_labels_are_saved_per_row_and_a_new_sitting_resumes(nli_out):
    sitting, screen = sit(nli_out, "rwur" + "w" + "q", size=5)  # two rows, then half a row, then quit
    assert (sitting.saved, sitting.labelled, sitting.total, sitting.finished) == (2, 2, 5, False)
    assert "docs/labelling.md" in screen and "entailment" in screen and "contradiction" in screen
    records = labels_file(nli_out)
    ids = open_audit(nli_out).sample.ids
    assert [r.id for r in records] == ids[:2]
    assert [r.labels for r in records] == [{"entailment": "right", "contradiction": "wrong"},
                                           {"entailment": "unsure", "contradiction": "right"}]
    assert all(r.annotator == "ann" and r.source == "terminal" and r.time for r in records)

    sitting, screen = sit(nli_out, "rrrr")
    assert "row 3 of 5" in screen and "row 1 of 5" not in screen
    assert [r.id for r in labels_file(nli_out)] == ids[:4]
    sitting, _ = sit(nli_out, "ww")
    assert sitting.finished and sitting.labelled == 5
    sitting, _ = sit(nli_out, "")
    assert sitting.finished and sitting.saved == 0


def test_back_undoes_a_key_or_reopens_the_previous_row(nli_out):
    sit(nli_out, "rr" + "w" + "b" + "b" + "ww" + "rr" + "q", size=5)
    # row 1 right/right; row 2: "w", back (undo), back (to row 1), relabel row 1 wrong/wrong; row 2 right/right
    records = labels_file(nli_out)
    ids = open_audit(nli_out).sample.ids
    assert [(r.id, r.labels["entailment"]) for r in records] == [(ids[0], "right"), (ids[0], "wrong"),
                                                                 (ids[1], "right")]
    audit = open_audit(nli_out)
    assert audit.labels[ids[0]].labels == {"entailment": "wrong", "contradiction": "wrong"}  # the last line wins
    assert audit.next_unlabelled() == 2


def test_a_line_torn_by_a_crash_loses_no_earlier_label(nli_out):
    sit(nli_out, "rrww", size=5)
    path = nli_out / AUDIT / LABELS_FILE
    with open(path, "ab") as handle:
        handle.write(b'{"format_version":1,"id":"half a li')  # a crash mid-append
    sit(nli_out, "ru")
    records = labels_file(nli_out)
    assert len(records) == 3 and records[-1].labels == {"entailment": "right", "contradiction": "unsure"}
    assert path.read_bytes().endswith(b"\n")


def test_screen_shows_the_row_the_relations_and_the_keys(nli_out):
    audit = open_audit(nli_out, size=3)
    console = Console(file=io.StringIO(), width=200)
    screen = AuditScreen(audit, annotator="ann", console=console, read_key=Keys(""))
    console.print(screen.screen(0, ["right"]))
    text = console.file.getvalue()
    row = audit.rows[audit.sample.ids[0]]
    for expected in (row["anchor"], row["entailment"], row["contradiction"], "right", "r / w / u ?",
                     "b back", "q quit", "docs/labelling.md", "row 1 of 3", "annotator ann"):
        assert expected in text


# --- report ------------------------------------------------------------------------------------------------------

def test_row_verdict_and_precision_by_hand():
    records = [LabelRecord(id=str(i), labels=dict(zip(("entailment", "contradiction"), pair)), annotator="a", time="t")
               for i, pair in enumerate([("right", "right"), ("right", "wrong"), ("unsure", "right"),
                                         ("wrong", "unsure"), ("right", "right")])]
    assert [row_verdict(r.labels) for r in records] == ["right", "wrong", "unsure", "wrong", "right"]
    summary = summarise_labels(("entailment", "contradiction"), records)
    ent = summary["relations"]["entailment"]
    assert (ent["right"], ent["wrong"], ent["unsure"], ent["precision"]) == (3, 1, 1, 0.75)
    assert ent["ci95"] == [round(v, 4) for v in wilson_interval(3, 4)]
    rows = summary["rows"]
    assert (rows["right"], rows["wrong"], rows["unsure"], rows["judged"], rows["precision"]) == (2, 2, 1, 4, 0.5)
    assert summarise_labels(("entailment",), [])["rows"] == {"right": 0, "wrong": 0, "unsure": 0, "judged": 0,
                                                           "precision": None, "ci95": None}


def test_report_is_recorded_in_the_manifest_section(nli_out):
    before = json.loads((nli_out / "manifest.json").read_text())
    with pytest.raises(InputError, match="has no audit sample yet; run `datagen audit"):
        audit_report(nli_out)
    open_audit(nli_out, size=6)
    with pytest.raises(InputError, match="is labelled yet; run `datagen audit"):
        audit_report(nli_out)
    sit(nli_out, "rr" "rw" "ur" "rr")
    section = audit_report(nli_out)
    after = json.loads((nli_out / "manifest.json").read_text())
    assert after["audit"] == section
    assert {k: v for k, v in after.items() if k != "audit"} == before  # nothing else touched
    assert section["labelled_rows"] == 4 and section["annotators"] == {"ann": 4}
    assert section["sample"]["drawn"] == 6 and section["guide"] == "docs/labelling.md"
    assert section["relations"]["entailment"] == {"right": 3, "wrong": 0, "unsure": 1, "judged": 3,
                                                      "precision": 1.0, "ci95": [0.4385, 1.0]}
    assert section["relations"]["contradiction"]["precision"] == 0.75
    assert section["rows"]["precision"] == round(2 / 3, 4) and section["rows"]["unsure"] == 1
    assert not (nli_out / ".datagen.lock").exists()


def test_cohen_kappa_matches_the_textbook_example():
    pairs = [("right", "right")] * 20 + [("right", "wrong")] * 5 + [("wrong", "right")] * 10 + [("wrong", "wrong")] * 15
    assert cohen_kappa(pairs) == 0.4  # observed 0.7, chance 0.5
    assert cohen_kappa([("right", "right")] * 3) is None and cohen_kappa([]) is None  # no variation: undefined


def test_report_compares_two_annotators_of_the_same_rows(nli_out, tmp_path):
    ids = open_audit(nli_out, size=6).sample.ids
    sit(nli_out, "rr" "rw" "rr" "wr")  # ann: rows 0-3
    second = tmp_path / "bea.jsonl"
    second.write_text("".join(json.dumps({"id": ids[i], "entailment": e, "contradiction": c, "annotator": "bea"}) + "\n"
                              for i, (e, c) in enumerate([("right", "right"), ("right", "right"), ("wrong", "right")])))
    import_labels(nli_out, second)
    section = audit_report(nli_out)
    agreed = section["agreement"]
    assert agreed["annotators"] == ["ann", "bea"]
    assert agreed["relations"]["entailment"]["rows"] == 3 and agreed["relations"]["entailment"]["agreement"] == round(2 / 3, 4)
    # rows: ann says right, wrong, right; bea right, right, wrong -> strict precision 1 of 3
    assert agreed["rows"]["agreement"] == round(1 / 3, 4)
    assert agreed["rows"]["strict"]["right"] == 1 and agreed["rows"]["strict"]["wrong"] == 2
    assert section["labelled_rows"] == 4 and section["annotators"] == {"ann": 1, "bea": 3}  # the latest label wins
    assert json.loads((nli_out / "manifest.json").read_text())["audit"]["agreement"] == agreed
    printed = subprocess.run([sys.executable, "-m", "datagen.cli", "audit", str(nli_out), "--report"],
                             capture_output=True, text=True, timeout=120).stdout
    assert "agreement of ann and bea" in printed
    assert "row (all right)      3 rows  agree  33.3%  kappa -0.500  strict 0.333 [0.061, 0.792]" in printed


# --- import ------------------------------------------------------------------------------------------------------

def test_import_csv_and_jsonl_labels(nli_out, tmp_path):
    ids = open_audit(nli_out, size=6).sample.ids
    sheet = tmp_path / "labels.csv"
    with open(sheet, "w", newline="", encoding="utf-8-sig") as handle:  # a spreadsheet's BOM
        writer = csv.writer(handle)
        writer.writerow(["id", "entailment", "contradiction", "annotator", "note"])
        writer.writerow([ids[0], "Right", "w", "bea", "fine"])
        writer.writerow([ids[1], "", "", "", "not done yet"])
        writer.writerow([ids[2], "unsure", "RIGHT", "", ""])
    assert import_labels(nli_out, sheet, annotator="cli") == (2, 1)
    lines = tmp_path / "more.jsonl"
    lines.write_text(json.dumps({"id": ids[3], "entailment": "wrong", "contradiction": "right"}) + "\n\n"
                     + json.dumps({"id": ids[0], "labels": {"entailment": "right", "contradiction": "right"},
                                   "annotator": "cy", "time": "2024-05-01T10:00:00+00:00"}) + "\n")
    assert import_labels(nli_out, lines) == (2, 0)
    audit = open_audit(nli_out)
    assert audit.labels[ids[0]].labels == {"entailment": "right", "contradiction": "right"}
    assert audit.labels[ids[0]].annotator == "cy" and audit.labels[ids[0]].time.startswith("2024-05-01")
    assert audit.labels[ids[2]].annotator == "cli" and audit.labels[ids[2]].source == "import:labels.csv"
    assert ids[1] not in audit.labels and len(labels_file(nli_out)) == 4


def test_sheet_round_trip(nli_out, tmp_path):
    sit(nli_out, "rw", size=4)
    sheet = tmp_path / "sheet.csv"
    assert write_sheet(nli_out, sheet) == 4
    rows = list(csv.DictReader(sheet.open(encoding="utf-8")))
    assert [r["id"] for r in rows] == open_audit(nli_out).sample.ids
    assert (rows[0]["entailment"], rows[0]["contradiction"], rows[1]["entailment"]) == ("right", "wrong", "")
    assert rows[1]["entailment_text"] == open_audit(nli_out).rows[rows[1]["id"]]["entailment"]
    for row in rows[1:]:
        row["entailment"], row["contradiction"] = "r", "u"
    with open(sheet, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert import_labels(nli_out, sheet) == (4, 0)
    assert open_audit(nli_out).next_unlabelled() is None


@pytest.mark.parametrize("name, content, message", [
    ("a.csv", "row,entailment,contradiction\nx,right,right\n", r"a.csv:1: no 'id' column; the first line must name"),
    ("a.csv", "id,entailment\n{id0},right\n", r"a.csv:1: no 'contradiction' column"),
    ("a.csv", "id,entailment,contradiction\n{id0},right,right\nnot-an-id,right,wrong\n",
     r"a.csv:3: id 'not-an-id' is not in the audit sample of .*--sheet FILE.csv"),
    ("a.csv", "id,entailment,contradiction\n{id0},right,yes\n",
     r"a.csv:2: unknown value 'yes' for contradiction; use right, wrong or unsure"),
    ("a.csv", "id,entailment,contradiction\n{id0},right,\n", r"a.csv:2: no contradiction label; fill in"),
    ("a.jsonl", '{{"id": "{id0}", "entailment": "right", "contradiction": "right"}}\n{{"entailment": "right"}}\n',
     r"a.jsonl:2: no id; every line needs the id"),
    ("a.jsonl", '{{"id": "{id0}", "entailment": "right", "contradiction": "maybe"}}\n',
     r"a.jsonl:1: unknown value 'maybe' for contradiction"),
    ("a.jsonl", '{{"id": "{id0}", "entailment": "right"}}\n', r"a.jsonl:1: no contradiction label"),
    ("a.jsonl", "not json\n", r"a.jsonl:1: not JSON"),
    ("a.txt", "id\n", r"a.txt is neither .csv nor .jsonl"),
])  # fmt: skip
def test_bad_label_files_get_one_line_errors_and_add_nothing(nli_out, tmp_path, name, content, message):
    ids = open_audit(nli_out, size=4).sample.ids
    source = tmp_path / name
    source.write_text(content.format(id0=ids[0]), encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        import_labels(nli_out, source)
    assert "\n" not in str(caught.value)
    assert labels_file(nli_out) == []


def test_import_refuses_a_missing_or_non_utf8_file(nli_out, tmp_path):
    with pytest.raises(InputError, match="label file .*missing.csv does not exist"):
        import_labels(nli_out, tmp_path / "missing.csv")
    (tmp_path / "latin.csv").write_bytes(b"id,entailment,contradiction\nx,\xe9,r\n")
    with pytest.raises(InputError, match="is not UTF-8 text; save it as UTF-8"):
        import_labels(nli_out, tmp_path / "latin.csv")


def test_cli_bad_import_is_one_red_line_and_exit_2(nli_out, tmp_path, datagen_cli):
    bad = tmp_path / "bad.csv"
    bad.write_text("identifier,entailment,contradiction\n")
    result = subprocess.run([*datagen_cli, "audit", str(nli_out), "--import", str(bad)], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and "bad.csv:1" in lines[0]
    no_tty = subprocess.run([*datagen_cli, "audit", str(nli_out)], capture_output=True, text=True, timeout=120,
                            cwd=REPO, stdin=subprocess.DEVNULL)
    assert no_tty.returncode == 2 and "stdin is not one; run it in a terminal" in no_tty.stderr


def test_append_labels_writes_whole_lines(tmp_path):
    path = tmp_path / "audit" / LABELS_FILE
    records = [LabelRecord(id=str(i), labels={"positive": "right"}, annotator="a", time="t") for i in range(3)]
    append_labels(path, records[:2])
    append_labels(path, records[2:])
    assert read_labels(path) == records and path.read_text().count("\n") == 3


# --- the real terminal -------------------------------------------------------------------------------------------

@pytest.mark.skipif(not tmux_available(), reason="needs tmux: apt-get install -y tmux")
def test_real_terminal_ui_under_tmux_labels_quits_resumes_and_reports(nli_out, tmp_path_factory):
    """`datagen audit OUT` in a real pseudo-terminal (tmux): keys in, screen read back."""
    out = shlex.quote(str(nli_out))

    def command(user: str = "") -> str:
        return (f"cd {shlex.quote(str(REPO))} && env -u COLUMNS -u LINES {user} {shlex.quote(sys.executable)} "
                "-m datagen.cli audit")

    with TmuxPane(tmp_path_factory.mktemp("tmux")) as pane:
        pane.run(f"{command()} {out} --sample 6 --annotator tess")
        screen = pane.wait_for("row 1 of 6 · 0 labelled · annotator tess")
        assert "docs/labelling.md" in screen and "entailment" in screen and "contradiction" in screen
        pane.keys("r", "w")
        pane.wait_for("saved row 1: entailment right, contradiction wrong")
        pane.keys("u", "r")
        pane.wait_for("saved row 2: entailment unsure, contradiction right")
        pane.keys("w", "b", "r", "r")  # a slip taken back with b
        pane.wait_for("saved row 3: entailment right, contradiction right")
        pane.keys("q")
        pane.wait_for("saved 3 rows this sitting; 3 of 6 labelled")

        pane.clear()
        pane.run(f"{command('USER=ria')} {out}")  # a second annotator, named by $USER
        screen = pane.wait_for("row 4 of 6 · 3 labelled · annotator ria")
        pane.keys("w", "w", "q")
        pane.wait_for("saved 1 row this sitting; 4 of 6 labelled")

        pane.clear()
        pane.run(f"{command()} {out} --report")
        screen = pane.wait_for("row (all right)")
    assert "audit of 4 of 6 sampled rows (nli; annotators: ria 1, tess 3; guide docs/labelling.md)" in screen
    assert "row (all right)      1      2       1      0.333  [0.061, 0.792]" in screen
    records = labels_file(nli_out)
    assert [r.labels["entailment"] for r in records] == ["right", "unsure", "right", "wrong"]
    section = json.loads((nli_out / "manifest.json").read_text())["audit"]
    assert section["relations"]["entailment"]["precision"] == round(2 / 3, 4)
    assert section["relations"]["contradiction"]["precision"] == 0.5
    assert section["rows"]["right"] == 1 and section["rows"]["unsure"] == 1
    assert not math.isnan(section["rows"]["ci95"][0])
