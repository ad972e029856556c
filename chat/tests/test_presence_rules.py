"""Presence and typing rules without a server: chat.presence_rules, chat.typing_rules."""

from __future__ import annotations

import json

from chat import protocol
from chat.presence_rules import (
    ACTIVE,
    AWAY,
    CLOSED,
    IDLE,
    OFFLINE,
    ONLINE,
    PresenceBook,
    UserPresence,
    aggregate,
    from_ms,
    idle_after,
    presence_batch,
    presence_frame,
)
from chat.typing_rules import TypingGate, may_type, typing_frame

TTL = 45_000


def update(book: PresenceBook, conn: str, state: str, *, user: str = "1", inst: str = "a", rooms=(), now: int = 0):
    return book.update(user_id=user, connection_id=conn, instance=inst, state=state, rooms=frozenset(rooms), now_ms=now)


def test_status_is_online_with_an_active_socket_away_with_idle_ones_offline_with_none() -> None:
    assert aggregate([]) == OFFLINE
    assert aggregate([IDLE, IDLE]) == AWAY
    assert aggregate([IDLE, ACTIVE]) == ONLINE


def test_several_tabs_count_as_one_user_and_each_change_is_reported_once() -> None:
    book = PresenceBook(ttl_ms=TTL)
    first = update(book, "c1", ACTIVE, rooms={"general"}, now=1000)
    assert (first.before, first.after, first.changed) == (OFFLINE, ONLINE, True)
    assert first.rooms == ("general",) and first.new_rooms == ("general",)
    second = update(book, "c2", ACTIVE, rooms={"general"}, now=2000)
    assert not second.changed and second.new_rooms == ()
    assert not update(book, "c1", IDLE, rooms={"general"}, now=3000).changed  # c2 is still active
    away = update(book, "c2", IDLE, rooms={"general"}, now=4000)
    assert (away.before, away.after) == (ONLINE, AWAY)
    assert not update(book, "c1", CLOSED, now=5000).changed
    gone = update(book, "c2", CLOSED, now=6000)
    # Last seen: the last moment the user was online (here, when they went away).
    assert (gone.after, gone.last_seen_ms, gone.rooms) == (OFFLINE, 4000, ("general",))
    assert book.read(["1", "2"], 7000) == {"1": (OFFLINE, 4000), "2": (OFFLINE, None)}


def test_a_room_entered_is_reported_even_when_the_status_holds() -> None:
    book = PresenceBook(ttl_ms=TTL)
    update(book, "c1", ACTIVE, rooms={"general"}, now=0)
    joined = update(book, "c1", ACTIVE, rooms={"general", "lounge"}, now=10)
    assert not joined.changed and joined.new_rooms == ("lounge",)
    assert book.in_room("lounge", 20) == {"1": (ONLINE, 10)}
    update(book, "c1", ACTIVE, rooms={"general"}, now=30)
    assert book.in_room("lounge", 40) == {}


def test_a_process_that_dies_stops_showing_its_users_after_the_ttl_and_a_live_one_reports_it() -> None:
    book = PresenceBook(ttl_ms=TTL)
    update(book, "c1", ACTIVE, user="1", inst="dead", rooms={"general"}, now=0)
    update(book, "c2", ACTIVE, user="2", inst="live", rooms={"general"}, now=0)
    assert book.heartbeat(instance="live", now_ms=TTL) == []  # not yet expired
    assert book.read(["1"], TTL) == {"1": (ONLINE, 0)}
    changes = book.heartbeat(instance="live", now_ms=TTL + 1)
    assert [(c.user_id, c.before, c.after, c.rooms) for c in changes] == [("1", ONLINE, OFFLINE, ("general",))]
    assert book.heartbeat(instance="live", now_ms=TTL + 2) == []  # reported once
    assert book.read(["1", "2"], TTL + 2) == {"1": (OFFLINE, TTL + 1), "2": (ONLINE, 0)}


def _in_room_by_scan(book: PresenceBook, room_id: str, now: int) -> dict[str, tuple[str, int | None]]:
    """Who is in the room, by walking every user: what `in_room` answered before its index."""
    answer = {}
    for user_id, user in book.users.items():
        live = [s for s in user.sockets.values() if book.instances.get(s.instance, 0) >= now]
        if any(room_id in s.rooms for s in live):
            answer[user_id] = (aggregate([s.state for s in live]), user.seen_ms)
    return answer


