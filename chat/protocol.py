"""Wire protocol v2 (v1 clients keep working): client frames in, server frames out. Pure code, no I/O.

`parse_client_frame` turns the raw text of one WebSocket frame into a typed command or
raises `ProtocolError` with a stable code. `*_frame` functions build server frames as
dicts; `encode` serialises one. Routing follows API Gateway's route selection expression
`$request.body.action`, but through an explicit table: a client frame can never name a
handler or a channel-layer event type. See docs/protocol.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Union

from chat import attachments, events, people_protocol
from chat.errors import ChatError, ErrorCode
from chat.events import RoomEvent
from chat.records import EventRecord, LogEntry, MessageRecord, Room
from chatsite.text import storable

DEFAULT_ROOM: Final = "general"
# \Z, not $: "$" also matches before a trailing newline, which let "general\n" through.
ROOM_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
CLIENT_MESSAGE_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
MESSAGE_ID_RE: Final = re.compile(r"^[A-Za-z0-9-]{1,64}\Z")
MAX_REPORT_REASON: Final = 500
# A moderator's reason from the chat (moderateMessage, banUser): the audit log's limit.
MAX_MODERATION_REASON: Final = 1000
# A ban from the chat lasts at most a year; none (no durationSeconds) lasts until lifted.
MAX_BAN_SECONDS: Final = 365 * 24 * 3600
MODERATION_REMOVALS: Final = frozenset({"hidden", "deleted"})
MAX_HISTORY_LIMIT: Final = 200
# Seqs stay within what a JavaScript number holds exactly (and DynamoDB's 38 digits).
MAX_SEQ: Final = 2**53 - 1


class CloseCode:
    """WebSocket close codes Chatsite sends (4000-4999 are the application's)."""

    GOING_AWAY: Final = 1001  # server shutting down: reconnect elsewhere and resume
    MESSAGE_TOO_BIG: Final = 1009
    INTERNAL_ERROR: Final = 1011
    UNAUTHORIZED: Final = 4401  # no or bad credentials: sign in again
    FORBIDDEN: Final = 4403  # banned
    TOO_MANY_REQUESTS: Final = 4429


class ProtocolError(ChatError):
    """A client frame that cannot be understood. The socket stays open."""


@dataclass(frozen=True, slots=True)
class SendMessage:
    room_id: str
    message: str
    client_message_id: str | None
    legacy: bool = False  # AWS simple-websockets-chat-app's {"action": "sendmessage", "data": ...}
    reply_to: str | None = None  # the id of a message of the same room this one answers
    attachments: tuple[str, ...] = ()  # upload ids (chat.attachments); the text may then be empty


@dataclass(frozen=True, slots=True)
class JoinRoom:
    room_id: str
    last_seq: int | None


@dataclass(frozen=True, slots=True)
class LeaveRoom:
    room_id: str


@dataclass(frozen=True, slots=True)
class History:
    room_id: str
    before_seq: int | None
    limit: int | None
    around_seq: int | None = None  # a page centred on this seq (chat.message_changes.history_around)
    after_seq: int | None = None  # the messages after this seq, oldest first (chat.message_changes.history_after)


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class ReportMessage:
    """A user's report of a message to the moderators (docs/moderation.md)."""

    room_id: str
    message_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ModerateMessage:
    """A moderator hides or deletes a message from the chat itself (docs/moderation.md)."""

    room_id: str
    message_id: str
    removal: str  # "hidden" or "deleted"
    reason: str


@dataclass(frozen=True, slots=True)
class BanUser:
    """A moderator bans a message's author from the chat itself, with a reason."""

    user_id: str
    reason: str
    duration_seconds: int | None  # None: until a moderator lifts it
    room_id: str | None  # where it was done from, for the audit log
    message_id: str | None


# Authentication (docs/protocol.md, "Authentication"). The token is kept out of repr so a
# logged command can never carry it.
SUBPROTOCOL: Final = "chatsite"  # offered next to a token in Sec-WebSocket-Protocol
MAX_TOKEN_CHARS: Final = 16 * 1024  # Cognito's tokens are a few KiB


@dataclass(frozen=True, slots=True)
class Authenticate:
    """The first frame of a socket opened without a session cookie."""

    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A fresh token for an open socket: it stays open, in its rooms, past the old expiry."""

    token: str = field(repr=False)


# Presence and typing (docs/protocol.md, "Presence and typing"): ephemeral, never stored.
@dataclass(frozen=True, slots=True)
class Typing:
    room_id: str


@dataclass(frozen=True, slots=True)
class SetPresence:
    """The client's own say: "away" (its tab is hidden) or "online" (the user is back)."""

    status: str


# Changes people make to messages (chat.message_changes, chat.reactions; docs/protocol.md).


@dataclass(frozen=True, slots=True)
class EditMessage:
    room_id: str
    message_id: str
    message: str
    client_message_id: str | None


@dataclass(frozen=True, slots=True)
class DeleteMessage:
    room_id: str
    message_id: str
    client_message_id: str | None


@dataclass(frozen=True, slots=True)
class ChangeReaction:
    room_id: str
    message_id: str
    emoji: str
    add: bool  # addReaction; False: removeReaction
    client_message_id: str | None


@dataclass(frozen=True, slots=True)
class ReadThread:
    room_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class MarkRead:
    """The user has seen the room up to `seq` (unread/: read state across tabs and devices)."""

    room_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class ReadStates:
    """Unread and mention counts of the given rooms (every room the user sees when None)."""

    room_ids: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Mentions:
    """The latest messages that mention the user, in the rooms they may read."""


@dataclass(frozen=True, slots=True)
class Receipts:
    """Who has read how far in a small room (read receipts)."""

    room_id: str


Command = Union[
    SendMessage,
    JoinRoom,
    LeaveRoom,
    History,
    Ping,
    Authenticate,
    RefreshToken,
    ReportMessage,
    ModerateMessage,
    BanUser,
    Typing,
    SetPresence,
    people_protocol.PeopleCommand,
    EditMessage,
    DeleteMessage,
    ChangeReaction,
    ReadThread,
    MarkRead,
    ReadStates,
    Mentions,
    Receipts,
]


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = 64 * 1024
    max_message_length: int = 4000
    max_attachments: int = 10


# --- parsing --------------------------------------------------------------------------


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")


# One decoder for every frame: json.loads with an argument builds a new JSONDecoder per
# call, 43 % of a frame's decoding (docs/performance.md).
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def parse_client_frame(text: str | None, limits: Limits, *, binary: bool = False) -> Command:
    """Parse one client frame. Raises ProtocolError; never anything else."""
    if binary or text is None:
        raise ProtocolError(ErrorCode.BINARY_FRAME, "binary frames are not supported; send JSON text")
    if len(text) > limits.max_frame_bytes or len(text.encode("utf-8", "surrogatepass")) > limits.max_frame_bytes:
        raise ProtocolError(ErrorCode.FRAME_TOO_LARGE, f"frame exceeds {limits.max_frame_bytes} bytes")
    try:
        body = _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise ProtocolError(ErrorCode.INVALID_JSON, "frame is not valid JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError(ErrorCode.INVALID_FRAME, "frame must be a JSON object")
    # Every error from here on answers the frame's clientMessageId, when it is a valid one.
    cmid = body.get("clientMessageId")
    answers = cmid if isinstance(cmid, str) and CLIENT_MESSAGE_ID_RE.match(cmid) else None
    action = body.get("action")
    if not isinstance(action, str):
        raise ProtocolError(ErrorCode.INVALID_FRAME, "frame needs a string 'action'", client_message_id=answers)
    parser = _PARSERS.get(action)
    if parser is None:
        # Echo the unknown action only if it can be sent back as UTF-8: a JSON escape such
        # as "\ud800" decodes to a lone surrogate, which would crash the send (close 1011).
        echo = action[:40]
        raise ProtocolError(
            ErrorCode.UNKNOWN_ACTION,
            f"unknown action {echo!r}",
            action=echo if _is_utf8(echo) else None,
            client_message_id=answers,
        )
    try:
        return parser(body, limits)
    except ProtocolError as exc:
        exc.action = action
        if exc.client_message_id is None:
            exc.client_message_id = answers
        raise


def _is_utf8(value: str) -> bool:
    return not any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"'{name}' is required")
        return None
    # bool is an int in Python; a JSON true is never a number here.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'{name}' has the wrong type")
    if not isinstance(value, kind):
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'{name}' has the wrong type")
    return value


def validate_room_id(value: Any) -> str:
    if not isinstance(value, str) or isinstance(value, bool):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'roomId' must be a string")
    if not ROOM_ID_RE.match(value):
        raise ProtocolError(
            ErrorCode.INVALID_ROOM,
            "room ids are 1-64 characters: lowercase letters, digits, '-' and '_', starting with a letter or digit",
        )
    return value


def _room(body: dict[str, Any]) -> str:
    if body.get("roomId") is None:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'roomId' is required")
    return validate_room_id(body["roomId"])


def _text(value: str, limits: Limits) -> str:
    if not value.strip():
        raise ProtocolError(ErrorCode.EMPTY_MESSAGE, "message is empty")
    if len(value) > limits.max_message_length:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LONG, f"message is longer than {limits.max_message_length} characters"
        )
    if not storable(value):
        # NUL or a lone surrogate: no store keeps it. A clear refusal, never a retryable
        # storage_unavailable that a client would retry forever.
        raise ProtocolError(ErrorCode.INVALID_FIELD, "message holds characters that cannot be stored (NUL)")
    return value


