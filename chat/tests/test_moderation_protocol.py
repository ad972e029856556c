"""The moderation parts of the wire protocol, pure: reportMessage, tombstones and the new frames."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from chat import events, protocol
from chat.errors import ChatError, ErrorCode
from chat.protocol import Limits, ProtocolError, ReportMessage
from chat.storage.base import EventRecord, MessageRecord, Room

MESSAGE = MessageRecord(
    message_id="3ff43218-0000-4000-8000-000000000001",
    room_id="general",
    seq=7,
    user_id="17",
    username="alice",
    text="something regrettable",
    timestamp=datetime(2026, 11, 26, 6, 55, 6, 123000, tzinfo=UTC),
    connection_id="c",
    client_message_id="c-1",
    ttl=2_000_000_000,
)
ROOM = Room(room_id="general", name="General", created_at=MESSAGE.timestamp, created_by=None, last_seq=7)


def parse(frame: dict[str, Any]) -> protocol.Command:
    return protocol.parse_client_frame(json.dumps(frame), Limits())


def test_report_message_parses_room_message_and_trimmed_reason() -> None:
    """reportMessage carries roomId, messageId and a reason (trimmed) and names its action."""
    command = parse(
        {"action": "reportMessage", "roomId": "general", "messageId": MESSAGE.message_id, "reason": "  spam  "}
    )
    assert command == ReportMessage(room_id="general", message_id=MESSAGE.message_id, reason="spam")
    assert protocol.action_of(command) == "reportMessage"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"messageId": "m-1"}, ErrorCode.INVALID_FIELD),  # no reason
        ({"messageId": "m-1", "reason": "   "}, ErrorCode.INVALID_FIELD),
        ({"messageId": "m-1", "reason": "x" * 501}, ErrorCode.INVALID_FIELD),
        ({"messageId": "m-1", "reason": 5}, ErrorCode.INVALID_FIELD),
        ({"messageId": "cmid:not-a-message", "reason": "x"}, ErrorCode.INVALID_FIELD),
        ({"messageId": "", "reason": "x"}, ErrorCode.INVALID_FIELD),
        ({"reason": "x"}, ErrorCode.INVALID_FIELD),  # no messageId
        ({"messageId": "m-1", "reason": "x", "roomId": "Not A Room"}, ErrorCode.INVALID_ROOM),
    ],
)
def test_a_bad_report_is_a_protocol_error_naming_the_action(fields: dict[str, Any], code: ErrorCode) -> None:
    """A report without a valid message id, room or 1-500 character reason is refused with a stable code."""
    with pytest.raises(ProtocolError) as refused:
        parse({"action": "reportMessage", "roomId": "general", **fields})
    assert (refused.value.code, refused.value.action) == (code, "reportMessage")


@pytest.mark.parametrize("removal", ["hidden", "deleted"])
def test_a_removed_message_is_sent_as_a_tombstone_without_its_text(removal: str) -> None:
    """Every frame built from a removed message carries removed: true and empty text, never the text."""
    tombstone = replace(MESSAGE, removed=removal)  # type: ignore[arg-type]
    frames = [
        protocol.message_frame(tombstone),
        protocol.joined_frame("general", 7, [tombstone], recovered=True),
        protocol.history_frame("general", [tombstone], has_more=False),
    ]
    for frame in frames:
        assert "regrettable" not in protocol.encode(frame)
    payload = protocol.message_payload(tombstone)
    assert (payload["message"], payload["removed"], payload["seq"], payload["messageId"]) == (
        "",
        True,
        7,
        MESSAGE.message_id,
    )
    assert "removed" not in protocol.message_payload(MESSAGE)


def test_a_stored_removal_is_a_message_removed_frame_with_its_own_seq() -> None:
    """messageRemoved: type, roomId, its own seq, the messageId, the message's seq and who removed it."""
    stored = EventRecord(
        room_id="general",
        seq=9,
        type=events.MESSAGE_REMOVED,
        data=events.message_removed_data(message_id=MESSAGE.message_id, message_seq=7, removed_by="moderator"),
        timestamp=MESSAGE.timestamp,
        ttl=MESSAGE.ttl,
    )
    event = protocol.room_event(stored)
    assert (event.room_id, event.seq, event.type) == ("general", 9, "messageRemoved")
    assert event.frame == {
        "type": "messageRemoved",
        "roomId": "general",
        "seq": 9,
        "messageId": MESSAGE.message_id,
        "messageSeq": 7,
        "removedBy": "moderator",
    }
    # A message in the log is the message frame a live socket gets, at the message's seq.
    assert protocol.room_event(MESSAGE).frame == protocol.message_frame(MESSAGE)


def test_room_settings_go_out_in_room_updated_and_in_joined_when_not_default() -> None:
    """roomUpdated always carries the settings; joined carries them only for a room with one set."""
    slow = replace(ROOM, slow_mode_seconds=30, read_only=True)
    settings = {"name": "General", "private": False, "readOnly": True, "archived": False, "slowModeSeconds": 30}
    assert protocol.room_settings(slow) == settings
    assert protocol.joined_frame("general", 7, [], recovered=True, room=slow)["room"] == settings
    assert "room" not in protocol.joined_frame("general", 7, [], recovered=True, room=ROOM)


def test_joined_lists_removed_messages_and_events_only_when_given() -> None:
    """A resumed join names the tombstones at or below lastSeq by messageId and seq, and (v2) carries its events."""
    frame = protocol.joined_frame("general", 9, [], recovered=True, removed=[(MESSAGE.message_id, 7)])
    assert frame["removed"] == [{"messageId": MESSAGE.message_id, "seq": 7}]
    assert "events" not in frame
    bare = protocol.joined_frame("general", 9, [], recovered=True, removed=[], room_events=[])
    assert "removed" not in bare and bare["events"] == []


def test_left_says_why_when_the_server_took_the_socket_out() -> None:
    """left carries a reason only when the server removed the socket from the room."""
    assert protocol.left_frame("team", reason="removed") == {"type": "left", "roomId": "team", "reason": "removed"}
    assert protocol.left_frame("team") == {"type": "left", "roomId": "team"}


def test_reported_frame() -> None:
    """reported answers reportMessage with the room and message."""
    assert protocol.reported_frame("general", "m-1") == {"type": "reported", "roomId": "general", "messageId": "m-1"}


def test_slow_mode_is_retryable_after_its_wait_and_a_mute_is_not() -> None:
    """slow_mode says retryable with retryAfter; muted gives retryAfter (when it ends) but is not retryable."""
    slow = protocol.error_frame(ChatError(ErrorCode.SLOW_MODE, "slow", retry_after=12.5))
    assert (slow["code"], slow["retryable"], slow["retryAfter"]) == ("slow_mode", True, 12.5)
    muted = protocol.error_frame(ChatError(ErrorCode.MUTED, "muted", retry_after=600))
    assert (muted["code"], "retryable" in muted, muted["retryAfter"]) == ("muted", False, 600)
    assert {c.value for c in ErrorCode} >= {"room_archived", "read_only", "slow_mode", "muted", "unknown_message"}