def test_who_is_in_a_room_holds_through_joins_leaves_closes_and_a_dead_process() -> None:
    """`in_room` reads a per-room index; a seeded walk of opens, room changes, closes and a
    process that stops beating must leave it answering exactly as a walk of every user."""
    import random

    rng = random.Random(22)
    book = PresenceBook(ttl_ms=TTL)
    rooms = ["general", "lounge", "ops"]
    open_conns: dict[str, tuple[str, str]] = {}  # conn -> (user, instance)
    now = 0
    for step in range(3_000):
        now += rng.randint(1, 400)
        roll = rng.random()
        if roll < 0.05:
            book.heartbeat(instance="live", now_ms=now)  # "dead" never beats: it expires
        elif roll < 0.35 and open_conns:
            conn = rng.choice(sorted(open_conns))
            user, inst = open_conns.pop(conn)
            update(book, conn, CLOSED, user=user, inst=inst, now=now)
        else:
            conn = f"c{rng.randint(0, 30)}"
            user, inst = open_conns.get(conn) or (str(rng.randint(0, 8)), rng.choice(["live", "live", "dead"]))
            open_conns[conn] = (user, inst)
            chosen = {room for room in rooms if rng.random() < 0.5}
            update(book, conn, rng.choice([ACTIVE, IDLE]), user=user, inst=inst, rooms=chosen, now=now)
        for room in rooms:
            assert book.in_room(room, now) == _in_room_by_scan(book, room, now), (step, room)
    assert any(book.in_room(room, now) for room in rooms)  # the walk ended with people in rooms
    # Everyone leaves: the live process's sockets close, the dead one's expire. The index
    # keeps nothing behind (it would grow with every room ever entered).
    for conn, (user, inst) in sorted(open_conns.items()):
        if inst == "live":
            update(book, conn, CLOSED, user=user, inst=inst, now=now)
    book.heartbeat(instance="live", now_ms=now + TTL + 1)
    assert all(book.in_room(room, now + TTL + 1) == {} for room in rooms)
    assert book.rooms == {}


def test_idle_after_the_away_delay() -> None:
    assert not idle_after(last_active=0.0, now=299.0, away_after=300.0)
    assert idle_after(last_active=0.0, now=300.0, away_after=300.0)


def test_presence_frame_has_the_issue_shape() -> None:
    assert presence_frame("7", UserPresence(OFFLINE, from_ms(1_700_000_000_123))) == {
        "type": "presence",
        "userId": "7",
        "status": "offline",
        "lastSeenAt": "2023-11-14T22:13:20.123Z",
    }
    assert presence_frame("7", UserPresence(ONLINE, None))["lastSeenAt"] is None


def test_a_window_of_changes_is_one_frame_that_lists_them_and_one_change_is_itself() -> None:
    texts = [
        protocol.encode(presence_frame("7", UserPresence(ONLINE, None))),
        protocol.encode(presence_frame("8", UserPresence(OFFLINE, from_ms(1_700_000_000_123)))),
    ]
    assert presence_batch(texts[:1]) == texts[0]
    batch = json.loads(presence_batch(texts))
    assert batch == {"type": "presence", "users": [json.loads(text) for text in texts]}
    assert [user["userId"] for user in batch["users"]] == ["7", "8"]


def test_typing_gate_admits_one_frame_per_user_and_room_per_interval() -> None:
    gate = TypingGate(interval=2.0)
    assert gate.admit("1", "general", 0.0)
    assert not gate.admit("1", "general", 1.9)
    assert gate.admit("1", "lounge", 1.9)  # another room
    assert gate.admit("2", "general", 1.9)  # another user
    assert gate.admit("1", "general", 2.0)


def test_typing_only_where_the_user_may_post() -> None:
    assert may_type(archived=False, read_only=False, muted=False, moderator=False)
    assert not may_type(archived=True, read_only=False, muted=False, moderator=True)
    assert not may_type(archived=False, read_only=False, muted=True, moderator=False)
    assert not may_type(archived=False, read_only=True, muted=False, moderator=False)
    assert may_type(archived=False, read_only=True, muted=False, moderator=True)
    assert typing_frame(room_id="r", user_id="1", username="alice") == {
        "type": "typing",
        "roomId": "r",
        "userId": "1",
        "username": "alice",
    }


def test_a_batch_leaves_out_the_sockets_own_typing() -> None:
    from chat.typing_rules import batch_for

    framed = [("1", b"a"), ("2", b"b")]
    assert batch_for(framed, "3", b"ab") == b"ab"
    assert batch_for(framed, None, b"ab") == b"ab"
    assert batch_for(framed, "1", b"ab") == b"b"
    assert batch_for([("1", b"a")], "1", b"a") == b""


def test_a_published_batch_of_typists_is_read_as_one_event_each() -> None:
    """A window's typists come in one layer event; one from a process that published each
    frame on its own is taken as it is; a malformed entry is left out, not delivered."""
    from chat.typing_rules import typing_events

    batch = {"type": "chat.typing", "room_id": "r", "typists": [["1", "t1"], ["2", "t2"], ["3"], [4, "x"], "junk"]}
    assert typing_events(batch) == [
        {"type": "chat.typing", "room_id": "r", "user_id": "1", "text": "t1"},
        {"type": "chat.typing", "room_id": "r", "user_id": "2", "text": "t2"},
    ]
    single = {"type": "chat.typing", "room_id": "r", "user_id": "1", "text": "t1"}
    assert typing_events(single) == [single]
