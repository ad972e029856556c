"""Wire protocol v1 without I/O: client frames in, server frames out (docs/protocol.md)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat import people_protocol, protocol
from chat.errors import ChatError, ErrorCode, StorageUnavailable
from chat.protocol import (
    History,
    JoinRoom,
    LeaveRoom,
    Limits,
    Ping,
    ProtocolError,
    SendMessage,
    parse_client_frame,
)
from chat.storage.base import MessageRecord

LIMITS = Limits()  # the defaults: 64 KiB frames, 4000-character messages
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MESSAGE_KEYS = {"roomId", "messageId", "seq", "userId", "username", "message", "timestamp", "clientMessageId"}


def parse(frame: Any, limits: Limits = LIMITS) -> protocol.Command:
    return parse_client_frame(frame if isinstance(frame, str) else json.dumps(frame), limits)


def parse_error(frame: Any, limits: Limits = LIMITS, *, binary: bool = False) -> ProtocolError:
    text = frame if isinstance(frame, str) or frame is None else json.dumps(frame)
    with pytest.raises(ProtocolError) as caught:
        parse_client_frame(text, limits, binary=binary)
    return caught.value


def send(**fields: Any) -> dict[str, Any]:
    return {"action": "sendMessage", "roomId": "general", "message": "hi", "clientMessageId": "c-1", **fields}


def record(**fields: Any) -> MessageRecord:
    values: dict[str, Any] = {
        "message_id": "3ff43218-0000-4000-8000-000000000001",
        "room_id": "general",
        "seq": 7,
        "user_id": "42",
        "username": "alice",
        "text": "héllo <b>",
        "timestamp": datetime(2026, 11, 26, 6, 55, 6, 123456, tzinfo=UTC),
        "connection_id": "conn-1",
        "client_message_id": "c-1",
        "ttl": 1_900_000_000,
    }
    values.update(fields)
    return MessageRecord(**values)


# --- each client action parses to its command ---------------------------------------------


def test_send_message_parses_to_send_command() -> None:
    """sendMessage carries room, text and clientMessageId into a SendMessage."""
    assert parse(send(message="hi there")) == SendMessage(
        room_id="general", message="hi there", client_message_id="c-1", legacy=False
    )


def test_send_message_without_client_message_id_is_accepted() -> None:
    """clientMessageId is recommended, not required."""
    frame = send()
    del frame["clientMessageId"]
    assert parse(frame) == SendMessage(room_id="general", message="hi", client_message_id=None)


def test_legacy_aws_frame_is_a_send_to_general() -> None:
    """AWS simple-websockets-chat-app's {"action":"sendmessage","data":"hi"} sends "hi" to general."""
    assert parse({"action": "sendmessage", "data": "hi"}) == SendMessage(
        room_id="general", message="hi", client_message_id=None, legacy=True
    )


def test_join_room_parses_with_and_without_last_seq() -> None:
    """joinRoom takes an optional non-negative lastSeq (0 included)."""
    assert parse({"action": "joinRoom", "roomId": "dev-ops_1"}) == JoinRoom(room_id="dev-ops_1", last_seq=None)
    assert parse({"action": "joinRoom", "roomId": "general", "lastSeq": 0}) == JoinRoom("general", 0)
    assert parse({"action": "joinRoom", "roomId": "general", "lastSeq": 118}) == JoinRoom("general", 118)


def test_leave_room_parses() -> None:
    """leaveRoom names the room to leave."""
    assert parse({"action": "leaveRoom", "roomId": "general"}) == LeaveRoom(room_id="general")


def test_history_parses_with_optional_before_seq_and_limit() -> None:
    """history takes optional beforeSeq and limit (1-200)."""
    assert parse({"action": "history", "roomId": "general"}) == History("general", before_seq=None, limit=None)
    assert parse({"action": "history", "roomId": "general", "beforeSeq": 120, "limit": 50}) == History(
        "general", before_seq=120, limit=50
    )
    assert parse({"action": "history", "roomId": "general", "limit": 1}).limit == 1  # type: ignore[union-attr]
    assert parse({"action": "history", "roomId": "general", "limit": 200}).limit == 200  # type: ignore[union-attr]


def test_ping_parses() -> None:
    """ping needs nothing but its action."""
    assert parse({"action": "ping"}) == Ping()


