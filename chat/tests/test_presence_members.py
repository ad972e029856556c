"""Presence by room membership (issue 15), through the real consumer on both storage backends.

A user's presence goes to everyone who shares a room membership with them (a private room,
a DM, a public room joined as a member), whether or not their sockets have that room open,
once per change; and a member taken out of a room drops out of its presence at once: those
still there neither see them present nor hear of their changes, and their member lists hear
of the removal (memberRemoved), whether an owner or a moderator (the admin) took them out.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from chat import fellows, moderation
from chat.storage import get_store
from chat.tests.conftest import OpenSocket
from chat.tests.test_people import Person, _is, _person

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def presence_at_once(settings: Any) -> None:
    """Each change written at once, so that a ping's pong marks the end of what a socket was
    told (the window's one frame is test_presence_consumer's)."""
    settings.CHAT_PRESENCE_BATCH_SECONDS = 0


async def _showing(person: Person) -> Person:
    """The socket shows presence (as both UIs do right after opening), its first picture taken."""
    await person.send({"action": "presence", "status": "online"})
    await person.send({"action": "ping"})
    await person.wait_for(_is("pong"))
    return person


def _presence_of(user: Person, status: str | None = None) -> Any:
    return lambda f: (
        f.get("type") == "presence" and f.get("userId") == user.user_id and status in (None, f.get("status"))
    )


async def _quiet_about(person: Person, other: Person) -> list[dict[str, Any]]:
    """Every presence frame about `other` that reached `person` before a pong (frames come in order)."""
    await person.send({"action": "ping"})
    await person.wait_for(_is("pong"))
    return [f for f in person.frames if _presence_of(other)(f)]


async def _done(person: Person, frame: dict[str, Any]) -> dict[str, Any]:
    answer = await person.ask(frame)
    assert answer["type"] == "done", answer
    return dict(answer)


async def test_presence_reaches_fellow_members_without_the_room_open_once_per_change(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """Members of a private room, a DM and a public room joined as a member hear each
    other's presence with no socket in the room; others do not; one frame per change."""
    alice = await _showing(await _person(session_sockets, "alice"))
    bob = await _person(session_sockets, "bob")
    carol = await _showing(await _person(session_sockets, "carol"))  # shares no room with bob
    dora = await _showing(await _person(session_sockets, "dora"))
    plans = (await _done(alice, {"action": "createRoom", "name": "Plans", "private": True}))["roomId"]
    await _done(alice, {"action": "addMember", "roomId": plans, "username": "bob"})
    await _done(bob, {"action": "openDirect", "usernames": ["dora"]})
    lounge = (await _done(dora, {"action": "createRoom", "name": "Open Lounge"}))["roomId"]
    await _done(bob, {"action": "addMember", "roomId": lounge})  # joined as a member

    # bob shows presence now: his first picture has his fellow members in it (alice, dora).
    await _showing(bob)
    first = {(await bob.wait_for(_presence_of(p, "online")))["userId"] for p in (alice, dora)}
    assert first == {alice.user_id, dora.user_id}

    await bob.send({"action": "presence", "status": "away"})  # bob's tab is hidden
    assert (await alice.wait_for(_presence_of(bob, "away")))["lastSeenAt"]
    await dora.wait_for(_presence_of(bob, "away"))  # a DM and a public room, once for both
    assert await _quiet_about(dora, bob) == []
    assert await _quiet_about(carol, bob) == []

    # With the room open as well, a change still comes once.
    for person in (alice, bob):
        await person.send({"action": "joinRoom", "roomId": plans})
        await person.wait_for(_is("joined", roomId=plans))
    await bob.send({"action": "presence", "status": "online"})
    await alice.wait_for(_presence_of(bob, "online"))
    assert await _quiet_about(alice, bob) == []
    await bob.socket.disconnect(timeout=5.0)
    gone = await dora.wait_for(_presence_of(bob, "offline"))
    assert gone["lastSeenAt"]
    await alice.wait_for(_presence_of(bob, "offline"))
    assert await _quiet_about(carol, bob) == []