def _seq(body: dict[str, Any], name: str) -> int | None:
    value = _field(body, name, int, required=False)
    if value is not None and not 0 <= value <= MAX_SEQ:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'{name}' must be an integer from 0 to {MAX_SEQ}")
    return value  # type: ignore[no-any-return]


def _parse_send(body: dict[str, Any], limits: Limits) -> SendMessage:
    cmid = _field(body, "clientMessageId", str, required=False)
    if cmid is not None and not CLIENT_MESSAGE_ID_RE.match(cmid):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'clientMessageId' must be 1-64 characters of [A-Za-z0-9_.:-]")
    room_id = _room(body)
    uploads = _attachments(body, limits)
    reply_to = _message_id(body, "replyTo", required=False)
    if uploads and body.get("message") in (None, ""):
        return SendMessage(room_id=room_id, message="", client_message_id=cmid, reply_to=reply_to, attachments=uploads)
    message = _field(body, "message", str, required=True)
    return SendMessage(
        room_id=room_id, message=_text(message, limits), client_message_id=cmid, reply_to=reply_to, attachments=uploads
    )


def _attachments(body: dict[str, Any], limits: Limits) -> tuple[str, ...]:
    """`attachments`: distinct upload ids, at most limits.max_attachments (issue 18)."""
    value = _field(body, "attachments", list, required=False)
    if not value:
        return ()
    if len(value) > limits.max_attachments:
        raise ProtocolError(ErrorCode.TOO_MANY_ATTACHMENTS, f"at most {limits.max_attachments} attachments per message")
    if not all(isinstance(item, str) and attachments.UPLOAD_ID_RE.match(item) for item in value):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'attachments' must be a list of upload ids")
    if len(set(value)) != len(value):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'attachments' names an upload twice")
    return tuple(value)