def test_json_null_for_an_optional_field_means_absent() -> None:
    """An optional field sent as null is treated as not sent."""
    assert parse({"action": "joinRoom", "roomId": "general", "lastSeq": None}) == JoinRoom("general", None)


def test_room_ids_of_the_allowed_form_are_accepted() -> None:
    """Room ids are 1-64 of [a-z0-9_-], starting with a letter or digit."""
    for room_id in ["a", "0", "general", "room-1_x", "a" * 64, "9" + "-" * 63]:
        assert parse({"action": "leaveRoom", "roomId": room_id}) == LeaveRoom(room_id)


def test_message_limit_counts_characters_not_bytes() -> None:
    """A message of exactly the limit in multi-byte characters is accepted."""
    text = "é" * LIMITS.max_message_length
    assert parse(send(message=text)).message == text  # type: ignore[union-attr]


# --- bad input: ProtocolError with a stable code ------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "not json", "{", '{"action": "ping"', "{'action': 'ping'}", '{"action": "ping"} trailing', "\x00"],
)
def test_invalid_json_is_invalid_json(text: str) -> None:
    """Text that is not one JSON document is rejected as invalid_json."""
    assert parse_error(text).code == "invalid_json"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_invalid_json(constant: str) -> None:
    """JSON has no NaN or Infinity: Python's extensions are refused as invalid_json."""
    assert parse_error(f'{{"action":"joinRoom","roomId":"general","lastSeq":{constant}}}').code == "invalid_json"


def test_deeply_nested_json_is_invalid_json_not_a_crash() -> None:
    """Nesting deep enough to exhaust the parser's recursion is invalid_json (no RecursionError)."""
    depth = 30_000  # 60 KB, under the 64 KiB frame limit
    error = parse_error('{"action":"ping","x":' + "[" * depth + "]" * depth + "}")
    assert error.code == "invalid_json"


def test_binary_frame_is_binary_frame() -> None:
    """A binary frame, even one holding valid JSON, is refused as binary_frame."""
    assert parse_error('{"action":"ping"}', binary=True).code == "binary_frame"
    assert parse_error(None).code == "binary_frame"


@pytest.mark.parametrize("body", ["[]", "1", '"ping"', "null", "true", '[{"action":"ping"}]'])
def test_non_object_json_is_invalid_frame(body: str) -> None:
    """A frame must be a JSON object."""
    assert parse_error(body).code == "invalid_frame"


@pytest.mark.parametrize("action", [None, 1, True, ["ping"], {"name": "ping"}])
def test_missing_or_non_string_action_is_invalid_frame(action: Any) -> None:
    """A frame needs a string action."""
    frame = {"roomId": "general"} if action is None else {"action": action, "roomId": "general"}
    assert parse_error(frame).code == "invalid_frame"


@pytest.mark.parametrize(
    "action",
    [
        "",
        "sendMessages",
        "SendMessage",
        "SENDMESSAGE",
        " ping",
        "ping ",
        # Names of consumer handlers and channel-layer event types must not be reachable.
        "chat_message",
        "chat.message",
        "websocket.connect",
        "websocket.receive",
        "websocket.disconnect",
        "on_send",
        "on_join",
        "receive",
        "disconnect",
        "send_frame",
        "__init__",
        "__class__",
    ],
)
def test_unknown_action_is_unknown_action(action: str) -> None:
    """Only the documented actions route; everything else, handler names included, is unknown_action."""
    error = parse_error({"action": action, "roomId": "general", "message": "hi"})
    assert error.code == "unknown_action"
    assert error.action == action


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "sendMessage", "message": "hi"},
        {"action": "sendMessage", "roomId": "general"},
        {"action": "sendMessage", "roomId": None, "message": "hi"},
        {"action": "sendMessage", "roomId": "general", "message": None},
        {"action": "sendmessage"},
        {"action": "sendmessage", "message": "hi"},
        {"action": "joinRoom"},
        {"action": "leaveRoom"},
        {"action": "history"},
    ],
)
def test_missing_required_field_is_invalid_field(frame: dict[str, Any]) -> None:
    """A missing (or null) required field is invalid_field."""
    assert parse_error(frame).code == "invalid_field"


