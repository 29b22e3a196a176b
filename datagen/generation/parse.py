"""Stage 4: turn raw completion text into candidate sentences.

Parsing only extracts; judging the sentences is validation's job. Every
function here is total: any input string gives a result or a reason code,
never an exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# A language tag counts only when a newline follows it: in "```A dog runs.```" the "A" is text.
_FENCE = re.compile(r"^```(?:[\w+.-]*[ \t]*\n)?(.*?)\n?```\s*$", re.DOTALL)
_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "`": "`"}
# Lone surrogates (a JSON "\ud800" escape, bytes decoded with surrogateescape) cannot be written as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Parsed:
    """Extracted sentences by field name, or a reason why nothing could be extracted."""

    values: dict[str, str]
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def parse_sentence(text: str, field: str) -> Parsed:
    """Extract one sentence from a separate-mode completion.

    Strips whitespace, a code fence and one pair of wrapping quotes; the
    remaining text must be a single line.
    """
    if _SURROGATE.search(text):
        return Parsed({}, "bad_characters")
    cleaned = _strip_wrapping(text)
    if not cleaned:
        return Parsed({}, "empty")
    lines = [line.strip() for line in cleaned.splitlines() if line.strip()]
    if len(lines) > 1:
        return Parsed({field: cleaned}, "multiple_lines")
    return Parsed({field: " ".join(lines[0].split())})  # tabs, NBSP and runs of spaces become one space


def parse_json_object(text: str, fields: tuple[str, ...]) -> Parsed:
    """Extract the fields of a joint-mode JSON completion.

    Tolerates prose or a code fence around the first JSON object; requires
    exactly the expected keys (each once) with single-line string values. One
    pair of quotes around a value is removed, as in separate mode.
    """
    cleaned = _strip_wrapping(text, strip_quotes=False)
    if not cleaned:
        return Parsed({}, "empty")
    start = cleaned.find("{")
    if start < 0:
        return Parsed({}, "unparseable_json")
    try:
        # raw_decode stops at the end of the first object, so trailing prose with braces does not matter.
        data, _ = json.JSONDecoder(object_pairs_hook=_pairs).raw_decode(cleaned, start)
    except (json.JSONDecodeError, RecursionError):
        return Parsed({}, "unparseable_json")
    if not isinstance(data, dict) or _DUPLICATE in data or set(data) != set(fields):
        return Parsed({}, "wrong_keys")
    if not all(isinstance(data[name], str) for name in fields):
        return Parsed({}, "wrong_value_type")
    if any(_SURROGATE.search(data[name]) for name in fields):
        return Parsed({}, "bad_characters")
    values = {name: _strip_wrapping(data[name]) for name in fields}
    if any(len(value.splitlines()) > 1 for value in values.values()):
        return Parsed({}, "multiple_lines")
    return Parsed({name: " ".join(value.split()) for name, value in values.items()})


_DUPLICATE = "\x00duplicate key"  # cannot collide with a real key: NUL never survives validation


def _pairs(pairs: list[tuple[str, object]]) -> dict:
    """JSON object hook that marks a repeated key instead of silently keeping the last value."""
    data = dict(pairs)
    if len(data) != len(pairs):
        data[_DUPLICATE] = True
    return data


def _strip_wrapping(text: str, *, strip_quotes: bool = True) -> str:
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if strip_quotes and len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        inner = text[1:-1].strip()
        # Only unwrap a quote pair that encloses the whole text (`"He said "hi" to me."`),
        # not two quoted parts (`"Hi" and "bye"`).
        if _quotes_balanced(inner, text[0], text[-1]):
            text = inner
    return text


def _quotes_balanced(inner: str, opening: str, closing: str) -> bool:
    """True when the quote marks inside ``inner`` open before they close (so the outer pair wraps it all)."""
    depth = 0
    for i, char in enumerate(inner):
        if char not in (opening, closing):
            continue
        before = inner[i - 1] if i else " "
        after = inner[i + 1] if i + 1 < len(inner) else " "
        if opening == "'" and before.isalnum() and after.isalnum():
            continue  # an apostrophe: it's, don't
        is_opening = char == opening and (opening != closing or not before.strip() or before in "([{-—")
        depth += 1 if is_opening else -1
        if depth < 0:
            return False
    return depth == 0
