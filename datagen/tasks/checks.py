"""What a good row is: sentence checks and the base record every task's record model extends.

A record is a pydantic model whose validators reject with a reason code. Thresholds arrive through
pydantic's validation ``context`` (a ``ValidationConfig``), so the models stay plain data and every check
is configurable. Task-specific checks live on the task's own record (``datagen/tasks/<task>.py``).
"""

from __future__ import annotations

import os
import re
import unicodedata
from difflib import SequenceMatcher
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from datagen.config import ValidationConfig

_PREAMBLE = re.compile(
    r"^(sure|certainly|of course|okay|ok|here is|here's|here are|below is|the (new |rewritten )?sentence is|"
    r"the answer is)\b",
    re.IGNORECASE,
)
# A label such as "Hypothesis:", "**Positive sentence:**" or "## Negative -" (markdown bold/heading allowed).
_LABEL = re.compile(
    r"^[\s*_#>]*(hypothesis|premise|entailment|contradiction|positive|intermediate|negative|sentence|output|"
    r"answer|paraphrase|rewritten|rewrite|result)( sentence| version| example)?\s*[*_]*\s*(:|-\s|–|—)",
    re.IGNORECASE,
)
# Chat-assistant talk anywhere in the text, not only at the start.
_CHATTER = re.compile(
    r"\b(i hope this helps|hope this helps|let me know if|feel free to|as requested|here is the (paraphrase|"
    r"sentence|rewrite)|note that this sentence)\b",
    re.IGNORECASE,
)
# Refusal phrases. Matched only when the anchor does not use them itself ("I'm sorry I was late.").
_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|as an ai|as a language model|i'?m unable to|i am unable to|"
    r"i (cannot|can'?t|can not|won'?t) (help|assist|provide|comply|fulfil|fulfill|create|generate|complete|"
    r"rewrite|paraphrase|write|do that)|cannot assist|can'?t help with)\b",
    re.IGNORECASE,
)
_LIST_MARKER = re.compile(r"^(\d+[.)]|[-*•+]|[a-z][.)])\s", re.IGNORECASE)
# Characters that never belong in a training sentence: C0/C1 controls, the replacement character
# (undecodable bytes), lone surrogates, private use, bidi overrides that reorder displayed text, and
# invisible zero-width space / BOM that split words for a tokenizer but not for a reader.
_BAD_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\ufffd\ud800-\udfff\ue000-\uf8ff\u202a-\u202e\u2066-\u2069\u200b\ufeff]"
)
# A word 3-gram seen this often in one sentence is a decoding loop ("a dog runs a dog runs a dog runs").
_MAX_NGRAM_REPEATS = 2


