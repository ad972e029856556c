"""Channel-layer names that the sender (chat.broadcast) and the receiver (chat.fanout) share.

Group names and layer event types live here, below both, so the module that sends and the
module that receives never import each other. Event types are fixed here; a client frame
can never choose one.
"""

from __future__ import annotations

import re
from typing import Any, Final

from chat import protocol
from chat.events import RoomEvent

# Every room change, whatever its kind (ROOM_EVENTS_DESIGN.md): {"type": ROOM_EVENT,
# "room_id", "seq", "text"}, the frame serialised once.
ROOM_EVENT: Final = "chat.room_event"
# Control events (docs/moderation.md): to a room's group, or to a user's group (every
# socket of one user, on every process). No seq: they change no room.
ROOM_ACCESS_EVENT: Final = "chat.room_access"  # the room turned private: re-check access
USER_BANNED_EVENT: Final = "chat.user_banned"
# A user's access ended (signed out of a session, password changed, deactivated, deleted,
# a role lost): to the user's group, so it reaches their sockets on every process.
USER_ACCESS_ENDED_EVENT: Final = "chat.user_access_ended"
USER_ROLES_CHANGED_EVENT: Final = "chat.user_roles_changed"
# Ephemeral events (chat.ephemeral): to a room's group, no seq, never stored, no per-socket
# lock on the way in. {"type", "room_id", "user_id", "text"} (+ "key" for presence).
TYPING_EVENT: Final = "chat.typing"
PRESENCE_EVENT: Final = "chat.presence"
EPHEMERAL_EVENTS: Final = frozenset({TYPING_EVENT, PRESENCE_EVENT})
# A user's presence for the users who share a room membership with them (chat.presence),
# whether or not a socket has the room open: one event to PRESENCE_GROUP, which every
# process with sockets belongs to, {"type", "user_id", "recipients", "key", "text"}; each
# process hands it to its own sockets of those recipients (one publish per change, however
# many recipients, rather than one per recipient's user group).
MEMBER_PRESENCE_EVENT: Final = "chat.member_presence"
PRESENCE_GROUP: Final = "chat.presence"
# A membership was added or removed (chat.fellows): {"type", "room_id", "user_id"} to
# PRESENCE_GROUP, so every process forgets who it thought shared that room.
MEMBERSHIP_CHANGED_EVENT: Final = "chat.membership_changed"
# A frame for every socket of one user (chat.people: roomAdded, roomChanged, roomRemoved):
# {"type", "user_id", "text"}, the frame serialised once.
USER_FRAME_EVENT: Final = "chat.user_frame"
# A user's read state changed (unread/): {"frame", "origin"} to every socket of theirs.
USER_READ_STATE_EVENT: Final = "chat.user_read_state"
USER_EVENTS: Final = frozenset(
    {USER_BANNED_EVENT, USER_ACCESS_ENDED_EVENT, USER_ROLES_CHANGED_EVENT, USER_FRAME_EVENT, USER_READ_STATE_EVENT}
)
# A member of a small room read further (read receipts): {"room_id", "frame"}, no seq.
READ_RECEIPT_EVENT: Final = "chat.read_receipt"

# Channel-layer group names allow ASCII letters, digits, '-', '_' and '.' (under 100).
_USER_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,80}\Z")


def room_group(room_id: str) -> str:
    """Channel-layer group of a room. Room ids are validated by chat.protocol first."""
    return f"chat.room.{protocol.validate_room_id(room_id)}"


def user_group(user_id: str) -> str:
    """Channel-layer group of every socket one user has open."""
    if not _USER_ID_RE.match(user_id):
        raise ValueError(f"user id {user_id!r} cannot name a channel-layer group")
    return f"chat.user.{user_id}"


def layer_event(event: RoomEvent) -> dict[str, Any]:
    """The layer event that carries a room event, its frame serialised once."""
    return {"type": ROOM_EVENT, "room_id": event.room_id, "seq": event.seq, "text": protocol.encode(event.frame)}
