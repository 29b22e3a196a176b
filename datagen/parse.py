"""Stage 4: turn raw completion text into candidate sentences.

Parsing only extracts; judging the sentences is validation's job. Every
function here is total: any input string gives a result or a reason code,
never an exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)
_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "`": "`"}


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
    cleaned = _strip_wrapping(text)
    if not cleaned:
        return Parsed({}, "empty")
    lines = [line.strip() for line in cleaned.splitlines() if line.strip()]
    if len(lines) > 1:
        return Parsed({field: cleaned}, "multiple_lines")
    return Parsed({field: lines[0]})


def parse_json_object(text: str, fields: tuple[str, ...]) -> Parsed:
    """Extract the fields of a joint-mode JSON completion.

    Tolerates prose or a code fence around one JSON object; requires exactly
    the expected keys with string values.
    """
    cleaned = _strip_wrapping(text, strip_quotes=False)
    if not cleaned:
        return Parsed({}, "empty")
    start, end = cleaned.find("{"), cleaned.rfind("}")
    if start < 0 or end <= start:
        return Parsed({}, "unparseable_json")
    try:
        data = json.loads(cleaned[start : end + 1])
    except (json.JSONDecodeError, RecursionError):
        return Parsed({}, "unparseable_json")
    if not isinstance(data, dict) or set(data) != set(fields):
        return Parsed({}, "wrong_keys")
    if not all(isinstance(data[name], str) for name in fields):
        return Parsed({}, "wrong_value_type")
    return Parsed({name: " ".join(data[name].split()) for name in fields})


def _strip_wrapping(text: str, *, strip_quotes: bool = True) -> str:
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if strip_quotes and len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        inner = text[1:-1].strip()
        # Only unwrap a quote pair that encloses the whole text, not `"a" and "b"`.
        if text[0] not in inner:
            text = inner
    return text