def normalise(text: str) -> str:
    """Lower-case, drop punctuation and collapse spaces: for near-equality tests."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def similarity(a: str, b: str) -> float:
    """Word-level similarity of two normalised strings (difflib ratio over words), 1.0 = identical.

    Words, not characters: "caused" -> "led to" in a 20-word sentence is a real (small) edit,
    which a character ratio would still score above 0.97.
    """
    return SequenceMatcher(None, normalise(a).split(), normalise(b).split(), autojunk=False).ratio()


def _fail(code: str, message: str, field: str | None = None) -> PydanticCustomError:
    # The field rides in the error context: model-level errors carry no location of their own.
    return PydanticCustomError(code, message, {"field": field} if field else None)


def _settings(info: ValidationInfo) -> ValidationConfig:
    return info.context if isinstance(info.context, ValidationConfig) else ValidationConfig()


def check_sentence(text: str, settings: ValidationConfig, anchor: str = "") -> None:
    """Reject a single generated sentence that is not a clean sentence.

    Args:
        anchor: The seed; a phrase the anchor itself uses ("I'm sorry") is not held against the output.

    Raises:
        PydanticCustomError: with the reason code as its type.
    """
    if not text.strip():
        raise _fail("empty", "sentence is empty")
    if len(text) < settings.min_chars:
        raise _fail("too_short", f"shorter than {settings.min_chars} characters")
    if len(text) > settings.max_chars:
        raise _fail("too_long", f"longer than {settings.max_chars} characters")
    if _BAD_CHARS.search(text):
        raise _fail("bad_characters", "contains control, bidi-override or undecodable characters")
    if looks_like_refusal(text, anchor):
        raise _fail("refusal", "looks like a refusal")
    if _PREAMBLE.match(text) or _LABEL.match(text) or _LIST_MARKER.match(text) or _CHATTER.search(text):
        raise _fail("meta_text", "starts with a preamble, label or list marker, or talks to the user")
    if not any(c.isalpha() for c in text):
        raise _fail("no_words", "contains no letters")
    if _is_repetitive(text):
        raise _fail("repetition", "repeats the same words over and over")
    if _script(anchor) not in {"NONE", _script(text)}:
        raise _fail("wrong_language", f"written in {_script(text)} script, the anchor in {_script(anchor)}")
    if settings.reject_fragments and looks_like_fragment(text) and not looks_like_fragment(anchor):
        raise _fail("fragment", "is a phrase without a subject (starts with a participle and has no clause after it)")


# "Born in Newport and educated at ...", "Earning a gold medal as ...": a participle opening, no comma after which
# a subject could follow, and no finite auxiliary is a phrase, not a statement.
_PARTICIPLE = re.compile(r"^(\w{3,}(ing|ed)|born|written|known|made|built|given|taken|seen|held|shown)\b", re.IGNORECASE)
_ING_NOUNS = frozenset("nothing something everything anything evening morning spring string wedding building "
                       "ceiling beijing reading".split())
_FINITE = frozenset("is are was were has have had will would can could may might must shall should do does did".split())


def looks_like_fragment(text: str) -> bool:
    """True for a subjectless phrase such as "Directed some popular films." (a participle start, no comma, no
    finite auxiliary)."""
    words = normalise(text).split()
    return (bool(_PARTICIPLE.match(text.strip())) and "," not in text and bool(words)
            and words[0] not in _ING_NOUNS and not _FINITE & set(words))


def looks_like_refusal(text: str, anchor: str = "") -> bool:
    """True when ``text`` refuses the task (and the anchor does not itself use refusal words)."""
    return bool(_REFUSAL.search(text)) and not _REFUSAL.search(anchor)


def _is_repetitive(text: str) -> bool:
    words = normalise(text).split()
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - 2):
        gram = tuple(words[i : i + 3])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] > _MAX_NGRAM_REPEATS:
            return True
    return False


def _script(text: str) -> str:
    """The writing system most letters of ``text`` belong to ("LATIN", "CJK", "CYRILLIC", ...).

    Scripts, not languages: a French paraphrase of an English seed passes (telling them apart needs
    a language model); a Chinese one, the usual slip of small instruction models, does not.
    """
    if text.isascii():  # fast path (most rows): every ASCII letter is LATIN; the loop below was 40% of validation
        return "LATIN" if any(char.isalpha() for char in text) else "NONE"
    counts: dict[str, int] = {}
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "UNKNOWN").split()[0]
            script = "CJK" if name in {"CJK", "HIRAGANA", "KATAKANA", "HANGUL"} else name
            counts[script] = counts.get(script, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else "NONE"


class Record(BaseModel):
    """An anchor and the sentences a task generates for it; subclasses add one ``str`` field per output.

    ``meaning_changing`` names the outputs meant to change the meaning. One flipped word ("males" ->
    "females") can be a perfect hard negative, so for these only an exact (normalised) copy is rejected;
    judging how hard such a negative is belongs to scoring, not validation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
    meaning_changing: ClassVar[frozenset[str]] = frozenset()

    anchor: str

    @classmethod
    def output_fields(cls) -> tuple[str, ...]:
        """The generated fields in declaration order, which is tier order (most similar first)."""
        return tuple(name for name in cls.model_fields if name != "anchor")

    @classmethod
    def copy_limit(cls, field: str, threshold: float) -> float:
        """Similarity at or above which ``field`` counts as a copy."""
        return 1.0 if field in cls.meaning_changing else threshold

    @field_validator("*", mode="after")
    @classmethod
    def _clean_sentence(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name != "anchor":
            check_sentence(value, _settings(info), str(info.data.get("anchor", "")))
        return value

    def outputs(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump().items() if name != "anchor"}

    @model_validator(mode="after")
    def _not_copies(self, info: ValidationInfo) -> "Record":
        settings = _settings(info)
        outputs = self.outputs()
        for name, value in outputs.items():
            if similarity(value, self.anchor) >= self.copy_limit(name, settings.max_similarity_to_anchor):
                raise fail(name, "copies_anchor", f"{name} repeats the anchor")
        names = list(outputs)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                limit = self.copy_limit(second, self.copy_limit(first, settings.max_similarity_between_outputs))
                if similarity(outputs[first], outputs[second]) >= limit:
                    raise fail(second, "copies_other_output", f"{second} repeats {first}")
        return self


    @model_validator(mode="after")
    def _edits_as_prompted(self, info: ValidationInfo) -> "Record":
        settings = _settings(info)
        outputs = self.outputs()
        for name in settings.deletion_outputs:
            if name in outputs and (added := added_content_words(self.anchor, outputs[name])):
                raise fail(name, "adds_content", f"{name} adds {', '.join(sorted(added))}, which the anchor lacks")
        for name in settings.substitution_outputs:
            if name in outputs and not is_one_substitution(self.anchor, outputs[name]):
                raise fail(name, "not_one_substitution", f"{name} does not replace exactly one span of the anchor")
        for name in settings.detail_keeping_outputs:
            if name in outputs and (dropped := dropped_details(self.anchor, outputs[name])):
                raise fail(name, "drops_detail", f"{name} drops {', '.join(sorted(dropped))}, which the anchor has")
        for name in settings.no_new_detail_outputs:
            if name in outputs and (added := added_details(self.anchor, outputs[name])):
                raise fail(name, "adds_detail", f"{name} adds {', '.join(sorted(added))}, which the anchor lacks")
        for name in settings.not_deletion_outputs:
            if name in outputs and only_deletes(self.anchor, outputs[name]):
                raise fail(name, "only_deletes", f"{name} only leaves words out of the anchor, so the anchor entails it")
        for name in settings.hedge_keeping_outputs:
            if name in outputs and (dropped := dropped_hedges(self.anchor, outputs[name])):
                raise fail(name, "drops_hedge", f"{name} states plainly what the anchor hedges ({', '.join(sorted(dropped))})")
        for name in settings.tense_keeping_outputs:
            if name in outputs and (shift := past_made_present(self.anchor, outputs[name])):
                raise fail(name, "changes_tense", f"{name} says '{shift[1]}' where the anchor says '{shift[0]}'")
        for name in settings.close_paraphrase_outputs:
            if name not in outputs:
                continue
            missing, new = reworded_words(self.anchor, outputs[name])
            if len(missing) + len(new) > settings.max_reworded_words:
                raise fail(name, "rewords_too_much",
                           f"{name} rewords {len(missing) + len(new)} content words of the anchor "
                           f"(at most {settings.max_reworded_words}): {', '.join(missing + new)}")
            if says_less(self.anchor, outputs[name]):
                raise fail(name, "says_less", f"{name} only leaves out {', '.join(missing)}, so it says less than the anchor")
        for name in (name for name in settings.fewer_details_outputs if name in outputs):
            missing, new = reworded_words(self.anchor, outputs[name])
            if len(missing) <= len(new):
                raise fail(name, "leaves_nothing_out", f"{name} leaves out no more content words of the anchor "
                           f"({len(missing)}) than it brings in ({len(new)}), so it has no fewer details")
        for name in settings.no_unstated_birth_outputs:
            if name in outputs and invents_birth(self.anchor, outputs[name]):
                raise fail(name, "invents_birth", f"{name} speaks of a birth the anchor never mentions, so both can be true")
        return self


# Function words a deletion may keep or drop without changing what is claimed.
_FUNCTION_WORDS = frozenset(
    "a an the is are was were be been being am of in on at to for from by with and or but as that this these "
    "those it its their his her he she they we you i there here some has have had do does did".split()
)


def content_words(text: str) -> set[str]:
    return set(_content_sequence(text))


def _content_sequence(text: str) -> list[str]:
    return [word for word in normalise(text).split() if word not in _FUNCTION_WORDS]


def added_content_words(anchor: str, output: str) -> set[str]:
    """Content words of ``output`` that ``anchor`` does not have (a deletion adds none)."""
    return content_words(output) - content_words(anchor)


# An inserted negation ("did not", "never") excludes what the anchor states as surely as a swapped detail.
_NEGATIONS = frozenset("not no never n't nobody nothing none neither nor cannot".split())
_AUXILIARIES = frozenset("do does did is are was were has have had can could will would".split())


def is_one_substitution(anchor: str, output: str, *, max_span: int = 4) -> bool:
    """Whether ``output`` is ``anchor`` with exactly one change that excludes it, and maybe some words deleted.

    The one change is a span of at most ``max_span`` words replaced by another of at most ``max_span`` that brings
    a content word the anchor lacks, or an inserted negation (a negation word, with an auxiliary if needed). Deleted words are allowed beside it: small
    models drop a redundant name or adverb while they swap a detail, and a deletion never makes the two
    sentences compatible again. Two changes are refused: each one may keep the sentences compatible.
    """
    words = normalise(output).split()
    edits = [op for op in SequenceMatcher(None, normalise(anchor).split(), words, autojunk=False).get_opcodes()
             if op[0] not in ("equal", "delete")]
    if len(edits) != 1:
        return False
    kind, a_start, a_end, b_start, b_end = edits[0]
    new = set(words[b_start:b_end])
    if kind == "insert":
        return bool(new & _NEGATIONS) and new <= _NEGATIONS | _AUXILIARIES
    # A replacement must bring a detail the anchor lacks (or a negation): "most wins and most" -> "the most"
    # is a deletion in disguise, and leaves the sentences compatible.
    brings_something = bool(new & _NEGATIONS) or bool(content_words(" ".join(new)) - content_words(anchor))
    return a_end - a_start <= max_span and b_end - b_start <= max_span and brings_something


# Words whose removal turns a statement around ("the former mayor" -> "the mayor", "nearly won" -> "won").
_REVERSING_WORDS = frozenset(
    "former formerly ex almost nearly barely hardly without except failed unsuccessfully attempted".split()
)


def only_deletes(anchor: str, output: str) -> bool:
    """Whether ``output`` is ``anchor`` with words left out and nothing else: its content words appear in the
    anchor in the same order, the negations are unchanged, and no word is removed that reverses a claim ("former",
    "nearly"); function words may differ. The anchor entails such an output, so it can be neither a contradiction
    nor a negative."""
    return (_is_subsequence(_content_sequence(output), _content_sequence(anchor))
            and _negations(anchor) == _negations(output) and not _drops_a_reversal(anchor, output))


def reworded_words(anchor: str, output: str) -> tuple[list[str], list[str]]:
    """The content words of ``anchor`` missing from ``output``, and those of ``output`` new to ``anchor``.

    Words match on a shared stem ("America" / "American"), so an inflection is no rewording. Single letters are
    left out: they are what normalising leaves of "e.g." and "John's".
    """
    anchor_words = [word for word in dict.fromkeys(_content_sequence(anchor)) if len(word) > 1]
    output_words = [word for word in dict.fromkeys(_content_sequence(output)) if len(word) > 1]
    anchor_stems = {_inflection_stem(word) for word in anchor_words}
    output_stems = {_inflection_stem(word) for word in output_words}
    missing = [word for word in anchor_words if not _mentions(output_stems, _inflection_stem(word))]
    new = [word for word in output_words if not _mentions(anchor_stems, _inflection_stem(word))]
    return missing, new


def _inflection_stem(word: str) -> str:
    # "running" / "runs" -> "run", "games" / "game", "used" / "use": a shared start of four letters
    # (``_same_stem``) misses short words.
    for suffix, shortest in (("ing", 3), ("ed", 2), ("s", 2)):
        if word.endswith(suffix) and len(word) - len(suffix) >= shortest:
            word = word[: -len(suffix)]
            break
    if len(word) >= 3 and word.endswith("e"):
        word = word[:-1]
    return word[:-1] if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "ls" else word


def says_less(anchor: str, output: str) -> bool:
    """Whether ``output`` is ``anchor`` with content words left out and nothing else ("best known" -> "known"): the
    anchor entails it, but it does not entail the anchor, so it is no paraphrase."""
    missing, _ = reworded_words(anchor, output)
    return bool(missing) and only_deletes(anchor, output)


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    # In order: "despite David's fear" -> "despite Jacob's fear" reuses the anchor's words but swaps who is afraid.
    remaining = iter(long)
    return all(word in remaining for word in short)


def _drops_a_reversal(anchor: str, output: str) -> bool:
    # Only when what it modified stays: "the former mayor" -> "the mayor" turns around, while leaving out the
    # whole "the former mayor," of an apposition does not.
    anchor_words, kept = normalise(anchor).split(), set(normalise(output).split())
    return any(word in _REVERSING_WORDS and word not in kept and following in kept
               for word, following in zip(anchor_words, anchor_words[1:]))


def _negations(text: str) -> set[str]:
    return _words(text) & _NEGATIONS


# Details a reader checks first: a changed number, name or negation changes what is claimed, whatever the wording.
_NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion "
    "first second third fourth fifth sixth seventh eighth ninth tenth half dozen".split()
)
_ORDINAL_WORDS = frozenset(
    "eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth "
    "thirtieth fortieth fiftieth hundredth thousandth".split()
)
# Small words that change what is claimed: "also directed" says there is more, "then became" gives an order,
# "apparently intending" a guess, "officially registered" and "originally built" limit or date the claim. Readers
# marked a positive that dropped one wrong (third and fourth audits; the labelled sts rows of the dev split and the
# seventh and eighth rounds dropped "officially", "originally", "formerly", "known", "currently", "several" or
# "together" eight times, all eight labelled wrong).
_QUALIFIERS = frozenset("also only then just still again even too apparently thus already almost nearly officially "
                        "originally initially formerly known currently several together respectively".split())