def _parse_legacy_send(body: dict[str, Any], limits: Limits) -> SendMessage:
    """AWS simple-websockets-chat-app's frame: {"action": "sendmessage", "data": "hi"}."""
    data = _field(body, "data", str, required=True)
    return SendMessage(room_id=DEFAULT_ROOM, message=_text(data, limits), client_message_id=None, legacy=True)


def _parse_join(body: dict[str, Any], limits: Limits) -> JoinRoom:
    return JoinRoom(room_id=_room(body), last_seq=_seq(body, "lastSeq"))


def _parse_leave(body: dict[str, Any], limits: Limits) -> LeaveRoom:
    return LeaveRoom(room_id=_room(body))


def _parse_history(body: dict[str, Any], limits: Limits) -> History:
    limit = _field(body, "limit", int, required=False)
    if limit is not None and not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'limit' must be between 1 and {MAX_HISTORY_LIMIT}")
    around, after = _seq(body, "aroundSeq"), _seq(body, "afterSeq")
    if sum(body.get(key) is not None for key in ("beforeSeq", "aroundSeq", "afterSeq")) > 1:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'beforeSeq', 'aroundSeq' and 'afterSeq' exclude each other")
    return History(
        room_id=_room(body), before_seq=_seq(body, "beforeSeq"), limit=limit, around_seq=around, after_seq=after
    )


def _parse_ping(body: dict[str, Any], limits: Limits) -> Ping:
    return Ping()


