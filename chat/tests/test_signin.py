"""A socket's sign-in with no server (chat.signin): the `authenticated` frame, the peer as logged, a token refresh."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.identity import AuthenticationFailed, Identity
from chat import protocol, signin
from chat.errors import ChatError, ErrorCode
from chat.signin import authenticated_frame, client_address
from chat.tests.fake_socket import FakeSocket


def test_a_token_identity_is_announced_with_its_expiry() -> None:
    """expiresAt is the token's exp, so the client refreshes before it; moderator says what the UI may offer."""
    frame = authenticated_frame(Identity(user_id="u1", username="alice", is_moderator=True, expires_at=1_800_000_000))
    assert frame == {
        "type": "authenticated",
        "userId": "u1",
        "username": "alice",
        "expiresAt": "2027-01-15T08:00:00.000Z",
        "moderator": True,
    }


def test_a_session_identity_has_no_expiry() -> None:
    """A session is re-checked on the server instead: expiresAt is null."""
    frame = authenticated_frame(Identity(user_id="u1", username="alice"))
    assert frame["expiresAt"] is None
    assert frame["moderator"] is False


def test_the_peer_is_host_and_port_or_a_dash() -> None:
    """Logs name an unauthenticated socket by its peer; a server may give none."""
    assert client_address({"client": ["127.0.0.1", 50123]}) == "127.0.0.1:50123"
    assert client_address({"client": None}) == "-"
    assert client_address({}) == "-"


# A fresh token on an open socket (on_token), with identify() stubbed -----------------------


def stub_identify(monkeypatch: pytest.MonkeyPatch, answer: Identity | AuthenticationFailed | None) -> None:
    async def identify(scope: Any, *, token: str | None = None) -> Identity | None:
        if isinstance(answer, AuthenticationFailed):
            raise answer
        return answer

    monkeypatch.setattr(signin, "identify", identify)


async def test_a_fresh_token_for_the_same_user_renews_the_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """The socket takes the new identity (its new expiry) and answers `authenticated`."""
    socket = FakeSocket(Identity(user_id="u1", username="alice", expires_at=1_800_000_000))
    fresh = Identity(user_id="u1", username="alice", expires_at=1_800_000_900)
    stub_identify(monkeypatch, fresh)
    await signin.on_token(socket, protocol.RefreshToken(token="t"))
    assert socket.identity == fresh
    assert [frame["type"] for frame in socket.frames] == ["authenticated"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (AuthenticationFailed("expired"), "token rejected: expired"),
        (Identity(user_id="u2", username="bob"), "the token is for another user"),
        (None, "the token is for another user"),
    ],
)
async def test_a_token_that_is_not_this_users_leaves_the_socket_as_it_was(
    monkeypatch: pytest.MonkeyPatch, answer: Identity | AuthenticationFailed | None, message: str
) -> None:
    """invalid_token, named with the action; the socket keeps its identity and expiry and may retry."""
    current = Identity(user_id="u1", username="alice", expires_at=1_800_000_000)
    socket = FakeSocket(current)
    stub_identify(monkeypatch, answer)
    with pytest.raises(ChatError) as raised:
        await signin.on_token(socket, protocol.RefreshToken(token="t"))
    assert (raised.value.code, raised.value.action, raised.value.message) == (
        ErrorCode.INVALID_TOKEN,
        "refreshToken",
        message,
    )
    assert socket.identity is current
    assert socket.frames == []