_WORD = re.compile(r"\w+(?:'\w+)?")
_ORDINAL = re.compile(r"^(\d+)(st|nd|rd|th)$")
_SENTENCE_START = re.compile(r"(^|[.!?:;]\s+|[\"“(]\s*)$")


def details(text: str) -> set[str]:
    """The lower-cased numbers, names, negations and qualifiers ("also", "only", "then") of ``text``.

    A name is a capitalised word that does not start a sentence; a number is a word with a digit or a number
    word. These survive any faithful paraphrase, so their presence can be checked without understanding.
    """
    found = set()
    for match in _WORD.finditer(text):
        word, lower = match.group(), match.group().lower()
        if any(ch.isdigit() for ch in word):
            found.add(_ORDINAL.sub(r"\1", lower))  # "20th" is "20" of a date
        elif lower in _NUMBER_WORDS or lower in _ORDINAL_WORDS or lower in _NEGATIONS or lower in _QUALIFIERS:
            found.add(lower)
        elif lower.endswith("n't"):
            found.add("not")  # "didn't" and "did not" are one negation
        elif word[0].isupper() and not _SENTENCE_START.search(text[: match.start()]) and word != "I":
            found.add(lower.removesuffix("'s"))
    return found


def _same_stem(word: str, detail: str) -> bool:
    # "America" / "American", "China" / "Chinese": a shared start of 4+ letters, missing at most 3 of the shorter.
    shared = len(os.path.commonprefix([word, detail]))
    return shared >= 4 and shared >= min(len(word), len(detail)) - 3