def _parse_report(body: dict[str, Any], limits: Limits) -> ReportMessage:
    room_id = _room(body)
    message_id = _field(body, "messageId", str, required=True)
    if not MESSAGE_ID_RE.match(message_id):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'messageId' is not a message id")
    reason = _field(body, "reason", str, required=True).strip()
    if not reason or len(reason) > MAX_REPORT_REASON or not storable(reason):
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'reason' must be 1-{MAX_REPORT_REASON} characters")
    return ReportMessage(room_id=room_id, message_id=message_id, reason=reason)


def _moderation_reason(body: dict[str, Any]) -> str:
    reason = _field(body, "reason", str, required=True).strip()
    if not reason or len(reason) > MAX_MODERATION_REASON or not storable(reason):
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'reason' must be 1-{MAX_MODERATION_REASON} characters")
    return reason  # type: ignore[no-any-return]


def _parse_moderate(body: dict[str, Any], limits: Limits) -> ModerateMessage:
    room_id = _room(body)
    message_id = _message_id(body)
    assert message_id is not None
    removal = _field(body, "removal", str, required=True)
    if removal not in MODERATION_REMOVALS:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'removal' is 'hidden' or 'deleted'")
    return ModerateMessage(room_id=room_id, message_id=message_id, removal=removal, reason=_moderation_reason(body))


def _parse_ban(body: dict[str, Any], limits: Limits) -> BanUser:
    user_id = _field(body, "userId", str, required=True)
    if not user_id or len(user_id) > 128:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'userId' is not a user id")
    duration = _field(body, "durationSeconds", int, required=False)
    if duration is not None and not 1 <= duration <= MAX_BAN_SECONDS:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'durationSeconds' must be 1-{MAX_BAN_SECONDS}")
    room_id = _room(body) if body.get("roomId") is not None else None
    return BanUser(
        user_id=user_id,
        reason=_moderation_reason(body),
        duration_seconds=duration,
        room_id=room_id,
        message_id=_message_id(body, required=False),
    )


def _message_id(body: dict[str, Any], name: str = "messageId", *, required: bool = True) -> str | None:
    value = _field(body, name, str, required=required)
    if value is not None and not MESSAGE_ID_RE.match(value):
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'{name}' is not a message id")
    return value  # type: ignore[no-any-return]


def _client_message_id(body: dict[str, Any]) -> str | None:
    cmid = _field(body, "clientMessageId", str, required=False)
    if cmid is not None and not CLIENT_MESSAGE_ID_RE.match(cmid):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'clientMessageId' must be 1-64 characters of [A-Za-z0-9_.:-]")
    return cmid  # type: ignore[no-any-return]


def _parse_edit(body: dict[str, Any], limits: Limits) -> EditMessage:
    cmid = _client_message_id(body)
    room_id, message_id = _room(body), _message_id(body)
    assert message_id is not None
    text = _text(_field(body, "message", str, required=True), limits)
    return EditMessage(room_id=room_id, message_id=message_id, message=text, client_message_id=cmid)


def _parse_delete(body: dict[str, Any], limits: Limits) -> DeleteMessage:
    cmid = _client_message_id(body)
    room_id, message_id = _room(body), _message_id(body)
    assert message_id is not None
    return DeleteMessage(room_id=room_id, message_id=message_id, client_message_id=cmid)


def _parse_reaction(add: bool) -> Callable[[dict[str, Any], Limits], ChangeReaction]:
    def parse(body: dict[str, Any], limits: Limits) -> ChangeReaction:
        cmid = _client_message_id(body)
        room_id, message_id = _room(body), _message_id(body)
        assert message_id is not None
        emoji = _field(body, "emoji", str, required=True)
        if not emoji or len(emoji) > 64 or not storable(emoji):
            raise ProtocolError(ErrorCode.INVALID_EMOJI, "a reaction is exactly one emoji")
        return ChangeReaction(room_id=room_id, message_id=message_id, emoji=emoji, add=add, client_message_id=cmid)

    return parse


def _parse_thread(body: dict[str, Any], limits: Limits) -> ReadThread:
    room_id, message_id = _room(body), _message_id(body)
    assert message_id is not None
    return ReadThread(room_id=room_id, message_id=message_id)


def _token(body: dict[str, Any]) -> str:
    token = _field(body, "token", str, required=True)
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'token' must be 1-{MAX_TOKEN_CHARS} characters")
    return token  # type: ignore[no-any-return]


