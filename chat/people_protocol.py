"""Client commands and server frames of people and rooms (docs/protocol.md "Rooms users make").

Pure data: chat.protocol parses the actions into these commands (its one table of parsers),
chat.people carries them out, and the frames below are what sockets receive. Nothing here
imports the protocol module, so the protocol can import this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

USERNAME_MAX: Final = 150
MAX_DIRECT_USERNAMES: Final = 50  # a bound on the frame; CHAT_MAX_DIRECT_MEMBERS is the rule


@dataclass(frozen=True, slots=True)
class CreateRoom:
    name: str
    private: bool = False
    topic: str = ""


@dataclass(frozen=True, slots=True)
class UpdateRoom:
    room_id: str
    name: str | None = None
    topic: str | None = None
    private: bool | None = None


@dataclass(frozen=True, slots=True)
class AddMember:
    """Invite `username`; without one, join a public room yourself."""

    room_id: str
    username: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveMember:
    """Take `username` out; without one, leave the room yourself."""

    room_id: str
    username: str | None = None


@dataclass(frozen=True, slots=True)
class SetMemberRole:
    room_id: str
    username: str
    role: str


@dataclass(frozen=True, slots=True)
class MuteRoom:
    room_id: str
    muted: bool = True


@dataclass(frozen=True, slots=True)
class ListRooms:
    pass


@dataclass(frozen=True, slots=True)
class BrowseRooms:
    query: str | None = None


@dataclass(frozen=True, slots=True)
class OpenDirect:
    usernames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Members:
    room_id: str
    after: str | None = None  # the `next` of the previous page


PeopleCommand = (
    CreateRoom
    | UpdateRoom
    | AddMember
    | RemoveMember
    | SetMemberRole
    | MuteRoom
    | ListRooms
    | BrowseRooms
    | OpenDirect
    | Members
)

ACTIONS: Final[dict[type, str]] = {
    CreateRoom: "createRoom",
    UpdateRoom: "updateRoom",
    AddMember: "addMember",
    RemoveMember: "removeMember",
    SetMemberRole: "setMemberRole",
    MuteRoom: "muteRoom",
    ListRooms: "listRooms",
    BrowseRooms: "browseRooms",
    OpenDirect: "openDirect",
    Members: "members",
}
COMMANDS: Final = tuple(ACTIONS)


# Server frames ---------------------------------------------------------------------------

# Per-user frames: to every socket of one user, on every process (the user's group).
ROOM_ADDED: Final = "roomAdded"
ROOM_CHANGED: Final = "roomChanged"
ROOM_REMOVED: Final = "roomRemoved"


def done_frame(action: str, *, room_id: str | None = None, room: dict[str, Any] | None = None) -> dict[str, Any]:
    """The answer to a change that succeeded (the changes themselves arrive as events)."""
    frame: dict[str, Any] = {"type": "done", "action": action}
    if room_id is not None:
        frame["roomId"] = room_id
    if room is not None:
        frame["room"] = room
    return frame


def rooms_frame(rooms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "rooms", "rooms": rooms}


def browse_frame(rooms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "browse", "rooms": rooms}


def members_frame(room_id: str, members: list[dict[str, Any]], next_after: str | None) -> dict[str, Any]:
    return {"type": "members", "roomId": room_id, "members": members, "next": next_after}


def room_added_frame(room: dict[str, Any]) -> dict[str, Any]:
    return {"type": ROOM_ADDED, "room": room}


def room_changed_frame(room: dict[str, Any]) -> dict[str, Any]:
    return {"type": ROOM_CHANGED, "room": room}


def room_removed_frame(room_id: str) -> dict[str, Any]:
    return {"type": ROOM_REMOVED, "roomId": room_id}
