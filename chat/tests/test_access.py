# ruff: noqa: F811 - fixtures imported from test_moderation are used as arguments
"""Access that ends reaches open sockets (accounts.revocation, chat.access, the keeper's
session re-check), in process: the real ASGI routing, the local backend, the in-memory layer.

tests/e2e/test_access.py does the same across two daphne processes on Redis.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.test import Client

from accounts import issuer
from chat import connections, moderation
from chat.tests.test_moderation import (
    ORIGIN,
    WAIT,
    Sock,
    act,
    join,
    make_room,
    mod,  # noqa: F401 - fixture
    send,
    user,
)
from chatsite.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

Open = Callable[[Client], Awaitable[Sock]]


def signed_in(who: Any) -> Client:
    client = Client()
    client.force_login(who)
    return client


@pytest.fixture
async def open_socket() -> AsyncIterator[Open]:
    """A socket on a given signed-in browser's session."""
    opened: list[WebsocketCommunicator] = []

    async def open_on(browser: Client) -> Sock:
        cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
        comm = WebsocketCommunicator(
            application, "/ws/", headers=[(b"origin", ORIGIN), (b"host", b"127.0.0.1"), (b"cookie", cookie)]
        )
        opened.append(comm)
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        sock = Sock(comm)
        assert await sock.quiet() == []  # signed in and in its user's group: events reach it
        return sock

    yield open_on
    for comm in opened:
        await comm.disconnect(timeout=WAIT)
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()  # type: ignore[attr-defined]


async def test_signing_out_closes_that_sessions_sockets_with_4401_and_no_other(open_socket: Open) -> None:
    """Sign-out of one browser closes its sockets at once; the same user's other browser stays connected."""
    bob = await user("bob")
    laptop, phone = await sync_to_async(signed_in)(bob), await sync_to_async(signed_in)(bob)
    on_laptop, also_on_laptop, on_phone = await open_socket(laptop), await open_socket(laptop), await open_socket(phone)
    response = await sync_to_async(laptop.post)("/accounts/logout/")
    assert response.status_code == 302
    assert await on_laptop.closed(wait=2.0) == 4401
    assert await also_on_laptop.closed(wait=2.0) == 4401
    assert await on_phone.quiet() == []


async def test_a_password_change_closes_every_socket_and_revokes_every_refresh_token(open_socket: Open) -> None:
    """New password: every socket of the user closes with 4401 and its refresh tokens stop working."""
    bob = await user("bob")
    tokens = await sync_to_async(issuer.issue_tokens)(bob)
    sockets = [await open_socket(await sync_to_async(signed_in)(bob)) for _ in range(2)]

    def change_password() -> None:
        bob.set_password("a-new-Passw0rd")
        bob.save()

    await sync_to_async(change_password)()
    for socket in sockets:
        assert await socket.closed(wait=2.0) == 4401
    assert tokens.refresh_token is not None
    with pytest.raises(issuer.InvalidRefreshToken):
        await sync_to_async(issuer.refresh_tokens)(tokens.refresh_token)


@pytest.mark.parametrize("how", ["deactivated", "deleted"])
async def test_a_deactivated_or_deleted_account_closes_every_socket_with_4403(open_socket: Open, how: str) -> None:
    """Deactivating or deleting a user (admin, a command, code) closes all their sockets with 4403; others stay."""
    bob, alice = await user("bob"), await user("alice")
    tokens = await sync_to_async(issuer.issue_tokens)(bob)
    sockets = [await open_socket(await sync_to_async(signed_in)(bob)) for _ in range(2)]
    bystander = await open_socket(await sync_to_async(signed_in)(alice))

    def end() -> None:
        if how == "deleted":
            bob.delete()
        else:
            bob.is_active = False
            bob.save()

    await sync_to_async(end)()
    for socket in sockets:
        assert await socket.closed(wait=2.0) == 4403
    assert await bystander.quiet() == []
    assert tokens.refresh_token is not None
    with pytest.raises(issuer.InvalidRefreshToken):
        await sync_to_async(issuer.refresh_tokens)(tokens.refresh_token)


