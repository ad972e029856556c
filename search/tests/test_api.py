"""GET /api/search and the write paths that feed it: a message sent through chat.services
is found, a moderator's removal takes it out, and bad input is a 400, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from accounts.identity import Identity
from chat import moderation, services
from search import indexer
from search.services import messages_search

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def make_user(username: str, *, moderator: bool = False) -> Any:
    user = get_user_model().objects.create_user(username=username)
    if moderator:
        group, _ = Group.objects.get_or_create(name=settings.AUTH_MODERATOR_GROUP)
        user.groups.add(group)
    return user


@pytest.fixture
def alice() -> Any:
    return make_user("alice")


@pytest.fixture
def client(alice: Any) -> Client:
    client = Client()
    client.force_login(alice)
    return client


async def test_a_sent_message_is_indexed_off_the_ack_path_and_a_hidden_one_leaves() -> None:
    """message_send feeds the index through its queue (flushed here); a moderator's hide,
    committed in a transaction, takes the message out of the results."""
    mod = await sync_to_async(make_user)("mod", moderator=True)
    me = Identity(user_id="u-1", username="alice")
    await sync_to_async(services.room_create)(room_id="lobby", name="Lobby")
    record = await services.message_send(
        identity=me, connection_id="c1", room_id="lobby", text="the zebra crossing", client_message_id=None
    )
    await indexer.flush()
    page = await sync_to_async(messages_search)(identity=me, q="zebra")
    assert [r.message.message_id for r in page.results] == [record.message_id]
    await sync_to_async(moderation.message_hide)(
        moderator=mod, room_id="lobby", message_id=record.message_id, reason="test"
    )
    page = await sync_to_async(messages_search)(identity=me, q="zebra")
    assert page.results == []
    assert await sync_to_async(lambda: indexer.lag().events_behind)() == 0


def test_the_api_returns_results_with_a_marked_snippet(client: Client, alice: Any) -> None:
    """A result names its room and message (to open it there) and marks the matching words."""
    services.room_create(room_id="lobby", name="Lobby")
    from search.tests.test_search import post

    post("lobby", "Where is the Roadmap doc?", who=Identity(user_id=str(alice.pk), username="alice"))
    body = client.get("/api/search", {"q": "roadmap"}).json()
    [result] = body["results"]
    assert result["roomId"] == "lobby" and result["roomName"] == "Lobby" and result["seq"] == 1
    assert [p["text"] for p in result["snippet"] if p["match"]] == ["Roadmap"]
    assert body["nextCursor"] is None


@pytest.mark.parametrize(
    "q",
    ["", "x" * 501, '"open', "colour:red", "has:pdf", "before:someday", "after:2026-13-01", "***", "room:%2e%2e"],
)
def test_bad_queries_are_a_400_with_invalid_query(client: Client, q: str) -> None:
    """Each bad query is answered 400 invalid_query with a message for the user."""
    response = client.get("/api/search", {"q": q})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_query" and response.json()["message"]


@pytest.mark.parametrize("cursor", ["nope", "e30", "WzEsMiwzXQ", "!!!!"])
def test_a_forged_cursor_is_a_400(client: Client, cursor: str) -> None:
    """A cursor the server did not hand out is refused, not a 500."""
    response = client.get("/api/search", {"q": "hello", "cursor": cursor})
    assert response.status_code == 400 and response.json()["error"] == "invalid_query"


def test_search_needs_a_signed_in_user() -> None:
    """Without a session or token the answer is 401."""
    assert Client().get("/api/search", {"q": "hello"}).status_code == 401
