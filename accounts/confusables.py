"""Usernames that look alike: Unicode skeletons in the spirit of UTS #39 ("confusable detection").

Two names whose skeletons are equal read the same to a person ("alice" spelt with a Cyrillic
a, U+0430; "aIice" with a capital I; "alice" in full-width letters): a newcomer must not take a name that
passes for an existing user's. The confusable pairs come from Unicode's confusables.txt as
the confusable-homoglyphs package ships it, each character mapped to the prototype of its
class (the member that the most others are confusable with). Case is folded too, before or
after the mapping (an "I" is confusable with "l" and is the capital of "i"), so a name has
two skeletons and two names collide when either matches.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from confusable_homoglyphs.confusables import confusables_data


@lru_cache(maxsize=4096)
def _prototype(char: str) -> str:
    candidates: list[str] = [char, *(str(h["c"]) for h in confusables_data.get(char, []) if len(h["c"]) == 1)]
    return max(candidates, key=lambda c: (len(confusables_data.get(c, [])), c.isascii(), -ord(c)))


def _map(text: str) -> str:
    return "".join(_prototype(c) for c in unicodedata.normalize("NFD", text))


def skeletons(name: str) -> frozenset[str]:
    """The name's skeletons: equal skeletons mean the names look alike."""
    compat = unicodedata.normalize("NFKC", name)
    return frozenset(unicodedata.normalize("NFC", s) for s in (_map(_map(compat).casefold()), _map(compat.casefold())))


def lookalike(name: str, existing: Iterable[str]) -> str | None:
    """An existing name (other than `name` itself) that `name` looks like, or None."""
    mine = skeletons(name)
    for other in existing:
        if other != name and mine & skeletons(other):
            return other
    return None