def _parse_authenticate(body: dict[str, Any], limits: Limits) -> Authenticate:
    return Authenticate(token=_token(body))


def _parse_refresh_token(body: dict[str, Any], limits: Limits) -> RefreshToken:
    return RefreshToken(token=_token(body))


def _parse_typing(body: dict[str, Any], limits: Limits) -> Typing:
    return Typing(room_id=_room(body))


def _parse_presence(body: dict[str, Any], limits: Limits) -> SetPresence:
    status = _field(body, "status", str, required=True)
    if status not in ("online", "away"):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'status' must be 'online' or 'away'")
    return SetPresence(status=status)


# People and rooms (chat.people_protocol holds the commands) ----------------------------------


def _username(body: dict[str, Any], name: str = "username", *, required: bool = True) -> str | None:
    value = _field(body, name, str, required=required)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > people_protocol.USERNAME_MAX or not storable(value):
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'{name}' must be a username")
    return value  # type: ignore[no-any-return]


def _flag(body: dict[str, Any], name: str) -> bool | None:
    return _field(body, name, bool, required=False)  # type: ignore[no-any-return]


def _short_text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = _field(body, name, str, required=False)
    if value is not None and (len(value) > limit or not storable(value)):
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'{name}' must be at most {limit} characters")
    return value  # type: ignore[no-any-return]


def _parse_create_room(body: dict[str, Any], limits: Limits) -> people_protocol.CreateRoom:
    name = _field(body, "name", str, required=True)
    if len(name) > 200 or not storable(name):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'name' is too long")
    return people_protocol.CreateRoom(
        name=name, private=bool(_flag(body, "private")), topic=_short_text(body, "topic", 250) or ""
    )


def _parse_update_room(body: dict[str, Any], limits: Limits) -> people_protocol.UpdateRoom:
    return people_protocol.UpdateRoom(
        room_id=_room(body),
        name=_short_text(body, "name", 200),
        topic=_short_text(body, "topic", 250),
        private=_flag(body, "private"),
    )


def _parse_add_member(body: dict[str, Any], limits: Limits) -> people_protocol.AddMember:
    return people_protocol.AddMember(room_id=_room(body), username=_username(body, required=False))


def _parse_remove_member(body: dict[str, Any], limits: Limits) -> people_protocol.RemoveMember:
    return people_protocol.RemoveMember(room_id=_room(body), username=_username(body, required=False))


def _parse_set_member_role(body: dict[str, Any], limits: Limits) -> people_protocol.SetMemberRole:
    role = _field(body, "role", str, required=True)
    if role not in ("owner", "member"):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'role' must be 'owner' or 'member'")
    username = _username(body)
    assert username is not None
    return people_protocol.SetMemberRole(room_id=_room(body), username=username, role=role)


def _parse_mute_room(body: dict[str, Any], limits: Limits) -> people_protocol.MuteRoom:
    muted = _flag(body, "muted")
    return people_protocol.MuteRoom(room_id=_room(body), muted=True if muted is None else muted)


def _parse_list_rooms(body: dict[str, Any], limits: Limits) -> people_protocol.ListRooms:
    return people_protocol.ListRooms()


def _parse_browse_rooms(body: dict[str, Any], limits: Limits) -> people_protocol.BrowseRooms:
    return people_protocol.BrowseRooms(query=_short_text(body, "query", 100))


def _parse_open_direct(body: dict[str, Any], limits: Limits) -> people_protocol.OpenDirect:
    names = body.get("usernames")
    if names is None and body.get("username") is not None:
        names = [body["username"]]
    if not isinstance(names, list) or not names or len(names) > people_protocol.MAX_DIRECT_USERNAMES:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'usernames' must be a list of usernames")
    usernames = tuple(_username({"username": name}) or "" for name in names)
    return people_protocol.OpenDirect(usernames=usernames)


def _parse_members(body: dict[str, Any], limits: Limits) -> people_protocol.Members:
    after = _field(body, "next", str, required=False)
    if after is not None and not 0 < len(after) <= 128:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'next' must be the next of a members answer")
    return people_protocol.Members(room_id=_room(body), after=after)


