"""Typing indicators, the service: admit a `typing` frame, check the typist may post, fan it out.

The rules are chat.typing_rules. Nothing is stored and nothing takes a seq: the frame
goes to the room's group as an ephemeral event (chat.broadcast.typing), which every
process hands to its local sockets in the room but the typist's own. Whether the typist
may post (not archived, not read-only, not muted) is read at most once per
TYPING_PERMISSION_SECONDS per user and room, after the gate: a room full of typists costs
the database nothing per frame, and a mute takes effect on typing within that time. The
room's settings and its muted users are read once per room for that time, not per typist
(two queries per busy room per TYPING_PERMISSION_SECONDS).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Final

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q

from accounts.identity import Identity
from chat import broadcast, protocol, services
from chat.moderation_models import Mute
from chat.typing_rules import TypingGate, may_type, typing_frame

TYPING_PERMISSION_SECONDS: Final = 10.0
MAX_PERMISSIONS: Final = 50_000


class _Typing:
    def __init__(self) -> None:
        self.gate = TypingGate(interval=float(settings.CHAT_TYPING_INTERVAL_SECONDS))
        # room -> (read until, archived, read-only, the user ids muted there)
        self.rooms: dict[str, tuple[float, bool, bool, frozenset[str]]] = {}


_state: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Typing] = weakref.WeakKeyDictionary()


def _local() -> _Typing:
    loop = asyncio.get_running_loop()
    found = _state.get(loop)
    if found is None:
        found = _state[loop] = _Typing()
    return found


def _muted_in(room_id: str) -> frozenset[str]:
    mutes = Mute.active(services.utcnow()).filter(Q(room_id="") | Q(room_id=room_id))
    return frozenset(str(user_id) for user_id in mutes.values_list("user_id", flat=True))


async def _may_type(local: _Typing, identity: Identity, room_id: str, now: float) -> bool:
    known = local.rooms.get(room_id)
    if known is None or known[0] <= now:
        room = await services.room_read(room_id=room_id)
        muted = await database_sync_to_async(_muted_in)(room_id)
        if len(local.rooms) >= MAX_PERMISSIONS:
            local.rooms.clear()
        known = local.rooms[room_id] = (now + TYPING_PERMISSION_SECONDS, room.archived, room.read_only, muted)
    _, archived, read_only, muted_users = known
    return may_type(
        archived=archived, read_only=read_only, muted=identity.user_id in muted_users, moderator=identity.is_moderator
    )


async def typing_send(*, identity: Identity, room_id: str) -> bool:
    """Tell the room `identity` is typing; False when the frame was dropped (too soon after
    the last one, or the user may not post there). Never raises for either."""
    local = _local()
    now = time.monotonic()
    if not local.gate.admit(identity.user_id, room_id, now):
        return False
    if not await _may_type(local, identity, room_id, now):
        return False
    frame = typing_frame(room_id=room_id, user_id=identity.user_id, username=identity.username)
    return await broadcast.typing(room_id, identity.user_id, protocol.encode(frame))