@pytest.mark.parametrize(
    "frame",
    [
        send(message=1),
        send(message=["hi"]),
        send(message={"text": "hi"}),
        send(message=True),
        send(roomId=1),
        send(roomId=True),
        send(roomId=["general"]),
        send(clientMessageId=1),
        send(clientMessageId=True),
        send(clientMessageId=""),
        send(clientMessageId="has space"),
        send(clientMessageId="x" * 65),
        send(clientMessageId="c-1\n"),
        send(clientMessageId="ünïcode"),
        {"action": "sendmessage", "data": 1},
        {"action": "sendmessage", "data": ["hi"]},
        {"action": "joinRoom", "roomId": "general", "lastSeq": "1"},
        {"action": "joinRoom", "roomId": "general", "lastSeq": True},
        {"action": "joinRoom", "roomId": "general", "lastSeq": False},
        {"action": "joinRoom", "roomId": "general", "lastSeq": 1.0},
        {"action": "joinRoom", "roomId": "general", "lastSeq": 1.5},
        {"action": "joinRoom", "roomId": "general", "lastSeq": -1},
        {"action": "joinRoom", "roomId": "general", "lastSeq": 2**53},
        {"action": "history", "roomId": "general", "beforeSeq": 10**40},
        {"action": "joinRoom", "roomId": "general", "lastSeq": [1]},
        {"action": "history", "roomId": "general", "beforeSeq": -1},
        {"action": "history", "roomId": "general", "beforeSeq": True},
        {"action": "history", "roomId": "general", "beforeSeq": 2.0},
        {"action": "history", "roomId": "general", "limit": 0},
        {"action": "history", "roomId": "general", "limit": 201},
        {"action": "history", "roomId": "general", "limit": -5},
        {"action": "history", "roomId": "general", "limit": True},
        {"action": "history", "roomId": "general", "limit": 10.0},
        {"action": "history", "roomId": "general", "limit": "10"},
    ],
)
def test_wrong_typed_or_out_of_range_field_is_invalid_field(frame: dict[str, Any]) -> None:
    """Fields of the wrong type or form (true is not a number, 1.0 is not a seq) are invalid_field."""
    assert parse_error(frame).code == "invalid_field"


@pytest.mark.parametrize("text", ["", " ", "\n\t  \r", "\u3000", "\u00a0\u2003"])
def test_empty_or_white_space_message_is_empty_message(text: str) -> None:
    """A message that is empty or only white space is refused as empty_message."""
    assert parse_error(send(message=text)).code == "empty_message"
    assert parse_error({"action": "sendmessage", "data": text}).code == "empty_message"


def test_message_over_the_limit_is_message_too_long() -> None:
    """One character over CHAT_MAX_MESSAGE_LENGTH is message_too_long; the limit itself is fine."""
    limits = Limits(max_message_length=10)
    assert parse(send(message="x" * 10), limits).message == "x" * 10  # type: ignore[union-attr]
    assert parse_error(send(message="x" * 11), limits).code == "message_too_long"
    assert parse_error({"action": "sendmessage", "data": "x" * 11}, limits).code == "message_too_long"
    assert parse_error(send(message="x" * (LIMITS.max_message_length + 1))).code == "message_too_long"


@pytest.mark.parametrize(
    "room_id",
    [
        "",
        "General",
        "GENERAL",
        "a" * 65,
        "my room",
        " general",
        "general ",
        "general\n",
        "gen\teral",
        "a.b",
        "chat.room.x",
        "café",
        "общий",
        "🙂",
        "../etc",
        "a/b",
        "/general",
        "-abc",
        "_abc",
        "a*",
        "a!b",
        "\x00",
    ],
)
def test_invalid_room_id_is_invalid_room(room_id: str) -> None:
    """Room ids outside [a-z0-9][a-z0-9_-]{0,63} are invalid_room for every action that takes one."""
    for action in ("sendMessage", "joinRoom", "leaveRoom", "history"):
        error = parse_error({"action": action, "roomId": room_id, "message": "hi"})
        assert (error.code, error.action) == ("invalid_room", action)


def test_validate_room_id_refuses_a_trailing_newline() -> None:
    """A trailing newline never slips into a room id (and so into a group name or a stored row)."""
    with pytest.raises(ProtocolError):
        protocol.validate_room_id("general\n")
    assert protocol.ROOM_ID_RE.match("general\n") is None


