"""Reliability suite 2: bad LLM output never escapes as an exception or a bad row.

``tests/data/bad_completions.jsonl`` is a hand-written corpus of malformed completions. Each line names
the task, the mode (``separate``: the text is one template's answer, the other templates answer cleanly;
``joint``: the text is the whole JSON answer), the expected outcome (``row`` or a reason code) and why.
Every case goes through the real parse + validate path (``validate_seed``) and then through the real shard
writer, so a row or reject that cannot be stored fails here too. Property tests add random text and bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from datagen.config import GenerateConfig
from datagen.engines.base import Completion
from datagen.dataset.seeds import Seed
from datagen.dataset.shards import data_schema, rejects_schema, write_shard
from datagen.tasks import output_fields
from datagen.generation.rows import REJECT_REASONS, RunContext, ShardResult, validate_seed

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_completions.jsonl"
CASES = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]

ANCHOR = "A young woman is riding a red bicycle along the river path."
# Clean answers of the templates a separate-mode case does not replace.
CLEAN = {
    "positive": "Along the river path, a young woman rides a red bike.",
    "intermediate": "A woman rides a bike.",
    "negative": "An old man is fishing from a wooden boat.",
    "entailment": "A woman is cycling beside a river.",
    "contradiction": "A young man is sleeping on a sofa at home.",
}


def completion_text(case: dict) -> str:
    """The completion as an engine would hand it over; raw bytes are decoded as the case says."""
    if "text_hex" in case:
        return bytes.fromhex(case["text_hex"]).decode("utf-8", errors=case["decode"])
    return case["text"]


def completions_for(task: str, mode: str, text: str, *, field: str | None = None, finish: str = "stop",
                    error: str | None = None) -> dict[str, list[Completion]]:
    """Per-template completions for one seed: ``text`` in ``field`` (or joint), clean text elsewhere."""
    if mode == "joint":
        return {"joint": [Completion("0/joint", text, finish, 50, 20, error=error)]}
    completions = {name: [Completion(f"0/{name}", CLEAN[name], "stop", 50, 10)] for name in output_fields(task)}
    completions[field] = [Completion(f"0/{field}", text, finish, 50, 10, error=error)]
    return completions


def judge(task: str, mode: str, anchor: str, completions: dict[str, list[Completion]]) -> ShardResult:
    config = GenerateConfig(task=task, mode=mode)
    ctx = RunContext(task, mode, "test-model", "t" * 64)
    result = ShardResult()
    validate_seed(Seed(0, anchor), completions, config, ctx, set(), result)
    return result


def store(out: Path, task: str, result: ShardResult) -> tuple[list[dict], list[dict]]:
    """Write the outcome with the real shard writer and read it back."""
    data = write_shard(out, "data", 0, result.rows, data_schema(task), {})
    rejects = write_shard(out, "rejects", 0, result.rejects, rejects_schema(), {})
    return (pq.read_table(out / data.path).to_pylist(), pq.read_table(out / rejects.path).to_pylist())


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_completion_gives_row_or_specific_reject(case, tmp_path):
    task, mode = case["task"], case["mode"]
    anchor = case.get("anchor", ANCHOR)
    text = completion_text(case)
    completions = completions_for(task, mode, text, field=case.get("field"),
                                  finish=case.get("finish_reason", "stop"), error=case.get("error"))
    result = judge(task, mode, anchor, completions)
    rows, rejects = store(tmp_path, task, result)

    assert len(rows) + len(rejects) == 1, "every seed sample ends as exactly one row or one reject"
    if case["expect"] == "row":
        assert rows, f"rejected as {rejects[0]['reason']}: {case['why']}"
        expected = dict(case.get("values", {}))
        if "value" in case:
            expected[case["field"]] = case["value"]
        for name, value in expected.items():
            assert rows[0][name] == value
        for name in output_fields(task):
            assert "\n" not in rows[0][name] and rows[0][name] == rows[0][name].strip()
    else:
        assert rejects, f"accepted, expected {case['expect']}: {case['why']}"
        assert rejects[0]["reason"] == case["expect"]
        assert case["expect"] in REJECT_REASONS
        # The raw LLM text survives, exactly, in the reject (nothing the LLM wrote is lost).
        template = "joint" if mode == "joint" else case["field"]
        assert json.loads(rejects[0]["raw"])[template] == text


def test_corpus_covers_both_tasks_modes_and_the_issue_list():
    assert len(CASES) >= 50
    assert len({case["id"] for case in CASES}) == len(CASES)
    combos = {(case["task"], case["mode"]) for case in CASES}
    assert combos == {("nli", "separate"), ("nli", "joint"), ("sts", "separate"), ("sts", "joint")}
    reasons = {case["expect"] for case in CASES}
    wanted = {"row", "empty", "truncated", "unparseable_json", "wrong_keys", "wrong_value_type", "multiple_lines",
              "meta_text", "refusal", "copies_anchor", "too_long", "bad_characters", "wrong_language", "repetition"}
    assert wanted <= reasons
    assert all(case["expect"] in REJECT_REASONS | {"row"} for case in CASES)
    assert sum(case["expect"] == "row" for case in CASES) >= 10  # and each says why it truly is a row
    assert all(case["why"] for case in CASES)


# ---------------------------------------------------------------- properties over random input

ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=())  # surrogates too
# Random code points rarely hit the characters that matter; this alphabet hits them often.
TRICKY = st.sampled_from(list("Aa z.,:-*#>`\"'“”{}[]\n\t\x00\u202e\u200b\ufffd\ud800\udcff一Я") + ["Hypothesis:", "I'm sorry", "```"])
ANY_TEXT = st.text(alphabet=ANY_CHAR, max_size=600) | st.lists(TRICKY, max_size=60).map("".join)
SETUPS = [("nli", "separate", "entailment"), ("nli", "separate", "contradiction"), ("nli", "joint", None),
          ("sts", "separate", "positive"), ("sts", "separate", "intermediate"), ("sts", "separate", "negative"),
          ("sts", "joint", None)]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_total_outcome(task: str, result: ShardResult) -> None:
    """One row or one reject with a known reason, and both are writable Parquet rows."""
    import pyarrow as pa

    assert len(result.rows) + len(result.rejects) == 1
    for reject in result.rejects:
        assert reject["reason"] in REJECT_REASONS
    for row in result.rows:
        for name in output_fields(task):
            assert row[name] and "\n" not in row[name]
    pa.Table.from_pylist(result.rows, schema=data_schema(task))
    pa.Table.from_pylist(result.rejects, schema=rejects_schema())


@PROPERTY
@given(text=ANY_TEXT, setup=st.sampled_from(SETUPS), finish=st.sampled_from(["stop", "length", None]))
def test_any_text_is_a_row_or_known_reject(text, setup, finish):
    task, mode, field = setup
    assert_total_outcome(task, judge(task, mode, ANCHOR, completions_for(task, mode, text, field=field, finish=finish)))


@PROPERTY
@given(blob=st.binary(max_size=600), errors=st.sampled_from(["replace", "surrogateescape", "ignore"]),
       setup=st.sampled_from(SETUPS))
def test_any_bytes_are_a_row_or_known_reject(blob, errors, setup):
    task, mode, field = setup
    text = blob.decode("utf-8", errors=errors)
    assert_total_outcome(task, judge(task, mode, ANCHOR, completions_for(task, mode, text, field=field)))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(alphabet=ANY_CHAR, max_size=80),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@PROPERTY
@given(task=st.sampled_from(["nli", "sts"]), data=st.data(), prose=st.tuples(st.text(max_size=40), st.text(max_size=40)),
       cut=st.integers(min_value=0, max_value=400))
def test_any_json_ish_answer_is_a_row_or_known_reject(task, data, prose, cut):
    keys = st.sampled_from([*output_fields(task), "Positive", "extra", ""])
    obj = data.draw(st.dictionaries(keys, JSON_VALUES | st.sampled_from(list(CLEAN.values())), max_size=5))
    text = prose[0] + json.dumps(obj, ensure_ascii=data.draw(st.booleans())) + prose[1]
    if data.draw(st.booleans()):
        text = text[:cut]  # truncated mid-object
    assert_total_outcome(task, judge(task, "joint", ANCHOR, completions_for(task, "joint", text)))


@PROPERTY
@given(anchor=st.text(min_size=1, max_size=200).filter(str.strip), setup=st.sampled_from(SETUPS))
def test_any_anchor_with_clean_answers_is_a_row_or_known_reject(anchor, setup):
    # No lone surrogates in anchors: seed reading turns them into a seed reject (test_reliability_seeds.py).
    task, mode, field = setup
    text = json.dumps({name: CLEAN[name] for name in output_fields(task)}) if mode == "joint" else CLEAN[field]
    assert_total_outcome(task, judge(task, mode, anchor, completions_for(task, mode, text, field=field)))
