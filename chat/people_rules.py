"""The rules of rooms users make, direct messages and membership. Pure: no I/O, no Django.

chat.people asks these before it writes; each refusal is a ChatError with its own code
(docs/protocol.md), raised before anything changed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from chat.errors import ChatError, ErrorCode
from chat.protocol import format_timestamp
from chat.records import MEMBER, OWNER, Membership, Room

ROOM_NAME_MAX: Final = 100
TOPIC_MAX: Final = 250
DIRECT_PREFIX: Final = "dm-"
_SLUG_CUT: Final = re.compile(r"[^a-z0-9]+")
ROOM_ID_MAX: Final = 64
ROOM_ID_TAIL: Final = 6
_TAIL_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"


def clean_room_name(name: str) -> str:
    """The name as stored: spaces trimmed. Refuses an empty or over-long one."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ChatError(ErrorCode.EMPTY_ROOM_NAME, "a room needs a name")
    if len(cleaned) > ROOM_NAME_MAX:
        raise ChatError(ErrorCode.INVALID_FIELD, f"room names are at most {ROOM_NAME_MAX} characters")
    return cleaned


def room_name_key(name: str) -> str:
    """What makes two room names one name: its lowercase ASCII letters and digits joined by
    '-' ("Book Club!" and "book  club" -> "book-club"). A name with no such character ("日本")
    gets "room-" and a digest of it. A name is taken when a room the caller can see has it."""
    cleaned = clean_room_name(name)
    slug = _slug(cleaned)
    if not slug or slug.startswith(DIRECT_PREFIX):
        # Empty, or it would look like a DM's id: a digest of the name instead.
        return "room-" + hashlib.sha256(cleaned.casefold().encode()).hexdigest()[:16]
    return slug


def room_id_for_name(name: str, *, tail: str) -> str:
    """The id a new room of this name gets: its name's slug, '-' and a random `tail`
    ("Book Club!" -> "book-club-k3x9qa"), so the id says what the room is called and never
    depends on the rooms that exist: a room the caller cannot see can never make a name
    refused, or change the id the caller gets (docs/auth.md, "Private rooms are invisible").
    A name with no ASCII letter or digit, or one that would look like a DM's id, gets "room"."""
    slug = _slug(clean_room_name(name))
    if not slug or slug.startswith(DIRECT_PREFIX):
        slug = "room"
    return slug[: ROOM_ID_MAX - 1 - len(tail)].rstrip("-") + "-" + tail


def new_room_id_tail() -> str:
    """ROOM_ID_TAIL letters and digits from the system's random source (36**6, about 2e9, per name)."""
    return "".join(secrets.choice(_TAIL_ALPHABET) for _ in range(ROOM_ID_TAIL))


def _slug(cleaned: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", cleaned).encode("ascii", "ignore").decode().lower()
    return _SLUG_CUT.sub("-", ascii_name).strip("-")[:ROOM_ID_MAX].rstrip("-")


def same_name(room: Room, key: str) -> bool:
    """Whether `room` holds the name of this key (room_name_key): by its name, or by its id for
    rooms whose id is their name (General, rooms made before ids had a tail)."""
    if room.direct:
        return False
    if room.room_id == key:
        return True
    try:
        return room_name_key(room.name) == key
    except ChatError:  # a name stored by other means (a moderator's, a command's) that a user could not give
        return False


def clean_topic(topic: str) -> str:
    cleaned = " ".join(topic.split())
    if len(cleaned) > TOPIC_MAX:
        raise ChatError(ErrorCode.INVALID_FIELD, f"topics are at most {TOPIC_MAX} characters")
    return cleaned


def direct_room_id(user_ids: Iterable[str]) -> str:
    """The one room of these people: `dm-` and a digest of their sorted ids, so opening it
    again, from either side or from two processes at once, names the same room."""
    people = sorted(set(user_ids))
    return DIRECT_PREFIX + hashlib.sha256("\n".join(people).encode()).hexdigest()[:40]


def check_direct_people(*, opener: str, others: Iterable[str], max_members: int) -> list[str]:
    """Everyone in the DM (the opener included), sorted; refuses a DM with nobody else or
    with more than `max_members` people."""
    people = sorted({opener, *others})
    if len(people) < 2:
        raise ChatError(ErrorCode.SELF_INVITE, "a direct message needs someone else")
    if len(people) > max_members:
        raise ChatError(ErrorCode.TOO_MANY_MEMBERS, f"a group direct message has at most {max_members} people")
    return people


def may_manage(*, membership: Membership | None, is_moderator: bool) -> bool:
    """Owners manage their room; moderators keep every power they have."""
    return is_moderator or (membership is not None and membership.role == OWNER)


def require_manager(*, room: Room, membership: Membership | None, is_moderator: bool) -> None:
    if room.direct:
        raise ChatError(ErrorCode.DIRECT_ROOM, "a direct message has no settings or invitations", room_id=room.room_id)
    if not may_manage(membership=membership, is_moderator=is_moderator):
        raise ChatError(ErrorCode.NOT_OWNER, "only the room's owners may do this", room_id=room.room_id)


def check_owner_stays(*, members: list[Membership], user_id: str, new_role: str | None) -> None:
    """A room with members keeps an owner: removing (new_role None) or demoting the last one
    is refused while anyone else is in the room. Rooms that never had an owner (made by
    moderators) are not held to it."""
    owners = {m.user_id for m in members if m.role == OWNER}
    if user_id not in owners or len(owners) > 1 or new_role == OWNER:
        return
    others = [m for m in members if m.user_id != user_id]
    if others:
        raise ChatError(ErrorCode.LAST_OWNER, "hand ownership to another member first")


def check_role(role: str) -> str:
    if role not in (OWNER, MEMBER):
        raise ChatError(ErrorCode.INVALID_FIELD, "'role' must be 'owner' or 'member'")
    return role


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def room_summary(room: Room, membership: Membership | None, *, title: str | None = None) -> dict[str, Any]:
    """A room as a member's room list shows it (listRooms, roomAdded, roomChanged)."""
    return {
        "roomId": room.room_id,
        "name": title or room.name,
        "kind": room.kind,
        "topic": room.topic,
        "lastSeq": room.last_seq,
        "lastActivity": _time(room.last_activity or room.created_at),
        "role": membership.role if membership is not None else None,
        "muted": membership.muted if membership is not None else False,
        "archived": room.archived,
    }


def by_last_activity(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most recently active first (ISO timestamps sort as strings), then by name."""
    by_name = sorted(summaries, key=lambda s: str(s["name"]).casefold())
    return sorted(by_name, key=lambda s: s["lastActivity"] or "", reverse=True)
