"""What a socket does with the events the server pushes that are not room deliveries
(chat.socket_events): the pure rules, and the handlers that need no service, on a fake socket."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.identity import Identity
from accounts.revocation import session_digest
from chat import socket_events
from chat.groups import (
    READ_RECEIPT_EVENT,
    USER_ACCESS_ENDED_EVENT,
    USER_BANNED_EVENT,
    USER_FRAME_EVENT,
    USER_READ_STATE_EVENT,
    USER_ROLES_CHANGED_EVENT,
)
from chat.protocol import CloseCode
from chat.tests.fake_socket import FakeSocket

ALICE = Identity(user_id="u1", username="alice")
ON_SESSION = Identity(user_id="u1", username="alice", session_key="s-1")
ON_TOKEN = Identity(user_id="u1", username="alice", token_origin="o-1")


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "user_id": "u1", **fields}


# The rules ------------------------------------------------------------------------------


def test_a_user_event_is_for_a_signed_in_socket_of_that_user_only() -> None:
    """Another user's event, or any before the socket is signed in, concerns no socket."""
    assert socket_events.is_for_user(ALICE, {"user_id": "u1"}) is True
    assert socket_events.is_for_user(ALICE, {"user_id": "u2"}) is False
    assert socket_events.is_for_user(ALICE, {}) is False
    assert socket_events.is_for_user(None, {"user_id": "u1"}) is False


def test_access_that_ended_everywhere_ends_it_on_every_socket() -> None:
    """An event naming no sign-in (password changed, deactivated) reaches sessions and tokens alike."""
    for identity in (ALICE, ON_SESSION, ON_TOKEN):
        assert socket_events.ends_access_here(identity, {}) is True


def test_a_signed_out_session_ends_only_the_sockets_on_it() -> None:
    """The event names the session by its digest; other sessions and token sockets stay."""
    gone = {"session": session_digest("s-1")}
    assert socket_events.ends_access_here(ON_SESSION, gone) is True
    assert socket_events.ends_access_here(ON_SESSION, {"session": session_digest("s-2")}) is False
    assert socket_events.ends_access_here(ON_TOKEN, gone) is False
    assert socket_events.ends_access_here(ALICE, gone) is False


def test_a_revoked_sign_in_ends_only_the_token_sockets_it_issued() -> None:
    """A refresh token revoked ends the sockets whose token came from it, no others."""
    assert socket_events.ends_access_here(ON_TOKEN, {"token_origin": "o-1"}) is True
    assert socket_events.ends_access_here(ON_TOKEN, {"token_origin": "o-2"}) is False
    assert socket_events.ends_access_here(ON_SESSION, {"token_origin": "o-1"}) is False


def test_every_user_event_type_has_a_handler() -> None:
    """The fan-out's user groups carry these; an unknown type is ignored."""
    assert set(socket_events.USER_EVENTS) == {
        USER_FRAME_EVENT,
        USER_BANNED_EVENT,
        USER_ACCESS_ENDED_EVENT,
        USER_ROLES_CHANGED_EVENT,
        USER_READ_STATE_EVENT,
    }


# The handlers ---------------------------------------------------------------------------


async def test_a_ban_closes_with_4403_and_its_notice() -> None:
    """The `banned` notice goes first, so the page can say why; a closed socket is left alone."""
    socket = FakeSocket(ALICE)
    notice = {"type": "banned", "reason": "spam"}
    await socket_events.user_event(socket, event(USER_BANNED_EVENT, notice=notice))
    assert (socket.closes, socket.notices) == (["forbid"], [notice])
    closed = FakeSocket(ALICE)
    closed.disconnected = True
    await socket_events.user_event(closed, event(USER_BANNED_EVENT, notice=notice))
    assert closed.closes == []


async def test_another_users_event_changes_nothing() -> None:
    """A ban of someone else reaching this socket (it should not) is ignored."""
    socket = FakeSocket(ALICE)
    await socket_events.user_event(socket, {"type": USER_BANNED_EVENT, "user_id": "u2"})
    await socket_events.user_event(socket, event("chat.something_new"))
    assert socket.closes == []
    assert socket.frames == []


async def test_access_that_ended_closes_with_the_events_code_once() -> None:
    """4403 forbids (the account is gone), 4401 refuses (sign in again); a refused socket stays as it is."""
    gone, signed_out = FakeSocket(ALICE), FakeSocket(ALICE)
    await socket_events.user_event(gone, event(USER_ACCESS_ENDED_EVENT, close_code=CloseCode.FORBIDDEN))
    await socket_events.user_event(signed_out, event(USER_ACCESS_ENDED_EVENT, close_code=CloseCode.UNAUTHORIZED))
    await socket_events.user_event(signed_out, event(USER_ACCESS_ENDED_EVENT, close_code=CloseCode.FORBIDDEN))
    assert (gone.closes, signed_out.closes) == (["forbid"], ["refuse"])


async def test_another_sessions_sign_out_leaves_this_socket_open() -> None:
    """The session rule (ends_access_here) decides before anything closes."""
    socket = FakeSocket(ON_SESSION)
    ended = event(USER_ACCESS_ENDED_EVENT, close_code=CloseCode.UNAUTHORIZED, session=session_digest("s-2"))
    await socket_events.user_event(socket, ended)
    assert socket.closes == []


async def test_a_room_list_change_is_passed_on_as_it_came() -> None:
    """The per-user frame's text goes out unchanged; a room not joined here is not left."""
    socket = FakeSocket(ALICE)
    await socket_events.user_event(socket, event(USER_FRAME_EVENT, text='{"type":"roomRemoved"}', leave_room="r"))
    assert socket.texts == ['{"type":"roomRemoved"}']
    assert socket.frames == []


async def test_read_state_reaches_the_users_other_sockets_only() -> None:
    """The socket that marked read has its answer already; the others follow."""
    socket = FakeSocket(ALICE)
    frame = {"type": "readState", "roomId": "r"}
    await socket_events.user_event(socket, event(USER_READ_STATE_EVENT, origin="c1", frame=frame))
    await socket_events.user_event(socket, event(USER_READ_STATE_EVENT, origin="c2", frame=frame))
    assert socket.frames == [frame]


async def test_a_read_receipt_reaches_sockets_in_the_room_only() -> None:
    """Receipts are a room's control event: a socket that has not joined the room ignores them."""
    socket = FakeSocket(ALICE)
    frame = {"type": "receipt", "roomId": "r"}
    receipt = {"type": READ_RECEIPT_EVENT, "room_id": "r", "frame": frame}
    await socket_events.CONTROL_EVENTS[READ_RECEIPT_EVENT](socket, receipt)
    socket.core.join("r", 0)
    await socket_events.CONTROL_EVENTS[READ_RECEIPT_EVENT](socket, receipt)
    assert socket.frames == [frame]


async def test_a_failing_user_event_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fan-out calls this for every socket of the user: one socket's failure must not stop it."""

    async def broken(socket: object, event: dict[str, Any]) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(socket_events.USER_EVENTS, USER_BANNED_EVENT, broken)
    await socket_events.user_event(FakeSocket(ALICE), event(USER_BANNED_EVENT))
    assert [r.getMessage() for r in caplog.records if r.name == "chat.socket_events"] == [
        f"user event {USER_BANNED_EVENT} failed on connection=c1"
    ]
