"""Reliability suite 3: bad seed input, through the real CLI (typer's CliRunner, in process).

An unusable file gives one ``error:`` line naming the file and the fix, exit code 2, and no output
directory. Bad rows inside a usable file become seed rejects, so every seed ends as exactly one row or
one reject. Template syntax in a seed reaches the LLM as text and is never evaluated.
"""

from __future__ import annotations

import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from datagen import models
from datagen import engines as engines_module
from datagen.generation import run as pipeline
from datagen.cli import app
from datagen.generation.prompts import load_templates, render_requests
from datagen.dataset.seeds import MAX_SEED_CHARS, read_seeds
from datagen.generation.rows import SEED_REASONS
from tests.support.fakes import FakeEngine

GOOD = ["A man is playing a guitar on a street corner.", "The bakery opens at six every morning.",
        "Two dogs are running along the beach."]


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _fifo(path):
    os.mkfifo(path)


# name, file name, how to make it, words the one-line error must contain (the fix included)
UNUSABLE = [
    ("missing", "seeds.txt", None, ["does not exist", "--seeds"]),
    ("directory", "seeds.txt", lambda p: p.mkdir(), ["is a directory", "--seeds"]),
    ("empty", "seeds.txt", lambda p: p.write_bytes(b""), ["is empty", "one sentence per line"]),
    ("bom-only", "seeds.txt", lambda p: p.write_bytes(b"\xef\xbb\xbf"), ["holds no sentences", "one sentence per line"]),
    ("blank-lines-only", "seeds.txt", lambda p: p.write_bytes(b"\r\n   \n\t\n\r\n"), ["holds no sentences", "one sentence per line"]),
    ("binary", "seeds.txt", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" * 40), ["looks binary", "UTF-8"]),
    ("utf16", "seeds.txt", lambda p: p.write_bytes("A man plays a guitar.\nDogs run.\n".encode("utf-16")), ["looks binary", "iconv -f utf-16"]),
    ("latin1", "seeds.txt", lambda p: p.write_bytes("A fine line.\nUn caf\xe9 au lait.\n".encode("latin-1")), ["not valid UTF-8 (line 2", "iconv"]),
    ("parquet-named-txt", "seeds.txt", lambda p: p.write_bytes(_parquet_bytes(pa.table({"text": GOOD}))), ["is a Parquet file", ".parquet"]),
    ("parquet-no-column", "seeds.parquet", lambda p: pq.write_table(pa.table({"sentence": GOOD}), p), ["no column 'text'", "sentence", "--column"]),
    ("parquet-corrupt", "seeds.parquet", lambda p: p.write_bytes(b"PAR1" + os.urandom(300) + b"PAR1"), ["not a readable Parquet file", "check the file"]),
    ("jsonl-all-broken", "seeds.jsonl", lambda p: p.write_text("{not json\n[1, 2\nplain text\n"), ["no usable seed", "seed_bad_json", "one JSON object per line"]),
    ("jsonl-wrong-field", "seeds.jsonl", lambda p: p.write_text("".join(json.dumps({"sentence": s}) + "\n" for s in GOOD)), ["no usable seed", "seed_missing_field", "--column"]),
    ("only-a-1mb-line", "seeds.txt", lambda p: p.write_text("word " * 200_000 + "\n"), ["no usable seed", "seed_too_long", str(MAX_SEED_CHARS)]),
    ("unsupported-suffix", "seeds.csv", lambda p: p.write_text("text\nA line.\n"), ["unsupported type '.csv'", ".txt, .jsonl or .parquet"]),
    ("fifo", "seeds.txt", _fifo, ["not a regular file", "--seeds"]),
]


@pytest.mark.parametrize("name, filename, make, words", UNUSABLE, ids=[case[0] for case in UNUSABLE])
def test_unusable_seed_file_is_one_clear_line_and_exit_2(tmp_path, name, filename, make, words):
    seeds, out = tmp_path / filename, tmp_path / "out"
    if make:
        make(seeds)
    result = CliRunner().invoke(app, ["sts", "--seeds", str(seeds), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback escaped
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error:") and str(seeds) in lines[0]
    for word in words:
        assert word in lines[0]
    assert not out.exists()


@pytest.fixture
def fake_run(monkeypatch):
    """The CLI with a scripted engine and no model, recording every request the engine receives."""
    engines: list[FakeEngine] = []

    def factory(config, model):
        engines.append(FakeEngine(config.task))
        return engines[-1]

    monkeypatch.setattr(models, "resolve_model", lambda name: models.ResolvedModel(name, name, "sha"))
    monkeypatch.setattr(pipeline, "_default_engine_factory", factory)  # the library's default
    monkeypatch.setattr(engines_module, "build_engine", lambda config, model: factory(config, model))  # the CLI's
    return engines


def _outcomes(out):
    data = pq.read_table(out / "data").to_pylist()
    rejects = pq.read_table(out / "rejects").to_pylist()
    return data, rejects


JINJA = ["{{ 7*7 }}", "{% for x in range(3) %}loop{% endfor %}", "{{ ''.__class__.__mro__[1].__subclasses__() }}",
         "{{ config.__class__.__init__.__globals__['os'] }}", "{% include '/etc/passwd' %}", "{# a comment #} text",
         "{{ self._TemplateReference__context }}", "{% raw %}{{ x }}{% endraw %}"]


def test_bad_rows_in_a_good_txt_file_are_rejects_and_nothing_is_lost(tmp_path, fake_run):
    lines = [GOOD[0], "", "   ", GOOD[1] + "\r", "A stray NUL \x00 in this line.", "x" * 1_000_000,
             "A bell \x07 rings in this line.", GOOD[0], *JINJA, GOOD[2]]
    seeds, out = tmp_path / "seeds.txt", tmp_path / "out"
    seeds.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    result = CliRunner().invoke(app, ["nli", "--seeds", str(seeds), "--out", str(out), "--mode", "separate"])
    assert result.exit_code == 0, result.output
    data, rejects = _outcomes(out)
    usable = [line for line in lines if line.strip()]
    # every non-blank line is a seed, and every seed is exactly one row or one reject
    assert sorted(r["seed_index"] for r in data + rejects) == list(range(len(usable)))
    reasons = {r["seed_index"]: r["reason"] for r in rejects if r["stage"] == "seed"}
    assert reasons == {2: "seed_has_nul", 3: "seed_too_long", 4: "seed_bad_characters", 5: "duplicate_anchor"}
    assert set(reasons.values()) <= SEED_REASONS
    assert data[0]["anchor"] == GOOD[0]  # the BOM is gone
    assert data[1]["anchor"] == GOOD[1]  # so is the CR
    # template syntax went to the engine, and into the data, as the very characters of the seed
    sent = [request.messages[-1]["content"] for request in fake_run[0].batches[0]]
    for seed in JINJA:
        assert seed in sent
    assert {row["anchor"] for row in data} >= set(JINJA)


def test_bad_rows_in_a_good_jsonl_file_are_rejects(tmp_path, fake_run):
    records = [
        json.dumps({"text": GOOD[0]}),
        "{broken json",
        json.dumps({"other": GOOD[1]}),
        json.dumps({"text": 42}),
        json.dumps({"text": None}),
        json.dumps({"text": "   "}),
        json.dumps({"text": "A lone \ud800 surrogate escape."}),
        json.dumps({"text": "A line separator\u2028inside one string."}, ensure_ascii=False),
        json.dumps([GOOD[1]]),
        json.dumps({"text": GOOD[2]}),
    ]
    seeds, out = tmp_path / "seeds.jsonl", tmp_path / "out"
    seeds.write_text("\n".join(records) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["sts", "--seeds", str(seeds), "--out", str(out), "--mode", "joint"])
    assert result.exit_code == 0, result.output
    data, rejects = _outcomes(out)
    assert sorted(r["seed_index"] for r in data + rejects) == list(range(len(records)))
    reasons = {r["seed_index"]: r["reason"] for r in rejects if r["stage"] == "seed"}
    assert reasons == {1: "seed_bad_json", 2: "seed_missing_field", 3: "seed_not_text", 4: "seed_not_text",
                       5: "seed_empty", 6: "seed_bad_characters", 8: "seed_missing_field"}
    # U+2028 is not a line break in JSONL: the record is one seed, kept whole
    assert any(row["anchor"] == "A line separator inside one string." for row in data)


def test_bad_rows_in_a_good_parquet_file_are_rejects(tmp_path, fake_run):
    seeds, out = tmp_path / "seeds.parquet", tmp_path / "out"
    pq.write_table(pa.table({"sentence": [GOOD[0], None, "", "y" * 5000, GOOD[1]]}), seeds)
    result = CliRunner().invoke(app, ["sts", "--seeds", str(seeds), "--out", str(out), "--column", "sentence"])
    assert result.exit_code == 0, result.output
    data, rejects = _outcomes(out)
    assert sorted(r["seed_index"] for r in data + rejects) == [0, 1, 2, 3, 4]
    assert {r["seed_index"]: r["reason"] for r in rejects if r["stage"] == "seed"} == {
        1: "seed_not_text", 2: "seed_empty", 3: "seed_too_long"}


def test_stray_nul_is_a_row_problem_but_utf16_is_a_file_error(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"A good line here.\nA bad \x00 line.\n")
    assert [s.problem for s in read_seeds(path)] == [None, "seed_has_nul"]


def test_uppercase_suffix_is_accepted(tmp_path):
    path = tmp_path / "SEEDS.TXT"
    path.write_text(GOOD[0] + "\n")
    assert read_seeds(path)[0].text == GOOD[0]


@pytest.mark.parametrize("task, mode", [("nli", "separate"), ("nli", "joint"), ("sts", "separate"), ("sts", "joint")])
def test_template_syntax_in_a_seed_is_never_evaluated(task, mode):
    templates = load_templates(task, mode)
    requests = render_requests(templates, task, mode, [(str(i), seed) for i, seed in enumerate(JINJA)])
    for request in requests:
        seed = JINJA[int(request.request_id.split("/")[0])]
        assert request.messages[-1]["content"] == seed
    rendered = "\n".join(m["content"] for r in requests for m in r.messages)
    assert "49" not in rendered and "looploop" not in rendered and "root:" not in rendered
    assert "<class" not in rendered and "<module" not in rendered