def _mentions(words: set[str], detail: str) -> bool:
    # Numbers match whole: "seventeenth" is not "seventh", "16" is not "6".
    if detail.isdigit() or detail in _NUMBER_WORDS or detail in _ORDINAL_WORDS or detail in _QUALIFIERS:
        return detail in words
    return detail in words or any(_same_stem(word, detail) for word in words)


def _words(text: str) -> set[str]:
    lowered = {match.group().lower() for match in _WORD.finditer(text)}
    words = lowered | {word.removesuffix("'s") for word in lowered} | {_ORDINAL.sub(r"\1", w) for w in lowered}
    return words | ({"not"} if any(word.endswith("n't") for word in lowered) else set())


def dropped_details(anchor: str, output: str) -> set[str]:
    """Numbers, names, negations and quantifiers of ``anchor`` that ``output`` no longer mentions (a paraphrase
    keeps all)."""
    words = _words(output)
    # "some 20 people" is an approximation, which ``dropped_hedges`` compares: "about 20 people" keeps it.
    quantifiers = {word for word in _words(_without_approximations(anchor)) if word in _QUANTIFIERS}
    return {detail for detail in details(anchor) | quantifiers if not _mentions(words, detail)}


# How much of a set a claim covers: "some activists welcomed it" is no paraphrase of "activists welcomed it". Kept
# only by outputs that keep the whole meaning; an entailment or intermediate may drop them, and may add "some"
# ("caused some concern"). Of the labelled sts positives of rounds 14, 21 and 22 that drop one, readers marked all 4
# wrong ("many podcasts", "some activists", "most of its existence"); found on round 22, so not yet measured held
# out (bench/README.md, sixteenth round). "All" and "much" are left out: "all the windows" -> "the windows" and
# "much research" -> "extensively researched" keep the claim.
_QUANTIFIERS = frozenset("some many most few".split())


