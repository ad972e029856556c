"""@mentions in a message's text: which names it mentions, and whom that reaches. Pure: no I/O.

`parse` finds `@username` and the two broadcast mentions, `@here` (everyone present: a member
with a socket open now, or anyone with a socket in the room now) and `@room` (every member,
and everyone present). `resolve` turns what was parsed into user ids from facts the caller
read: the server resolves mentions, never the client, and a name that is no reader of the
room resolves to nobody (a mention must not tell anyone that a private room exists).
docs/protocol.md "Mentions".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

HERE: Final = "here"
ROOM: Final = "room"
BROADCASTS: Final = frozenset({HERE, ROOM})
# How many users one message may mention: past this a broadcast mention reaches no more.
MAX_MENTIONS: Final = 1000

# Django's usernames are letters, digits and @.+-_; a mention starts after a space or the
# text's start (not inside an e-mail address) and does not take trailing sentence punctuation.
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-")
_TRAILING: Final = ".+-"
MAX_NAME: Final = 150


@dataclass(frozen=True, slots=True)
class Parsed:
    usernames: frozenset[str]  # lowercased, as written after the @
    here: bool = False
    room: bool = False


def parse(text: str) -> Parsed:
    """The mentions written in `text` (names lowercased; @here and @room apart)."""
    names: set[str] = set()
    here = room = False
    i = 0
    while True:
        i = text.find("@", i)
        if i < 0:
            break
        start = i + 1
        if i > 0 and (text[i - 1] in _NAME_CHARS or text[i - 1] == "@"):
            i = start
            continue
        end = start
        while end < len(text) and text[end] in _NAME_CHARS and end - start < MAX_NAME:
            end += 1
        name = text[start:end].rstrip(_TRAILING).lower()
        i = max(end, start)
        if not name:
            continue
        if name == HERE:
            here = True
        elif name == ROOM:
            room = True
        else:
            names.add(name)
    return Parsed(usernames=frozenset(names), here=here, room=room)


def resolve(
    parsed: Parsed,
    *,
    author_id: str,
    user_ids_by_name: Mapping[str, str],
    may_broadcast: bool,
    readers: Iterable[str] | None,
    present: Iterable[str] = (),
    members: Iterable[str] = (),
) -> tuple[str, ...]:
    """The user ids a message mentions, sorted, without its author.

    `user_ids_by_name`: the mentioned names that are active users (lowercased name -> id).
    `readers`: who may read the room (a private room's members), or None for a public room,
    which every user may read. `members`: the room's members (a public room's are those who
    joined it to their list; a private room's are its readers). `present`: users present now
    (members with a socket open, anyone with a socket in the room), for @here and @room.
    `may_broadcast`: owners and moderators only; others' @here/@room stay plain text.
    """
    allowed = None if readers is None else set(readers)

    def readable(user_ids: Iterable[str]) -> set[str]:
        return {u for u in user_ids if allowed is None or u in allowed}

    mentioned = readable(user_ids_by_name.values())
    if may_broadcast and (parsed.here or parsed.room):
        mentioned |= readable(present)
        if parsed.room:
            mentioned |= readable(members) | (allowed or set())
    mentioned.discard(author_id)
    return tuple(sorted(mentioned)[:MAX_MENTIONS])