async def test_a_removed_member_drops_out_of_the_rooms_presence_and_member_lists_at_once(
    storage_backend: str, session_sockets: OpenSocket
) -> None:
    """Taken out by the owner, bob is no longer present in the room for those there, they
    hear of his changes no more, and their member lists drop him; the same when a moderator
    takes a member out from the admin."""
    alice = await _showing(await _person(session_sockets, "alice"))
    bob = await _showing(await _person(session_sockets, "bob"))
    carol = await _showing(await _person(session_sockets, "carol"))
    eve = await _showing(await _person(session_sockets, "eve"))  # bob's control: a DM with him
    dan = await _person(session_sockets, "dan")  # shows presence later
    plans = (await _done(alice, {"action": "createRoom", "name": "Plans", "private": True}))["roomId"]
    for name in ("bob", "carol", "dan"):
        await _done(alice, {"action": "addMember", "roomId": plans, "username": name})
    await _done(bob, {"action": "openDirect", "usernames": ["eve"]})
    for person in (alice, bob, carol):
        await person.send({"action": "joinRoom", "roomId": plans})
        await person.wait_for(_is("joined", roomId=plans))

    await _done(alice, {"action": "removeMember", "roomId": plans, "username": "bob"})
    assert (await bob.wait_for(_is("left", roomId=plans)))["reason"] == "removed"
    assert (await carol.wait_for(_is("memberRemoved", roomId=plans)))["userId"] == bob.user_id
    await bob.send({"action": "ping"})
    await bob.wait_for(_is("pong"))  # his socket has left, and said so to presence
    for person in (alice, carol):
        person.frames.clear()
    await bob.send({"action": "presence", "status": "away"})
    await eve.wait_for(_presence_of(bob, "away"))  # told; carol would have been told first
    assert await _quiet_about(carol, bob) == []
    assert await _quiet_about(alice, bob) == []

    # dan opens the room now: alice and carol are present in it, bob no more.
    await _showing(dan)
    await dan.send({"action": "joinRoom", "roomId": plans})
    await dan.wait_for(_is("joined", roomId=plans))
    assert await _quiet_about(dan, bob) == []
    members = await carol.ask({"action": "members", "roomId": plans})
    assert bob.user_id not in {m["userId"] for m in members["members"]}

    # A moderator takes carol out from the admin: the room hears it as from an owner.
    moderator = await get_user_model().objects.acreate(username="mod", is_staff=True, is_superuser=True)
    carol_user = await get_user_model().objects.aget(pk=int(carol.user_id))
    removed = await sync_to_async(moderation.room_member_remove)(
        moderator=moderator, room_id=plans, user=carol_user, reason="left the team"
    )
    assert removed is True
    assert (await alice.wait_for(_is("memberRemoved", roomId=plans)))["userId"] == carol.user_id
    await carol.wait_for(_is("roomRemoved", roomId=plans))
    assert (await carol.wait_for(_is("left", roomId=plans)))["reason"] == "removed"


async def test_a_status_change_reads_memberships_once_until_one_changes(
    storage_backend: str, session_sockets: OpenSocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cost of finding who hears a change (chat.fellows): bob's first change after his
    memberships changed reads his rooms and each room's members (1 + 3 store calls), the
    next changes none; a member added to one room costs that room's members once more, and
    the newcomer hears bob's next change. The same people hear each change as before."""
    # moto's indexes are consistent: no window for an index to catch up in.
    monkeypatch.setattr(fellows, "SETTLE_SECONDS", 0.0)
    alice = await _showing(await _person(session_sockets, "alice"))
    bob = await _person(session_sockets, "bob")
    carol = await _showing(await _person(session_sockets, "carol"))
    dora = await _showing(await _person(session_sockets, "dora"))
    plans = (await _done(alice, {"action": "createRoom", "name": "Plans", "private": True}))["roomId"]
    await _done(alice, {"action": "addMember", "roomId": plans, "username": "bob"})
    await _done(bob, {"action": "openDirect", "usernames": ["dora"]})
    lounge = (await _done(dora, {"action": "createRoom", "name": "Open Lounge"}))["roomId"]
    await _done(bob, {"action": "addMember", "roomId": lounge})
    await _showing(bob)
    for person in (alice, dora):
        await bob.wait_for(_presence_of(person, "online"))

    store = get_store()
    calls: Counter[str] = Counter()
    for name in ("rooms_of_user", "members_page"):
        real = getattr(store, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)

    async def change(status: str, *, heard_by: tuple[Person, ...]) -> Counter[str]:
        calls.clear()
        await bob.send({"action": "presence", "status": status})
        for person in heard_by:
            await person.wait_for(_presence_of(bob, "away" if status == "away" else "online"))
        return Counter(calls)

    fellows.cache.forget(user_id=bob.user_id)  # as after his last membership change
    for room_id in (plans, lounge):
        fellows.cache.forget(room_id=room_id)
    first = await change("away", heard_by=(alice, dora))
    assert first["rooms_of_user"] == 1 and first["members_page"] <= 3, first  # the DM's maybe kept from dora's
    assert await change("online", heard_by=(alice, dora)) == Counter()
    assert await change("away", heard_by=(alice, dora)) == Counter()
    assert await _quiet_about(carol, bob) == []

    await _done(alice, {"action": "addMember", "roomId": plans, "username": "carol"})
    assert await change("online", heard_by=(alice, dora, carol)) == Counter({"members_page": 1})
    assert await change("away", heard_by=(alice, dora, carol)) == Counter()
