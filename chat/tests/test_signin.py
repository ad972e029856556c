"""The pure parts of a socket's sign-in (chat.signin): the `authenticated` frame and the peer as logged."""

from __future__ import annotations

from accounts.identity import Identity
from chat.signin import authenticated_frame, client_address


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