def added_details(anchor: str, output: str) -> set[str]:
    """Numbers, names and negations of ``output`` that ``anchor`` never mentions (an entailed sentence adds none),
    and the noun an output gives the anchor's opening "It" ("It was released in 2018" -> "The album was ...")."""
    words = _words(anchor)
    added = {detail for detail in details(output) if not _mentions(words, detail)}
    if _OPENING_PRONOUN.match(anchor) and (subject := _OPENING_NOUN.match(output)):
        if not _mentions(words, subject.group(1).lower()):
            added.add(subject.group(1).lower())
    return added


# "It" says nothing of what it is: of the labelled nli entailments of rounds 11-20 that give an opening "It" a noun
# the anchor lacks ("the album", "the show", "the place"), readers marked 4 of 5 wrong. "He" ("the man") and "this"
# (often a quoted "This is ...") are left alone.
_OPENING_PRONOUN = re.compile(r"^\W*it\s", re.IGNORECASE)
_OPENING_NOUN = re.compile(r"^\W*(?:the|this|these|that|those)\s+([a-z]\w+)", re.IGNORECASE)


# Words that weaken a claim, in classes of near-synonyms: an output keeps a hedge when it has any word of the
# anchor's class ("may occur" -> "can occur"). "can", "could" and "likely" keep a hedge but do not make one in the
# anchor: they state an ability or a fitness ("a likely candidate") more often than a doubt.
# A report and a plan hedge a fact too (docs/labelling.md: "was reported to have" does not entail "had", "was due
# to open" does not entail "opened"): stating one as done was the commonest wrong nli entailment of the third and
# sixth audit rounds and a frequent wrong sts positive of the ninth (bench/README.md). Left out on purpose: "states"
# (the United States), "thought" (a noun as often), "would" ("would later become" is history, not a plan) and
# "due" ("due to" is mostly a cause); "known" is a qualifier of the detail checks already.
_HEDGE_CLASSES = (
    ("may", "might", "can", "could"),
    ("often", "frequently", "usually", "commonly", "typically", "generally", "sometimes", "mostly", "mainly",
     "largely", "partly"),
    ("probably", "possibly", "perhaps", "likely"),
    ("tend", "tends", "tended"),
    ("reportedly", "allegedly", "supposedly", "purportedly", "reported", "reports", "according", "said", "says",
     "stated", "claimed", "claims", "alleged", "announced", "announces", "described", "describes", "believed",
     "believes", "considered", "regarded", "suggested", "suggests", "argued", "argues", "told", "declared",
     "estimated", "rumoured", "rumored", "think", "thinks"),
    ("plan", "plans", "planned", "planning", "intended", "intends", "intention", "proposed", "proposes",
     "proposal", "scheduled", "expected", "expects", "hoped", "hopes", "aimed", "aims", "sought", "seeks",
     "attempted", "attempts", "tried", "tries"),
    # A wish, a decision or a request is not its outcome: "recommended that the Government reconsider" does not
    # entail "the Government reconsidered". Of the 679 labelled nli rows of rounds 11-20, the entailments that
    # drop one of these were wrong for both readers in 3 of 3 (bench/README.md, sixteenth round).
    ("wished", "wishes", "wanted", "wants", "decided", "decides", "recommended", "recommends", "urged", "urges",
     "requested", "requests"),
    # "Virtually eliminated" is not "eliminated". Of the labelled rows of rounds 11-25, the sts intermediates and
    # nli entailments that drop one of these were wrong for both readers in 3 of 3 (found on round 25, so not yet
    # measured held out).
    ("virtually", "nearly", "almost", "practically"),
)
_HEDGE_TRIGGERS = {word: frozenset(words) for words in _HEDGE_CLASSES for word in words
                   if word not in ("can", "could", "likely")}
