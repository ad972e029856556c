"""The snippet of a result: a window of the message's text around the first match, the
matching words marked. Pure; one highlighter for both engines, with the words the query
parser and the engines see (letters and digits, case and accents folded)."""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from search.query import Query

_WORD = re.compile(r"[^\W_]+")
WORDS_BEFORE: Final = 6
WORDS_IN_SNIPPET: Final = 28


def fold(word: str) -> str:
    """A word as the engines compare it: case-folded, accents removed."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def snippet(text: str, query: Query) -> list[tuple[str, bool]]:
    """(text, matched) parts; an ellipsis marks text cut at either end."""
    words = list(_WORD.finditer(text))
    terms = {fold(t) for t in query.words} | {fold(t) for p in query.phrases for t in p}
    prefix = fold(query.prefix) if query.prefix else None

    def hit(word: str) -> bool:
        folded = fold(word)
        return folded in terms or (prefix is not None and folded.startswith(prefix))

    hits = [i for i, m in enumerate(words) if hit(m[0])]
    first = hits[0] if hits else 0
    start = max(0, first - WORDS_BEFORE)
    end = min(len(words), start + WORDS_IN_SNIPPET)
    if not words:
        return [(text, False)] if text else []
    begin_at = 0 if start == 0 else words[start].start()
    end_at = len(text) if end == len(words) else words[end - 1].end()
    parts: list[tuple[str, bool]] = []
    if begin_at > 0:
        parts.append(("…", False))
    position = begin_at
    for match in words[start:end]:
        if hit(match[0]):
            if match.start() > position:
                parts.append((text[position : match.start()], False))
            parts.append((match[0], True))
            position = match.end()
    if end_at > position:
        parts.append((text[position:end_at], False))
    if end_at < len(text):
        parts.append(("…", False))
    return parts