_PEOPLE_PARSERS: Final[dict[str, Callable[[dict[str, Any], Limits], Any]]] = {
    "createRoom": _parse_create_room,
    "updateRoom": _parse_update_room,
    "addMember": _parse_add_member,
    "removeMember": _parse_remove_member,
    "setMemberRole": _parse_set_member_role,
    "muteRoom": _parse_mute_room,
    "listRooms": _parse_list_rooms,
    "browseRooms": _parse_browse_rooms,
    "openDirect": _parse_open_direct,
    "members": _parse_members,
}


def _parse_mark_read(body: dict[str, Any], limits: Limits) -> MarkRead:
    room_id = _room(body)
    seq = _seq(body, "seq")
    if seq is None:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "'seq' is required")
    return MarkRead(room_id=room_id, seq=seq)


MAX_READ_STATE_ROOMS: Final = 200


def _parse_read_states(body: dict[str, Any], limits: Limits) -> ReadStates:
    rooms = _field(body, "roomIds", list, required=False)
    if rooms is None:
        return ReadStates(room_ids=None)
    if len(rooms) > MAX_READ_STATE_ROOMS:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"'roomIds' holds at most {MAX_READ_STATE_ROOMS} rooms")
    return ReadStates(room_ids=tuple(dict.fromkeys(validate_room_id(r) for r in rooms)))


def _parse_mentions(body: dict[str, Any], limits: Limits) -> Mentions:
    return Mentions()


def _parse_receipts(body: dict[str, Any], limits: Limits) -> Receipts:
    return Receipts(room_id=_room(body))


_PARSERS: Final[dict[str, Callable[[dict[str, Any], Limits], Command]]] = {
    "sendMessage": _parse_send,
    "sendmessage": _parse_legacy_send,
    "joinRoom": _parse_join,
    "leaveRoom": _parse_leave,
    "history": _parse_history,
    "ping": _parse_ping,
    "authenticate": _parse_authenticate,
    "refreshToken": _parse_refresh_token,
    "reportMessage": _parse_report,
    "moderateMessage": _parse_moderate,
    "banUser": _parse_ban,
    "typing": _parse_typing,
    "presence": _parse_presence,
    **_PEOPLE_PARSERS,
    "editMessage": _parse_edit,
    "deleteMessage": _parse_delete,
    "addReaction": _parse_reaction(True),
    "removeReaction": _parse_reaction(False),
    "thread": _parse_thread,
    "markRead": _parse_mark_read,
    "readStates": _parse_read_states,
    "mentions": _parse_mentions,
    "receipts": _parse_receipts,
}
CLIENT_ACTIONS: Final = frozenset(_PARSERS)
_ACTION_OF: Final[dict[type, str]] = {
    JoinRoom: "joinRoom",
    LeaveRoom: "leaveRoom",
    History: "history",
    Ping: "ping",
    Authenticate: "authenticate",
    RefreshToken: "refreshToken",
    ReportMessage: "reportMessage",
    ModerateMessage: "moderateMessage",
    BanUser: "banUser",
    Typing: "typing",
    SetPresence: "presence",
    **people_protocol.ACTIONS,
    EditMessage: "editMessage",
    DeleteMessage: "deleteMessage",
    ReadThread: "thread",
    MarkRead: "markRead",
    ReadStates: "readStates",
    Mentions: "mentions",
    Receipts: "receipts",
}


def action_of(command: Command) -> str:
    """The client action a command came from: what an error frame answering it names."""
    if isinstance(command, SendMessage):
        return "sendmessage" if command.legacy else "sendMessage"
    if isinstance(command, ChangeReaction):
        return "addReaction" if command.add else "removeReaction"
    return _ACTION_OF[type(command)]


# --- server frames --------------------------------------------------------------------


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds: 2026-11-26T06:55:06.123Z."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def message_payload(message: MessageRecord) -> dict[str, Any]:
    payload = {
        "roomId": message.room_id,
        "messageId": message.message_id,
        "seq": message.seq,
        "userId": message.user_id,
        "username": message.username,
        "message": message.text,
        "timestamp": format_timestamp(message.timestamp),
        "clientMessageId": message.client_message_id,
    }
    if message.removed is not None:
        # A tombstone: the seq stays (no hole), the text never leaves the server.
        payload["message"] = ""
        payload["removed"] = True
        if message.removed_by is not None:
            payload["removedBy"] = message.removed_by
    elif message.mentions:
        payload["mentions"] = list(message.mentions)  # user ids the server resolved (chat.mentions)
    elif message.attachments:
        # Shared files with short-lived URLs (issue 18); a tombstone's files are gone.
        payload["attachments"] = attachments.frame_entries(message.attachments)
    payload.update(changes_payload(message))
    return payload