# An approximation says which side of the number the truth may lie on: "around 20" allows 19, "at least 20" does
# not, and "about 30" does not entail "over 30". An output that keeps the number must keep its side: the fifteenth
# round's readers marked "around 20" -> "at least 20", "about 30" -> "over 30" and "about 100" -> "100" wrong.
_APPROXIMATION_SIDES = {
    "about": "either", "around": "either", "approximately": "either", "roughly": "either", "some": "either",
    "nearly": "below", "almost": "below", "under": "below", "less than": "below", "fewer than": "below",
    "at most": "below", "up to": "below",
    "over": "above", "more than": "above", "at least": "above",
}
_APPROXIMATE_NUMBER = re.compile(
    r"\b(" + "|".join(sorted(_APPROXIMATION_SIDES, key=len, reverse=True)) + r")\s+(?:a\s+)?(\d+(?:[.,]\d+)*|"
    + "|".join(sorted(_NUMBER_WORDS)) + r")\b", re.IGNORECASE)


_NUMBER_TOKEN = re.compile(r"\d+(?:[.,]\d+)*")


def _without_approximations(text: str) -> str:
    # "some 20", "nearly 40": their words belong to the number's side, which ``dropped_hedges`` compares.
    return _APPROXIMATE_NUMBER.sub(" ", text)


def dropped_hedges(anchor: str, output: str) -> set[str]:
    """The hedges of ``anchor`` that ``output`` drops while keeping the claim: a hedging word ("may", "usually",
    "reportedly") with no word of its class left, or an approximate number ("about nine") whose number is kept
    bare or approximated from another side ("at least nine"). A capitalised "May" does not count: it is mostly the month."""
    # "8,000" is one number, not the words "8" and "000".
    output_words = ({match.group().lower() for match in _WORD.finditer(output)}
                    | {match.group() for match in _NUMBER_TOKEN.finditer(output)})
    # "nearly 40" is an approximate number, compared by its side below, not by its word.
    anchor_words = {match.group().lower() for match in _WORD.finditer(_without_approximations(anchor))
                    if match.group() != "May"}
    dropped = {word for word in anchor_words
               if word in _HEDGE_TRIGGERS and not output_words & _HEDGE_TRIGGERS[word]}
    output_sides: dict[str, set[str]] = {}
    for match in _APPROXIMATE_NUMBER.finditer(output):
        output_sides.setdefault(match.group(2).lower(), set()).add(_APPROXIMATION_SIDES[match.group(1).lower()])
    for match in _APPROXIMATE_NUMBER.finditer(anchor):
        number, side = match.group(2).lower(), _APPROXIMATION_SIDES[match.group(1).lower()]
        if number in output_words and side not in output_sides.get(number, set()):
            dropped.add(match.group(0).lower())
    return dropped