def test_frame_over_the_byte_limit_is_frame_too_large() -> None:
    """A frame over max_frame_bytes is frame_too_large; a frame of exactly the limit is parsed."""
    limits = Limits(max_frame_bytes=1024)
    head, tail = '{"action":"ping","pad":"', '"}'
    exact = head + "x" * (1024 - len(head) - len(tail)) + tail
    assert len(exact.encode()) == 1024
    assert parse_client_frame(exact, limits) == Ping()
    assert parse_error(exact[:-2] + 'x"}', limits).code == "frame_too_large"


def test_frame_limit_counts_utf8_bytes_not_characters() -> None:
    """Multi-byte characters count as their UTF-8 bytes towards the frame limit."""
    limits = Limits(max_frame_bytes=1024, max_message_length=4000)
    frame = json.dumps(send(message="€" * 400), ensure_ascii=False)  # about 450 characters, 1250 bytes
    assert len(frame) < 1024 < len(frame.encode())
    assert parse_error(frame, limits).code == "frame_too_large"


def test_frame_limit_is_checked_before_parsing() -> None:
    """An oversize frame is frame_too_large even when it is not JSON at all."""
    assert parse_error("x" * (LIMITS.max_frame_bytes + 1)).code == "frame_too_large"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (send(message="\ud800"), "invalid_field"),
        (send(message="ok \udfff ok"), "invalid_field"),
        ({"action": "sendmessage", "data": "\udc00"}, "invalid_field"),
        (send(clientMessageId="\ud800"), "invalid_field"),
        (send(roomId="\ud800"), "invalid_room"),
        ({"action": "\ud800"}, "unknown_action"),
        ({"action": "ping\udc00"}, "unknown_action"),
    ],
)
def test_lone_surrogates_are_refused_and_the_error_frame_is_valid_utf8(frame: dict[str, Any], code: str) -> None:
    """JSON escapes of lone surrogates are refused, and the error frame can still be sent as UTF-8."""
    error = parse_error(json.dumps(frame))  # json.dumps writes the \\ud800 escape a client would send
    assert error.code == code
    protocol.encode(protocol.error_frame(error)).encode("utf-8")


# --- error frames answer the action and clientMessageId they refuse --------------------------


def test_field_error_carries_action_and_client_message_id() -> None:
    """An error in a sendMessage names the action and the clientMessageId it answers."""
    error = parse_error(send(message="   ", clientMessageId="c-42"))
    assert error_frame_of(error) == {
        "type": "error",
        "code": "empty_message",
        "message": error.message,
        "action": "sendMessage",
        "clientMessageId": "c-42",
    }


def test_room_error_carries_action_and_client_message_id() -> None:
    """An invalid room in a sendMessage still answers its clientMessageId."""
    frame = error_frame_of(parse_error(send(roomId="Bad Room", clientMessageId="c-7")))
    assert (frame["code"], frame["action"], frame["clientMessageId"]) == ("invalid_room", "sendMessage", "c-7")


def test_invalid_client_message_id_is_not_echoed() -> None:
    """A clientMessageId that is itself invalid is not copied into the error frame."""
    frame = error_frame_of(parse_error(send(clientMessageId="x" * 65)))
    assert frame["code"] == "invalid_field"
    assert frame["action"] == "sendMessage"
    assert "clientMessageId" not in frame


def test_unknown_action_error_carries_action_and_client_message_id() -> None:
    """An unknown action's error frame names that action and the frame's clientMessageId."""
    frame = error_frame_of(parse_error({"action": "pinMessage", "roomId": "general", "clientMessageId": "c-9"}))
    assert (frame["code"], frame["action"], frame["clientMessageId"]) == ("unknown_action", "pinMessage", "c-9")


def test_unknown_action_echo_is_truncated() -> None:
    """A huge unknown action is not echoed back in full."""
    frame = error_frame_of(parse_error({"action": "x" * 10_000}))
    assert frame["code"] == "unknown_action"
    assert len(frame["action"]) <= 64
    assert len(frame["message"]) <= 200


def test_invalid_frame_error_carries_client_message_id() -> None:
    """A frame with no action still answers the clientMessageId it carries."""
    frame = error_frame_of(parse_error({"roomId": "general", "message": "hi", "clientMessageId": "c-3"}))
    assert (frame["code"], frame["clientMessageId"]) == ("invalid_frame", "c-3")
    assert "action" not in frame


def error_frame_of(error: ChatError) -> dict[str, Any]:
    frame = protocol.error_frame(error)
    assert json.loads(protocol.encode(frame)) == frame
    return frame


