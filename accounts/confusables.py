"""Usernames that look alike: the Unicode skeleton of UTS #39 ("confusable detection", section 4).

Two names whose skeletons are equal read the same to a person ("alice" spelt with a Cyrillic
a, U+0430; "aIice" with a capital I; "rnary" for "mary"; "ǅemal" in one letter for "Džemal";
"alice" in full-width letters): a newcomer must not take a name that passes for an existing
user's. The skeleton is the standard's: NFD, every character replaced by its prototype from
confusables.txt (one character may become several: "m" is "rn", "ǅ" is "Dž"), NFD again.

The data is Unicode's confusables.txt as the confusable-homoglyphs package ships it (a
maintained release of the file, updated with its package). That package keeps each line of
the file in both directions ({source: [target], target: [..., source]}), so `_prototypes`
takes the direction back from the file's shape: a source has one line and one target; a
prototype is a target, named by one or more sources; where a source and its prototype name
only each other, the file's order tells them apart (a line adds its source before its target).
Each target is then normalised and mapped again until it is stable (the package's names give
the precomposed form of a target, "ž", where the file has "z" and a combining mark), which
keeps the skeleton idempotent, as the standard's is.

Case is folded too, before or after the mapping (an "I" is confusable with "l" and is the
capital of "i"), so a name has two skeletons and two names collide when either matches.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Final

from confusable_homoglyphs.utils import load

_BIDI_MARKS: Final = str.maketrans("", "", "\u200e\u200f")  # the file's comments wrap RTL text in them
_STABLE_WITHIN: Final = 8  # rounds of map-and-normalise a target needs at most (two, in Unicode 15)


def _exact(entry: dict[str, str]) -> str | None:
    """The entry's characters, from their names (the glyphs in the file's comments carry marks)."""
    try:
        return "".join(unicodedata.lookup(name) for name in entry["n"].split(", "))
    except KeyError:  # a character newer than this Python's Unicode database: it cannot be normalised
        return None


def _prototypes() -> dict[str, str]:
    """confusables.txt's mapping: each source character to its prototype (one or more characters)."""
    data: dict[str, list[dict[str, str]]] = load("confusables.json")
    position = {key: index for index, key in enumerate(data)}
    raw: dict[str, str] = {}
    for key, entries in data.items():
        source = key.translate(_BIDI_MARKS)
        if len(source) != 1 or len(entries) != 1:
            continue  # a target (several characters, or named by several sources)
        target_key = entries[0]["c"]
        named_by = data.get(target_key, [])
        if len(target_key.translate(_BIDI_MARKS)) == 1 and len(named_by) == 1 and position[target_key] < position[key]:
            continue  # the pair's other member came first in the file: that one is the source
        target = _exact(entries[0])
        if target is not None:
            raw[source] = target
    return {source: _stable(target, raw) for source, target in raw.items()}


def _stable(text: str, mapping: dict[str, str]) -> str:
    for _ in range(_STABLE_WITHIN):
        mapped = unicodedata.normalize("NFD", "".join(mapping.get(c, c) for c in unicodedata.normalize("NFD", text)))
        if mapped == text:
            return text
        text = mapped
    raise ValueError(f"the confusables mapping does not settle for {text!r}")


# Built when the module is imported (with the URLs, at start-up), never inside a request: it
# takes a good part of a second, and a sign-up holds a database transaction open meanwhile.
_PROTOTYPES: Final = _prototypes()


def skeleton(text: str) -> str:
    """UTS #39's skeleton(X): NFD, each character to its prototype, NFD."""
    mapped = "".join(_PROTOTYPES.get(c, c) for c in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


def skeletons(name: str) -> frozenset[str]:
    """The name's skeletons, case folded after and before the mapping: equal ones mean the names look alike."""
    return frozenset({skeleton(skeleton(name).casefold()), skeleton(name.casefold())})


def lookalike(name: str, existing: Iterable[str]) -> str | None:
    """An existing name (other than `name` itself) that `name` looks like, or None."""
    mine = skeletons(name)
    for other in existing:
        if other != name and mine & skeletons(other):
            return other
    return None