async def test_a_moderator_who_loses_the_role_leaves_private_rooms_at_once(open_socket: Open, mod: Any) -> None:
    """Out of the moderator group: a `left` frame for each private room they are not in, and nothing more from it."""
    room = await make_room("team", private=True)
    public = await make_room("lobby")
    carol, alice = await user("carol", moderator=True), await user("alice")
    await act(moderation.room_member_add)(moderator=mod, room_id=room, user=alice, reason="team")
    moderator = await open_socket(await sync_to_async(signed_in)(carol))
    member = await open_socket(await sync_to_async(signed_in)(alice))
    for socket in (moderator, member):
        assert (await join(socket, room))["type"] == "joined"
    assert (await join(moderator, public))["type"] == "joined"

    def demote() -> None:
        carol.groups.remove(Group.objects.get(name=settings.AUTH_MODERATOR_GROUP))

    await sync_to_async(demote)()
    assert await moderator.take(lambda f: f["type"] == "left") == {"type": "left", "roomId": room, "reason": "removed"}
    assert (await send(member, room, "after the demotion", "m1"))["type"] == "ack"
    assert (await send(member, public, "in the lobby", "m2"))["type"] == "ack"
    # The ack does not wait for the broadcast (chat.broadcast.room_event_soon): wait for the
    # lobby's message, then for anything else already on its way.
    lobby = await moderator.take(lambda f: f["type"] == "message")
    await moderator.quiet()
    seen = [f for f in moderator.frames if f["type"] == "message"]
    assert seen == [lobby] and (lobby["roomId"], lobby["message"]) == (public, "in the lobby")
    assert (await send(moderator, room, "still here?", "m3"))["type"] == "error"


async def test_a_superuser_who_loses_the_flag_leaves_private_rooms_at_once(open_socket: Open) -> None:
    """is_superuser taken away (admin, a command): a moderator by that flag alone leaves private rooms it is not in."""
    room = await make_room("board", private=True)
    root = await sync_to_async(get_user_model().objects.create_superuser)("root", "root@example.com", None)
    socket = await open_socket(await sync_to_async(signed_in)(root))
    assert (await join(socket, room))["type"] == "joined"

    def demote() -> None:
        again = get_user_model().objects.get(pk=root.pk)  # as admin loads it
        again.is_superuser = False
        again.save()

    await sync_to_async(demote)()
    assert await socket.take(lambda f: f["type"] == "left") == {"type": "left", "roomId": room, "reason": "removed"}


async def test_the_keepers_recheck_closes_sockets_whose_session_ended_with_4401(open_socket: Open) -> None:
    """A session gone from the store (expired, flushed) closes its sockets on the next re-check; others stay."""
    bob = await user("bob")
    gone, kept = await sync_to_async(signed_in)(bob), await sync_to_async(signed_in)(bob)
    on_gone, on_kept = await open_socket(gone), await open_socket(kept)
    key = gone.cookies[settings.SESSION_COOKIE_NAME].value
    await sync_to_async(Session.objects.filter(session_key=key).delete)()  # no signal: as an expiry
    assert await connections.local_sockets().recheck_sessions() == 1
    assert await on_gone.closed() == 4401
    assert await on_kept.quiet() == []


async def test_the_keeper_rechecks_sessions_every_chat_session_recheck_seconds(
    open_socket: Open, settings: Any
) -> None:
    """With a short CHAT_SESSION_RECHECK_SECONDS, an ended session's socket closes without any event telling it."""
    settings.CHAT_SESSION_RECHECK_SECONDS = 0.2
    bob = await user("bob")
    browser = await sync_to_async(signed_in)(bob)
    socket = await open_socket(browser)
    key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    await sync_to_async(Session.objects.filter(session_key=key).delete)()
    assert await socket.closed(wait=WAIT) == 4401