_PAST_AUXILIARY = re.compile(r"\b(was|were|had|did|could)\b", re.IGNORECASE)
_PRESENT_AUXILIARY = re.compile(r"\b(is|are|has|have|does|will|can)\b", re.IGNORECASE)
# Irregular simple pasts, each with the present form that moves the claim to now ("became" -> "becomes"). Left
# out: forms that are as often a present, a noun or an adjective ("put", "set", "found", "left", "read", "cut").
_IRREGULAR_PAST = {
    "became": "becomes", "began": "begins", "bought": "buys", "brought": "brings", "built": "builds",
    "came": "comes", "chose": "chooses", "drew": "draws", "drove": "drives", "fell": "falls", "fought": "fights",
    "fled": "flees", "flew": "flies", "gave": "gives", "grew": "grows", "held": "holds", "kept": "keeps",
    "knew": "knows", "led": "leads", "lost": "loses", "made": "makes", "met": "meets", "paid": "pays",
    "ran": "runs", "rose": "rises", "sat": "sits", "saw": "sees", "sent": "sends", "sold": "sells",
    "spent": "spends", "spoke": "speaks", "stood": "stands", "taught": "teaches", "took": "takes",
    "went": "goes", "won": "wins", "wrote": "writes",
}
# A present perfect of a past event ("He has competed at three Olympics") still speaks of the past; "has been
# teaching since 1989" does not, it says the teaching goes on, and nor does any perfect with "since" ("had
# represented the district since 2012" -> "has represented the district since 2012" claims he still does).
_PERFECT = re.compile(r"\b(?:has|have)\s+(?:(?:also|already|not|never)\s+)?(?:been\s+)?"
                      r"(?:\w+ed|become|begun|built|chosen|given|grown|held|known|led|made|taken|won|written)\b",
                      re.IGNORECASE)
# An "-ed" word straight after these is a participle or an adjective ("was elected", "the accelerated track").
# Adverbs that stand before a simple past as often as before a participle ("also won", "never knew").
_ADVERBS = frozenset("newly recently well not never also".split())
_BEFORE_PARTICIPLE = frozenset(
    "a an the this that these those its his her their our my your be been being is are was were am has have had "
    "get gets got getting".split()) | _ADVERBS
# Common words ending in "-ed" that are no past verb.
_NOT_PAST = frozenset("hundred kindred sacred naked wicked beloved indeed embed".split())
_SINCE = re.compile(r"\bsince\b", re.IGNORECASE)
# "has been a member" does not say she is one now ("She has been a member of the national team" -> "She is a
# member of the national team"): the two words after "been" stated again after "is".
_PERFECT_STATE = re.compile(r"\b(has|have) been (\w+ \w+)", re.IGNORECASE)


def _bare_words(text: str) -> list[str]:
    """Words split on spaces with their punctuation trimmed, case and hyphens kept ("Toronto-based")."""
    return [word.strip(".,;:!?\"'()[]") for word in text.split()]


def _finite_pasts(text: str) -> list[str]:
    """Words of ``text`` that read as a simple past ("formed", "became"): lower-case, not hyphenated, not followed
    by "by" ("the team, led by Ruiz", "a novel written by"), and an "-ed" word only where no auxiliary, article or
    possessive before it makes it a participle or adjective."""
    words = _bare_words(text)
    pasts = []
    for before, word, after in zip(["", *words], words, [*words[1:], ""]):
        if word != word.lower() or "-" in word or after.lower() == "by":
            continue
        if before.lower() in _BEFORE_PARTICIPLE and not (word in _IRREGULAR_PAST and before.lower() in _ADVERBS):
            continue  # "is made", "was built", "the accelerated track": a participle or an adjective
        if word in _IRREGULAR_PAST or (len(word) >= 5 and word.endswith("ed") and not word.endswith("eed")
                                       and word not in _NOT_PAST):
            pasts.append(word)
    return pasts


def _pluperfect_participles(text: str) -> list[str]:
    """Participles of a past perfect ("had represented", "had not won"): pasts as much as a simple past is."""
    words = [word.lower() for word in _bare_words(text)]
    return [word for before, word in zip(words, words[1:])
            if before == "had" and (word in _IRREGULAR_PAST or (word.endswith("ed") and word not in _NOT_PAST))]


