import json

import pytest

from datagen.generation.parse import parse_json_object, parse_sentence

STS = ("positive", "intermediate", "negative")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("A man plays music.", "A man plays music."),
        ("  A man plays music.\n", "A man plays music."),
        ('"A man plays music."', "A man plays music."),
        ("“A man plays music.”", "A man plays music."),
        ("```\nA man plays music.\n```", "A man plays music."),
        ("```text\nA man plays music.\n```", "A man plays music."),
        ('He said "hi" to her.', 'He said "hi" to her.'),
        ('"Hi" and "bye" are words.', '"Hi" and "bye" are words.'),
        ("Ünïcödé sëntence — fine.", "Ünïcödé sëntence — fine."),
    ],
)
def test_parse_sentence_extracts_clean_text(raw, expected):
    parsed = parse_sentence(raw, "positive")
    assert parsed.ok and parsed.values == {"positive": expected}


@pytest.mark.parametrize("raw, reason", [("", "empty"), ("   \n ", "empty"), ('""', "empty"), ("One.\nTwo.", "multiple_lines")])
def test_parse_sentence_reasons(raw, reason):
    assert parse_sentence(raw, "positive").reason == reason


def test_parse_json_object_accepts_prose_and_fences():
    body = {"positive": "A b c.", "intermediate": "A b.", "negative": "X y z."}
    for raw in (json.dumps(body), "Here:\n```json\n" + json.dumps(body) + "\n```", "x " + json.dumps(body) + " y"):
        parsed = parse_json_object(raw, STS)
        assert parsed.ok and parsed.values == body


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "empty"),
        ('{"positive": "a", "intermediate": "b"', "unparseable_json"),
        ("no json here", "unparseable_json"),
        ('{"positive": "a", "intermediate": "b"}', "wrong_keys"),
        ('{"positive": "a", "intermediate": "b", "negative": "c", "extra": "d"}', "wrong_keys"),
        ('{"positive": 1, "intermediate": "b", "negative": "c"}', "wrong_value_type"),
        ('["positive", "intermediate", "negative"]', "unparseable_json"),
        ("{" * 5000 + "}" * 5000, "unparseable_json"),
    ],
)
def test_parse_json_object_reasons(raw, reason):
    assert parse_json_object(raw, STS).reason == reason


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=500))
def test_parsers_never_raise_on_any_text(text):
    sentence = parse_sentence(text, "positive")
    assert sentence.ok == (sentence.reason is None)
    joint = parse_json_object(text, STS)
    assert joint.ok or joint.reason in {"empty", "unparseable_json", "wrong_keys", "wrong_value_type"}