async def test_a_token_client_signing_out_closes_the_sockets_of_that_sign_in_only(
    tmp_path: Path, settings: Any
) -> None:
    """POST /api/auth/revoke: the sockets opened with that sign-in's tokens close with 4401 and its tokens are
    refused; another sign-in of the same user keeps its socket and tokens."""
    settings.AUTH_SIGNING_KEY_FILE = tmp_path / "key.pem"
    bob = await user("bob")
    first, second = await sync_to_async(issuer.issue_tokens)(bob), await sync_to_async(issuer.issue_tokens)(bob)
    sockets = []
    for tokens in (first, second):
        comm = WebsocketCommunicator(
            application, f"/ws/?token={tokens.access_token}", headers=[(b"host", b"127.0.0.1")]
        )
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        sock = Sock(comm)
        assert (await sock.take(lambda f: f["type"] == "authenticated"))["username"] == "bob"
        sockets.append(sock)
    browser = Client()
    response = await sync_to_async(browser.post)(
        "/api/auth/revoke", json.dumps({"refreshToken": first.refresh_token}), content_type="application/json"
    )
    assert response.status_code == 200
    assert await sockets[0].closed(wait=2.0) == 4401
    assert await sockets[1].quiet() == []
    me = sync_to_async(browser.get)
    refused = await me("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {first.access_token}")
    assert (refused.status_code, refused.json()["reason"]) == (401, "revoked")
    assert (await me("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {second.access_token}")).status_code == 200
    for sock in sockets:
        await sock.comm.disconnect(timeout=WAIT)


async def test_signing_out_everywhere_ends_every_session_token_and_socket_of_the_user_only(
    open_socket: Open, tmp_path: Path, settings: Any
) -> None:
    """ "Sign out everywhere" from one browser: every session of the user (that one too) ends, their sockets
    close with 4401, their refresh tokens stop working; another user is untouched, and signing in again works."""
    settings.AUTH_SIGNING_KEY_FILE = tmp_path / "key.pem"
    bob, alice = await user("bob"), await user("alice")
    tokens = await sync_to_async(issuer.issue_tokens)(bob)
    laptop, phone, alices = [await sync_to_async(signed_in)(who) for who in (bob, bob, alice)]
    sockets = [await open_socket(laptop), await open_socket(phone)]
    bystander = await open_socket(alices)
    assert (await sync_to_async(laptop.get)("/")).status_code == 200

    response = await sync_to_async(phone.post)("/accounts/logout/everywhere/")
    assert response.status_code == 302
    for socket in sockets:
        assert await socket.closed(wait=2.0) == 4401
    assert await bystander.quiet() == []
    for browser in (laptop, phone):  # both sessions are over: the pages send them to sign in
        page = await sync_to_async(browser.get)("/")
        assert (page.status_code, page.url.split("?")[0]) == (302, "/accounts/login/")
    assert (await sync_to_async(alices.get)("/")).status_code == 200
    assert tokens.refresh_token is not None
    with pytest.raises(issuer.InvalidRefreshToken):
        await sync_to_async(issuer.refresh_tokens)(tokens.refresh_token)
    again = await sync_to_async(signed_in)(bob)  # a sign-in after the cutoff is a good one
    assert (await sync_to_async(again.get)("/")).status_code == 200
    assert await (await open_socket(again)).quiet() == []


async def test_a_token_client_signs_out_everywhere_with_its_bearer_token_and_never_with_a_cookie(
    open_socket: Open, tmp_path: Path, settings: Any
) -> None:
    """POST /api/auth/signout-everywhere takes a Bearer token (it is CSRF-exempt, so a cookie alone is refused)
    and ends the browser sessions of that user too."""
    settings.AUTH_SIGNING_KEY_FILE = tmp_path / "key.pem"
    bob = await user("bob")
    browser = await sync_to_async(signed_in)(bob)
    on_browser = await open_socket(browser)
    post = sync_to_async(browser.post)
    by_cookie = await post("/api/auth/signout-everywhere", "{}", content_type="application/json")
    assert (by_cookie.status_code, by_cookie.json()["reason"]) == (401, "missing_credentials")
    assert await on_browser.quiet() == []

    tokens = await sync_to_async(issuer.issue_tokens)(bob)
    response = await sync_to_async(Client().post)(
        "/api/auth/signout-everywhere",
        "{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tokens.access_token}",
    )
    assert response.status_code == 200 and response.json()["signedOutEverywhere"] is True
    assert await on_browser.closed(wait=2.0) == 4401
    assert (await sync_to_async(browser.get)("/")).status_code == 302
    refused = await sync_to_async(Client().get)("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {tokens.access_token}")
    assert (refused.status_code, refused.json()["reason"]) == (401, "revoked")
