"""Fresh Wikipedia seed sentences from the MediaWiki dump that the `gensim` wheel ships as test data.

The shared wiki1m prefix (11,914 lines) has been read by earlier audit rounds, so held-out rounds need sentences
no prompt or check was tuned on. `pip download gensim --no-deps -d DIR` fetches the wheel from PyPI; this script
reads the dump straight out of it (gensim itself is not installed) and writes one sentence per line, in article
order, with a line number so a round can name the slice it used:

    python bench/wiki_seeds.py DIR/gensim-*.whl --out seeds.txt --skip 0 --limit 400
"""

from __future__ import annotations

import argparse
import bz2
import re
import xml.etree.ElementTree as ElementTree
import zipfile
from collections.abc import Iterator
from pathlib import Path

DUMP_SUFFIX = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_NESTED = [re.compile(r"\{\{[^{}]*\}\}"), re.compile(r"\{\|[^{}]*?\|\}", re.S)]
_MARKUP = [
    (re.compile(r"<!--.*?-->", re.S), ""),
    (re.compile(r"<ref[^>/]*/>"), ""),
    (re.compile(r"<ref[^>]*>.*?</ref>", re.S), ""),
    (re.compile(r"<[^>]+>"), ""),
    (re.compile(r"\[\[(?:File|Image|Category):[^\[\]]*(?:\[\[[^\]]*\]\][^\[\]]*)*\]\]", re.I), ""),
    (re.compile(r"\[\[[^\]|]*\|([^\]]*)\]\]"), r"\1"),
    (re.compile(r"\[\[([^\]]*)\]\]"), r"\1"),
    (re.compile(r"\[https?://\S+ ([^\]]*)\]"), r"\1"),
    (re.compile(r"\[https?://\S+\]"), ""),
    (re.compile(r"'{2,}"), ""),
    (re.compile(r"&nbsp;"), " "),
]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_ABBREVIATION_END = re.compile(r"\b(?:[A-Z]|Mr|Mrs|Dr|St|Jr|Sr|No|vs|c|ca|e\.g|i\.e)\.$")


def article_texts(wheel: Path) -> Iterator[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(DUMP_SUFFIX))
        with archive.open(name) as compressed, bz2.open(compressed) as dump:
            for _, element in ElementTree.iterparse(dump):
                if element.tag.endswith("}page"):
                    namespace = element.find("{*}ns")
                    text = element.find("{*}revision/{*}text")
                    if namespace is not None and namespace.text == "0" and text is not None and text.text:
                        if not text.text.lstrip().upper().startswith("#REDIRECT"):
                            yield text.text
                    element.clear()


def plain_paragraphs(wikitext: str) -> Iterator[str]:
    for pattern in _NESTED:
        previous = None
        while previous != wikitext:
            previous, wikitext = wikitext, pattern.sub("", wikitext)
    for pattern, replacement in _MARKUP:
        wikitext = pattern.sub(replacement, wikitext)
    for line in wikitext.split("\n"):
        line = line.strip()
        # headings, lists, tables, indented quotes and leftover markup are not prose
        if not line or line[0] in "=*#:;|!{}[<" or "{{" in line or "}}" in line or "|" in line:
            continue
        yield re.sub(r"\s+", " ", line)


def sentences(paragraph: str) -> Iterator[str]:
    pending = ""
    for piece in _SENTENCE_END.split(paragraph):
        pending = f"{pending} {piece}".strip()
        if not _ABBREVIATION_END.search(pending):
            yield pending
            pending = ""
    if pending:
        yield pending


def wiki_sentences(wheel: Path, min_chars: int = 40, max_chars: int = 200) -> Iterator[str]:
    seen: set[str] = set()
    for text in article_texts(wheel):
        for paragraph in plain_paragraphs(text):
            for sentence in sentences(paragraph):
                if min_chars <= len(sentence) <= max_chars and sentence not in seen and sentence[-1] in ".!?":
                    seen.add(sentence)
                    yield sentence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="the gensim wheel from `pip download gensim --no-deps`")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--skip", type=int, default=0, help="sentences to pass over (the slices earlier rounds used)")
    parser.add_argument("--limit", type=int, default=400)
    args = parser.parse_args()
    chosen = []
    for index, sentence in enumerate(wiki_sentences(args.wheel)):
        if index >= args.skip + args.limit:
            break
        if index >= args.skip:
            chosen.append(sentence)
    args.out.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    print(f"{len(chosen)} sentences ({args.skip}..{args.skip + len(chosen) - 1}) -> {args.out}")


if __name__ == "__main__":
    main()