def changes_payload(message: MessageRecord) -> dict[str, Any]:
    """What people changed of a message, only where there is something (frames stay small):
    editedAt, replyTo (the quoted original; a removed one's excerpt is blank and says so; and
    the original's replyCount with this reply), replyCount (its thread) and reactions."""
    extra: dict[str, Any] = {}
    if message.edited_at is not None and message.removed is None:
        extra["editedAt"] = format_timestamp(message.edited_at)
    if message.reply_to is not None:
        reply = message.reply_to
        quoted: dict[str, Any] = {"messageId": reply.message_id, "seq": reply.seq, "username": reply.username}
        quoted["excerpt"] = "" if reply.removed else reply.excerpt
        if reply.removed:
            quoted["removed"] = True
        if reply.number:
            # The original's replyCount with this reply: a client keeps the largest it saw.
            quoted["replyCount"] = reply.number
        extra["replyTo"] = quoted
    if message.reply_count:
        extra["replyCount"] = message.reply_count
    if message.reactions and message.removed is None:
        extra["reactions"] = events.reactions_summary(message.reactions)
    return extra


def changed_frame(
    action: str, room_id: str, message_id: str, *, seq: int | None, client_message_id: str | None
) -> dict[str, Any]:
    """The answer to editMessage, deleteMessage, addReaction and removeReaction: done, and
    the seq of the room event that says so (null: nothing changed, e.g. a retry)."""
    frame: dict[str, Any] = {
        "type": "changed",
        "action": action,
        "roomId": room_id,
        "messageId": message_id,
        "seq": seq,
    }
    if client_message_id is not None:
        frame["clientMessageId"] = client_message_id
    return frame


def thread_frame(room_id: str, root: MessageRecord, replies: list[MessageRecord]) -> dict[str, Any]:
    return {
        "type": "thread",
        "roomId": room_id,
        "messageId": root.message_id,
        "root": message_payload(root),
        "messages": [message_payload(m) for m in replies],
    }


def message_frame(message: MessageRecord) -> dict[str, Any]:
    return {"type": "message", **message_payload(message)}


def ack_frame(message: MessageRecord) -> dict[str, Any]:
    return {
        "type": "ack",
        "roomId": message.room_id,
        "clientMessageId": message.client_message_id,
        "messageId": message.message_id,
        "seq": message.seq,
    }


def joined_frame(
    room_id: str,
    last_seq: int,
    messages: list[MessageRecord],
    *,
    recovered: bool,
    room: Room | None = None,
    removed: list[tuple[str, int]] | None = None,
    room_events: list[RoomEvent] | None = None,
) -> dict[str, Any]:
    """`room`: the room's settings, sent when any differs from the default (a room that is
    private, read-only, archived or in slow mode); `removed`: (messageId, seq) of messages
    at or below the client's lastSeq removed since (v1 clients show tombstones);
    `room_events`: for a recovered resume, every room event after lastSeq (v2 clients
    apply these and may ignore `messages` and `removed`)."""
    frame: dict[str, Any] = {
        "type": "joined",
        "roomId": room_id,
        "lastSeq": last_seq,
        "messages": [message_payload(m) for m in messages],
        "recovered": recovered,
    }
    if room is not None and (room.private or room.read_only or room.archived or room.slow_mode_seconds):
        frame["room"] = room_settings(room)
    if removed:
        frame["removed"] = [{"messageId": message_id, "seq": seq} for message_id, seq in removed]
    if room_events is not None:
        frame["events"] = [event.frame for event in room_events]
    return frame


def room_settings(room: Room) -> dict[str, Any]:
    """What a client shows of a room's moderation settings."""
    return events.room_settings(
        name=room.name,
        private=room.private,
        read_only=room.read_only,
        archived=room.archived,
        slow_mode_seconds=room.slow_mode_seconds,
        topic=room.topic,
    )