# --- server frames: exactly the documented keys --------------------------------------------


def test_message_frame_has_exactly_the_documented_keys() -> None:
    """message: type plus roomId, messageId, seq, userId, username, message, timestamp, clientMessageId."""
    frame = protocol.message_frame(record())
    assert frame == {
        "type": "message",
        "roomId": "general",
        "messageId": "3ff43218-0000-4000-8000-000000000001",
        "seq": 7,
        "userId": "42",
        "username": "alice",
        "message": "héllo <b>",
        "timestamp": "2026-11-26T06:55:06.123Z",
        "clientMessageId": "c-1",
    }


def test_message_without_client_message_id_has_null() -> None:
    """A message sent without a clientMessageId carries clientMessageId null."""
    frame = json.loads(protocol.encode(protocol.message_frame(record(client_message_id=None))))
    assert "clientMessageId" in frame
    assert frame["clientMessageId"] is None


def test_ack_frame_has_exactly_the_documented_keys() -> None:
    """ack: roomId, clientMessageId, messageId, seq — no message text."""
    assert protocol.ack_frame(record()) == {
        "type": "ack",
        "roomId": "general",
        "clientMessageId": "c-1",
        "messageId": "3ff43218-0000-4000-8000-000000000001",
        "seq": 7,
    }


def test_joined_frame_has_exactly_the_documented_keys() -> None:
    """joined: roomId, lastSeq, messages (message payloads without type), recovered."""
    frame = protocol.joined_frame("general", 8, [record(seq=7), record(seq=8, message_id="m8")], recovered=False)
    assert set(frame) == {"type", "roomId", "lastSeq", "messages", "recovered"}
    assert (frame["type"], frame["roomId"], frame["lastSeq"], frame["recovered"]) == ("joined", "general", 8, False)
    assert [set(m) for m in frame["messages"]] == [MESSAGE_KEYS, MESSAGE_KEYS]
    assert [m["seq"] for m in frame["messages"]] == [7, 8]


def test_history_frame_has_exactly_the_documented_keys() -> None:
    """history: roomId, messages, hasMore."""
    frame = protocol.history_frame("general", [record()], has_more=True)
    assert set(frame) == {"type", "roomId", "messages", "hasMore"}
    assert (frame["type"], frame["hasMore"]) == ("history", True)
    assert [set(m) for m in frame["messages"]] == [MESSAGE_KEYS]


def test_pong_and_left_frames() -> None:
    """pong is just its type; left names the room."""
    assert protocol.pong_frame() == {"type": "pong"}
    assert protocol.left_frame("general") == {"type": "left", "roomId": "general"}


def test_minimal_error_frame_has_code_and_message_only() -> None:
    """An error with nothing to answer carries type, code and message only."""
    frame = protocol.error_frame(ChatError(ErrorCode.INVALID_JSON, "frame is not valid JSON"))
    assert frame == {"type": "error", "code": "invalid_json", "message": "frame is not valid JSON"}


def test_retryable_error_frame_says_when_to_retry() -> None:
    """storage_unavailable is retryable and says after how many seconds."""
    error = StorageUnavailable()
    error.action, error.client_message_id, error.room_id = "sendMessage", "c-1", "general"
    frame = protocol.error_frame(error)
    assert frame == {
        "type": "error",
        "code": "storage_unavailable",
        "message": error.message,
        "action": "sendMessage",
        "clientMessageId": "c-1",
        "roomId": "general",
        "retryable": True,
        "retryAfter": 1.0,
    }


def test_error_codes_are_the_documented_wire_strings() -> None:
    """Error codes are part of the wire protocol and never renamed."""
    assert {c.value for c in ErrorCode} >= {
        "invalid_json",
        "binary_frame",
        "frame_too_large",
        "invalid_frame",
        "unknown_action",
        "invalid_field",
        "empty_message",
        "message_too_long",
        "invalid_room",
        "unknown_room",
        "storage_unavailable",
        "internal_error",
    }


