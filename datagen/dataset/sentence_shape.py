"""Is a seed a sentence? Headings, fragments and sentences with holes make rows no reader can label.

Wikipedia dumps (wiki1m, the paper's seed corpus) hold article titles ("Broadacre, Ohio", "List of Eagle
Award nominees and winners"), lines cut mid-sentence ("in the second round.") and sentences whose
measurements the extraction dropped ("found at depths down to about and attached to ..."). In the labelled
sts rows (bench/README.md, tenth round) such anchors were 25 of 681 rows, and both readers marked every
relation of every one of them unsure: a paraphrase of a title is neither right nor wrong. They cost a
generation and a judge call each and still end in the kept data.

The checks are plain word rules, no tagger: a heading has no finite-verb cue; a fragment starts with a lower-case word (not "de", not "iPhone");
a hole is a value word ("of", "about", "at") followed straight by punctuation or "and", or a punctuation mark
standing alone outside brackets. On the 8,951 wiki1m lines of 40-200 characters they flag 3.9%; most of what they
flag is a title, a list heading or markup.
"""

from __future__ import annotations

import re

# Reason codes, in the order they are tried.
SEED_SHAPE_REASONS = ("seed_fragment", "seed_value_gap", "seed_text_gap", "seed_heading")

# Finite verbs a sentence can rest on that no suffix rule finds: auxiliaries, modals, irregular pasts.
_FINITE = frozenset("""
is are was were be been am has have had do does did will would shall should can could may might must
isn't aren't wasn't weren't hasn't haven't hadn't don't doesn't didn't won't wouldn't can't couldn't shouldn't
became become becomes began begins begun won wins made makes took takes went goes gave gives came comes wrote
writes found finds left leaves led leads held holds met meets ran runs saw sees told tells built builds bought
brought grew grows knew knows lost loses rose rises fell falls sold sells spent stood stands taught thought drew
draws drove flew set sets put puts split shot spoke speaks struck sang swam threw wore beat bore chose fought
forgot hung kept keeps lay lies lit meant means paid pays said says sent sends sat sits slept got gets let lets
hit hits cut cuts read reads sought seeks withdrew overcame undertook underwent upheld caught spread died dies fit
make take give come play include consist continue refer belong remain serve appear contain
""".split())
# Words that end in -ed but are not past tenses.
_NOT_PAST = frozenset("need speed breed seed feed bleed indeed hundred red bed bred shed sled".split())
# After these a word ending in -s is a plural noun ("the hits", "nominees and winners"), not a verb.
_BEFORE_NOUN = frozenset("""
the a an of and or in on at for to with by from as its their his her these those many several two three four
five some all other most both few
""".split())
# After a subject pronoun any lower-case word is read as the verb ("They include", "These species belong").
_SUBJECTS = frozenset("i we you they he she it these those there which who".split())
# Lower-case first words that begin a name, not the rest of a sentence ("de Chazon was a poet").
_NAME_PARTICLES = frozenset("de van von da di du del della der den ter al el bin ibn dos das le la".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SENTENCE_END = re.compile(r"[.!?:][\"'”’)\]]*$")
# A value word followed straight by punctuation or "and": the number and unit were lost ("a width of , an
# altitude of ."). Case-sensitive on purpose: "of In" is a name, not a hole.
_VALUE_GAP = re.compile(
    r"\b(about|approximately|around|nearly|roughly|almost|of|at|than|measuring)\s+([,.;:)](?!\w)|and\b|is\b)"
    r"|\babout (north|south|east|west)"
)

# Any other span the extraction dropped (a date, a name, a template): a comma, semicolon or colon standing alone
# ("At , Angola is the world's twenty-third largest country"), two marks in a row, or a full stop straight after a
# word that needs an object ("ranges between ."). Brackets are taken out first: an emptied bracket ("San Javier
# Island () is an island") drops a native name, not a part of the claim. In the gensim wheel's Wikipedia sample
# (bench/wiki_seeds.py) this flags 66 of 13,894 sentences the other rules pass; one reached a kept row in round 26.
_BRACKETED = re.compile(r"\s*\([^()]*\)")
_TEXT_GAP = re.compile(
    r"(^|\s)[,;:](?=\s|$)|,\s*[,;:]"
    r"|\b(between|from|to|every|with|over|under|than|by|on|encompassing)\s+\.$"
)

# A disambiguation page's head line ("Palmere may refer to:") introduces a list; it claims nothing a reader can
# check a paraphrase against (72 of the 11,914 lines of the wiki1m prefix; round 21 kept a row for one).
_DISAMBIGUATION = re.compile(r"\b(may|might|can|could)( also)? (refer|be used) to\b([^.]*:)?\s*$", re.IGNORECASE)


def seed_shape_problem(text: str) -> str | None:
    """The reason code when ``text`` cannot anchor a row, else None.

    Returns:
        ``seed_fragment`` (starts lower-case: the rest of a sentence), ``seed_value_gap`` (a value the
        extraction dropped), ``seed_text_gap`` (another dropped span: "At , Angola is ...") or
        ``seed_heading`` (no finite verb; or, without a sentence's final
        punctuation, no verb but a word that may be a plural noun or a participle).
    """
    text = text.strip()
    if not text:
        return None
    first = text.split()[0]
    if first[0].islower() and first.lower() not in _NAME_PARTICLES and first.islower():
        return "seed_fragment"
    if _VALUE_GAP.search(text):
        return "seed_value_gap"
    if _TEXT_GAP.search(_BRACKETED.sub("", text)):
        return "seed_text_gap"
    if _DISAMBIGUATION.search(text):
        return "seed_heading"
    strong, weak = _verb_cues(text)
    if not strong and not weak:
        return "seed_heading"
    if not strong and not _SENTENCE_END.search(text):
        return "seed_heading"
    return None


def _verb_cues(text: str) -> tuple[int, int]:
    """Counts of sure finite verbs (closed list, word after a subject pronoun) and of -ed / -s words."""
    words = _WORD.findall(text.replace("’", "'"))
    strong = weak = 0
    for position, word in enumerate(words):
        lower = word.lower()
        before = words[position - 1].lower() if position else ""
        if lower in _FINITE:
            strong += 1
        elif not word[0].islower():
            continue
        elif before in _SUBJECTS:
            strong += 1
        elif len(lower) > 3 and lower.endswith("ed") and lower not in _NOT_PAST:
            weak += 1
        elif position and len(lower) > 3 and lower.endswith("s") and not lower.endswith(("ss", "us", "is")) \
                and before not in _BEFORE_NOUN:
            weak += 1
    return strong, weak