def room_event(entry: LogEntry) -> RoomEvent:
    """A stored log entry as the frame a joined socket gets: a message in its current state
    (a tombstone has no text), any other event as it was stored."""
    if isinstance(entry, EventRecord):
        return RoomEvent(entry.room_id, entry.seq, events.frame(entry.type, entry.room_id, entry.seq, entry.data))
    return RoomEvent(entry.room_id, entry.seq, message_frame(entry))


def reported_frame(room_id: str, message_id: str) -> dict[str, Any]:
    return {"type": "reported", "roomId": room_id, "messageId": message_id}


def moderated_frame(room_id: str, message_id: str, removal: str) -> dict[str, Any]:
    """The answer to moderateMessage; every joined socket gets the room's messageRemoved."""
    return {"type": "moderated", "roomId": room_id, "messageId": message_id, "removal": removal}


def user_banned_frame(*, user_id: str, username: str, until: datetime | None) -> dict[str, Any]:
    """The answer to banUser: the user's sockets are closing with 4403 on every process."""
    return {
        "type": "userBanned",
        "userId": user_id,
        "username": username,
        "until": format_timestamp(until) if until is not None else None,
    }


def banned_frame(*, reason: str, until: datetime | None) -> dict[str, Any]:
    """Sent to a banned user's socket just before it closes with 4403: why, and until when
    (null: until a moderator lifts it), so the page can say so instead of a bare refusal."""
    return {"type": "banned", "reason": reason, "until": format_timestamp(until) if until is not None else None}


def left_frame(room_id: str, *, reason: str | None = None) -> dict[str, Any]:
    """`reason` when the server took the socket out of the room: "removed" (no longer a
    member) or "private" (the room became private and the user is not a member)."""
    frame = {"type": "left", "roomId": room_id}
    if reason is not None:
        frame["reason"] = reason
    return frame


def history_frame(
    room_id: str,
    messages: list[MessageRecord],
    *,
    has_more: bool,
    around_seq: int | None = None,
    after_seq: int | None = None,
    has_newer: bool = False,
) -> dict[str, Any]:
    """`around_seq` / `after_seq`: the page answers `history` with aroundSeq or afterSeq;
    `hasNewer` says whether messages newer than its last follow (before the client's live view)."""
    frame = {
        "type": "history",
        "roomId": room_id,
        "messages": [message_payload(m) for m in messages],
        "hasMore": has_more,
    }
    if around_seq is not None:
        frame["aroundSeq"] = around_seq
    if after_seq is not None:
        frame["afterSeq"] = after_seq
    if around_seq is not None or after_seq is not None:
        frame["hasNewer"] = has_newer
    return frame


def pong_frame() -> dict[str, Any]:
    return {"type": "pong"}


def authenticated_frame(
    *, user_id: str, username: str, expires_at: datetime | None, moderator: bool = False
) -> dict[str, Any]:
    """The answer to `authenticate` and `refreshToken`; expiresAt is null for a session.
    `moderator` lets a UI offer the moderators' message actions (the server checks anyway)."""
    return {
        "type": "authenticated",
        "userId": user_id,
        "username": username,
        "expiresAt": format_timestamp(expires_at) if expires_at is not None else None,
        "moderator": moderator,
    }


def select_subprotocol(offered: list[str]) -> str | None:
    """The subprotocol to accept: `chatsite` when offered, never a token that sat next to it."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def error_frame(error: ChatError) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": error.code.value, "message": error.message}
    if error.action is not None:
        frame["action"] = error.action
    if error.client_message_id is not None:
        frame["clientMessageId"] = error.client_message_id
    if error.room_id is not None:
        frame["roomId"] = error.room_id
    if error.retryable:
        frame["retryable"] = True
    if error.retry_after is not None:
        frame["retryAfter"] = error.retry_after
    return frame


def read_state_frame(*, room_id: str, last_read_seq: int, unread: int, mentions: int) -> dict[str, Any]:
    """A user's read state in one room: to every socket of theirs. `unread` and `mentions`
    count the unread messages of others, over at most the newest 100 (100 reads "99+")."""
    return {
        "type": "readState",
        "roomId": room_id,
        "lastReadSeq": last_read_seq,
        "unread": unread,
        "mentions": mentions,
    }


# One encoder for every frame, as one decoder: json.dumps with arguments builds a new
# JSONEncoder per call.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(frame: dict[str, Any]) -> str:
    return _ENCODER.encode(frame)