def _perfect_made_present(anchor: str, output: str) -> tuple[str, str] | None:
    """``("has been", "is")`` when ``output`` states as now (is/are + the same two words) what ``anchor`` says
    only has been so. "has been mayor since 2010" says he still is, so an anchor with "since" is left alone."""
    if _SINCE.search(anchor):
        return None
    for match in _PERFECT_STATE.finditer(anchor):
        present = "is" if match.group(1).lower() == "has" else "are"
        if re.search(rf"\b{present} {re.escape(match.group(2))}\b", output, re.IGNORECASE):
            return f"{match.group(1).lower()} been", present
    return None


def _present_forms(past: str) -> set[str]:
    """Third-person present forms a simple past can become ("competed" -> "competes", "carried" -> "carries")."""
    if past in _IRREGULAR_PAST:
        return {_IRREGULAR_PAST[past]}
    stem = past[:-2]
    forms = {stem + "s", stem + "es", past[:-1] + "s"}
    if past.endswith("ied"):
        forms.add(past[:-3] + "ies")
    if len(stem) > 2 and stem[-1] == stem[-2]:
        forms.add(stem[:-1] + "s")
    return forms


_BIRTH = re.compile(r"\b(?:born|birth\w*|née)\b", re.IGNORECASE)
# A life span or a birth year in brackets states the birth too: "(1798–1881)", "(22 Jun 1683, Abbeville - 4 Apr
# 1751)", "(b. 1921)".
_LIFE_SPAN = re.compile(r"\([^()]*\d{3,4}[^()]*\s[–—-]\s|\([^()]*\d{3,4}\s*[–—-]|\(b\.\s*\d", re.IGNORECASE)


def invents_birth(anchor: str, output: str) -> bool:
    """Whether ``output`` speaks of a birth (when, where, whether) that ``anchor`` never mentions.

    Such a sentence cannot contradict the anchor: "a Romanian weightlifter" says nothing of where he was born, so
    "He was not born in Romania" can be true with it. Of the 18 generated contradictions it flags in the samples of
    rounds 11-15, I read 15 as wrong and 3 as doubtful, none as plainly right (bench/README.md, fourteenth round).
    """
    return bool(_BIRTH.search(output)) and not (_BIRTH.search(anchor) or _LIFE_SPAN.search(anchor))


def past_made_present(anchor: str, output: str) -> tuple[str, str] | None:
    """``(past, present)`` words when ``anchor`` speaks only in the past and ``output`` only in the present
    or future, else None.

    "The shire offices were in Alstonville" does not say they are there now, so "The shire offices are in
    Alstonville" is no paraphrase of it, and "He competed at the 1952 Olympics" does not entail "He competes".
    The past is read from auxiliaries ("was", "had", "could") and simple pasts ("served", "became"); the present
    from auxiliaries and from the present form of one of the anchor's own past verbs ("had represented" ->
    "represents"). A sentence that mixes tenses on either side is left alone, but for a present perfect of a state
    stated as now ("has been a member" -> "is a member").
    """
    if shift := _perfect_made_present(anchor, output):
        return shift
    anchor_pasts = _finite_pasts(anchor)
    past_auxiliary = _PAST_AUXILIARY.search(anchor)
    if not (past_auxiliary or anchor_pasts) or _PRESENT_AUXILIARY.search(anchor):
        return None
    if _PAST_AUXILIARY.search(output) or _finite_pasts(output):
        return None
    past = past_auxiliary.group().lower() if past_auxiliary else anchor_pasts[0]
    if present := _PRESENT_AUXILIARY.search(output if _SINCE.search(output) else _PERFECT.sub(" ", output)):
        return past, present.group().lower()
    output_words = set(_bare_words(output))
    for anchor_past in anchor_pasts + _pluperfect_participles(anchor):
        if moved := output_words & _present_forms(anchor_past):
            return anchor_past, sorted(moved)[0]
    return None


def first_failure(exc: ValidationError) -> tuple[str, str, str]:
    """``(field, reason code, message)`` of the first check a record failed; a model-level check names its field in
    the error context (``fail``)."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else (error.get("ctx") or {}).get("field", "row")
    return field, error["type"], error["msg"]


def settings_of(info: ValidationInfo) -> ValidationConfig:
    """The ``ValidationConfig`` a record is validated with (defaults when none was passed)."""
    return _settings(info)


def fail(field: str | None, code: str, message: str) -> PydanticCustomError:
    """A reject with reason ``code``, located at ``field`` (for task-specific record validators)."""
    return _fail(code, message, field)
