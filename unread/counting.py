"""Unread and mention counts from a bounded window of messages. Pure: no I/O.

Counting never reads every unread message: the store is asked for at most WINDOW messages
after the user's last-read seq, so a count of WINDOW means "WINDOW - 1 or more", which
clients show as "99+".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from chat.records import MessageRecord

WINDOW: Final = 100


@dataclass(frozen=True, slots=True)
class Counts:
    unread: int
    mentions: int


def count(messages: Iterable[MessageRecord], *, user_id: str) -> Counts:
    """Messages of others that are not removed; those among them that mention `user_id`."""
    unread = [m for m in messages if m.user_id != user_id and m.removed is None]
    return Counts(unread=min(len(unread), WINDOW), mentions=sum(user_id in m.mentions for m in unread))


def badge(value: int) -> str:
    """How a count reads in a badge: "" for none, "99+" past 99."""
    if value <= 0:
        return ""
    return "99+" if value >= WINDOW else str(value)


def first_unread(messages: Iterable[MessageRecord], *, last_read_seq: int, user_id: str) -> int | None:
    """The seq of the first message after the mark written by someone else (the divider)."""
    for message in messages:
        if message.seq > last_read_seq and message.user_id != user_id and message.removed is None:
            return message.seq
    return None