def test_timestamps_are_iso8601_utc_with_milliseconds_and_z() -> None:
    """Timestamps are ISO 8601 in UTC with milliseconds and a Z, whatever the input zone."""
    assert protocol.format_timestamp(datetime(2026, 11, 26, 6, 55, 6, 123999, tzinfo=UTC)) == "2026-11-26T06:55:06.123Z"
    assert protocol.format_timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
    plus_two = timezone(timedelta(hours=2))
    assert protocol.format_timestamp(datetime(2026, 1, 1, 1, 0, 0, 5000, tzinfo=plus_two)) == "2025-12-31T23:00:00.005Z"
    stamp = protocol.message_frame(record())["timestamp"]
    assert ISO_UTC.match(stamp)
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)


def test_encode_is_compact_utf8_json_that_keeps_text_as_text() -> None:
    """encode writes compact JSON, keeps non-ASCII as is, and never interprets markup."""
    text = protocol.encode(protocol.message_frame(record(text='<script>alert("x")</script> ünï 🙂')))
    assert ", " not in text and ": " not in text
    assert "🙂" in text
    assert json.loads(text)["message"] == '<script>alert("x")</script> ünï 🙂'


# --- property tests: nothing but a command or a ProtocolError ---------------------------------

# Text that may hold lone surrogates: what a JSON \\ud800 escape decodes to.
any_char = st.characters() | st.characters(categories=["Cs"])
any_text = st.text(any_char, max_size=30)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
actions = st.sampled_from(sorted(protocol.CLIENT_ACTIONS)) | any_text
frames = st.fixed_dictionaries(
    {"action": actions},
    optional={
        "roomId": st.sampled_from(["general", "room-1", "Bad", ""]) | json_values,
        "message": st.text(any_char, max_size=50) | json_values,
        "data": st.text(any_char, max_size=50) | json_values,
        "clientMessageId": st.sampled_from(["c-1", "x" * 65]) | json_values,
        "lastSeq": st.integers(min_value=-3, max_value=10**20) | json_values,
        "beforeSeq": st.integers(min_value=-3, max_value=10**20) | json_values,
        "limit": st.integers(min_value=-3, max_value=300) | json_values,
        "userId": json_values,
        "seq": st.integers(min_value=-3, max_value=10**20) | json_values,
        "roomIds": st.lists(st.sampled_from(["general", "Bad", ""]), max_size=3) | json_values,
    },
)
SMALL = Limits(max_frame_bytes=2048, max_message_length=20)


def check_outcome(text: str | None, *, binary: bool = False) -> None:
    try:
        command = parse_client_frame(text, SMALL, binary=binary)
    except ProtocolError as error:
        assert isinstance(error.code, ErrorCode)
        protocol.encode(protocol.error_frame(error)).encode("utf-8")  # always sendable
        return
    # Whatever parses obeys the field rules.
    assert isinstance(
        command,
        (
            SendMessage,
            JoinRoom,
            LeaveRoom,
            History,
            Ping,
            protocol.Typing,
            protocol.MarkRead,
            protocol.ReadStates,
            protocol.Mentions,
            protocol.Receipts,
            *people_protocol.COMMANDS,
        ),
    )
    room_id = getattr(command, "room_id", "general")
    assert protocol.ROOM_ID_RE.fullmatch(room_id)
    if isinstance(command, SendMessage):
        assert command.message.strip()
        assert len(command.message) <= SMALL.max_message_length
        command.message.encode("utf-8")
        cmid = command.client_message_id
        assert cmid is None or protocol.CLIENT_MESSAGE_ID_RE.fullmatch(cmid)
    for room in getattr(command, "room_ids", None) or ():
        assert protocol.ROOM_ID_RE.fullmatch(room)
    for seq in (getattr(command, "last_seq", None), getattr(command, "before_seq", None), getattr(command, "seq", 0)):
        assert seq is None or (type(seq) is int and seq >= 0)


@settings(max_examples=150, deadline=None)
@given(st.text(any_char))
def test_any_text_parses_or_raises_protocol_error(text: str) -> None:
    """Arbitrary text gives a command or a ProtocolError, nothing else."""
    check_outcome(text)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_any_json_value_parses_or_raises_protocol_error(value: Any) -> None:
    """Arbitrary JSON gives a command or a ProtocolError, nothing else."""
    check_outcome(json.dumps(value))


@settings(max_examples=200, deadline=None)
@given(frames, st.booleans())
def test_any_frame_shaped_object_parses_or_raises_protocol_error(frame: dict[str, Any], ascii_only: bool) -> None:
    """Objects with real and bogus field values give a valid command or a ProtocolError."""
    check_outcome(json.dumps(frame, ensure_ascii=ascii_only))
