"""The command table and the handlers that need no service (chat.commands): no server, no database."""

from __future__ import annotations

import asyncio
import typing

import pytest

from accounts.identity import Identity
from chat import commands, protocol
from chat.errors import ChatError, ErrorCode
from chat.tests.fake_socket import FakeSocket

ALICE = Identity(user_id="u1", username="alice")


def command_types(union: object) -> set[type]:
    found: set[type] = set()
    for member in typing.get_args(union):
        found |= command_types(member) if typing.get_args(member) else {member}
    return found


def test_every_command_the_protocol_parses_has_a_handler() -> None:
    """A command type missing from COMMANDS would fail every such frame with internal_error."""
    parsed = command_types(protocol.Command)
    assert len(parsed) > 20
    assert parsed == set(commands.COMMANDS)


def test_an_unexpected_failure_answers_the_frame_it_came_from() -> None:
    """internal_error names the action, room and clientMessageId, so a client can fail that very send."""
    error = commands.internal_error_for(protocol.SendMessage(room_id="general", message="hi", client_message_id="m1"))
    assert (error.code, error.action, error.room_id, error.client_message_id) == (
        ErrorCode.INTERNAL_ERROR,
        "sendMessage",
        "general",
        "m1",
    )
    assert protocol.error_frame(error)["retryable"] is True


def test_an_unexpected_failure_before_a_command_was_parsed_names_nothing() -> None:
    """With no command (the parse itself failed unexpectedly) the error names no action."""
    error = commands.internal_error_for(None)
    assert (error.code, error.action, error.room_id, error.client_message_id) == (
        ErrorCode.INTERNAL_ERROR,
        None,
        None,
        None,
    )
    ping = commands.internal_error_for(protocol.Ping())
    assert (ping.action, ping.room_id, ping.client_message_id) == ("ping", None, None)


@pytest.mark.timeout(5)
async def test_ping_answers_at_once_and_runs_one_tail_check_at_a_time() -> None:
    """pong goes out before the tail check; a second ping while one check runs starts no other."""
    socket = FakeSocket(ALICE)
    socket.catch_up_gate = asyncio.Event()
    await commands.ping(socket, protocol.Ping())
    await commands.ping(socket, protocol.Ping())
    assert socket.frames == [{"type": "pong"}, {"type": "pong"}]
    await asyncio.sleep(0)
    assert socket.catch_ups == [False]
    socket.catch_up_gate.set()
    assert socket.tail_check is not None
    await socket.tail_check
    await commands.ping(socket, protocol.Ping())
    assert socket.tail_check is not None
    await socket.tail_check
    assert socket.catch_ups == [False, False]


@pytest.mark.timeout(5)
async def test_a_tail_check_that_fails_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """A store that is down skips the check with a warning; anything else is logged with its trace."""
    socket = FakeSocket(ALICE)
    socket.catch_up_error = ChatError(ErrorCode.STORAGE_UNAVAILABLE, "down")
    await commands.tail_check(socket)
    socket.catch_up_error = RuntimeError("bug")
    await commands.tail_check(socket)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "chat.commands"]
    assert messages == [
        ("WARNING", "tail check skipped: storage unavailable, connection=c1"),
        ("ERROR", "tail check failed on connection=c1"),
    ]


async def test_leaving_a_room_not_joined_answers_left_and_changes_nothing() -> None:
    """leaveRoom is idempotent: `left` either way; only a joined room is left (and presence told)."""
    socket = FakeSocket(ALICE)
    await commands.leave(socket, protocol.LeaveRoom(room_id="general"))
    assert socket.frames == [{"type": "left", "roomId": "general"}]
    assert socket.presence_changes == 0
