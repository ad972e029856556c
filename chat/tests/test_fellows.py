"""Who shares a room with whom, kept per process (chat.fellows), without a server: a fake store
that counts its calls and a clock the test moves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from chat import fellows
from chat.fellows import ENTRY_SECONDS, SETTLE_SECONDS, FellowsCache
from chat.records import Membership
from tests.fixtures.clock import Clock


class Store:
    """Memberships in a dict; counts rooms_of_user and members_page calls."""

    def __init__(self, rooms: dict[str, list[str]]) -> None:
        self.rooms = rooms  # room -> member user ids
        self.calls: Counter[str] = Counter()
        self.during_read: Callable[[], None] = lambda: None

    def rooms_of_user(self, user_id: str) -> list[Membership]:
        self.calls["rooms_of_user"] += 1
        return [Membership(room_id=r, user_id=user_id) for r, users in sorted(self.rooms.items()) if user_id in users]

    def members_page(self, *, room_id: str, after_user_id: str | None = None, limit: int = 100) -> list[Membership]:
        self.calls["members_page"] += 1
        self.during_read()
        return [Membership(room_id=room_id, user_id=u) for u in sorted(self.rooms.get(room_id, []))[:limit]]


def _setup() -> tuple[Store, Clock, FellowsCache]:
    store = Store({"plans": ["a", "b"], "dm": ["b", "d"], "lounge": ["b", "c", "d"]})
    clock = Clock()
    return store, clock, FellowsCache(clock=clock)


def _fellows(cache: FellowsCache, store: Store, user: str = "b", per_room: int = 10) -> list[str]:
    return cache.fellows(store, user_id=user, per_room=per_room)  # type: ignore[arg-type]


def test_the_first_read_costs_one_query_and_one_per_room_the_next_none() -> None:
    """1 + 3 store calls for a user in three rooms, then none while nothing changes."""
    store, _, cache = _setup()
    assert _fellows(cache, store) == ["a", "c", "d"]
    assert store.calls == {"rooms_of_user": 1, "members_page": 3}
    store.calls.clear()
    assert _fellows(cache, store) == ["a", "c", "d"]
    assert _fellows(cache, store, "d") == ["b", "c"]  # the rooms' members are shared: d's rooms only
    assert store.calls == {"rooms_of_user": 1}


def test_a_membership_change_reads_that_room_and_that_user_again() -> None:
    """Forgetting (room, user) costs one members query for the room and the user's rooms."""
    store, clock, cache = _setup()
    _fellows(cache, store)
    _fellows(cache, store, "e")
    store.rooms["plans"].append("e")
    cache.forget(room_id="plans", user_id="e")
    store.calls.clear()
    assert _fellows(cache, store) == ["a", "c", "d", "e"]
    assert _fellows(cache, store, "e") == ["a", "b"]
    # e's rooms, and plans for each of the two (not kept yet: see below); lounge and dm kept.
    assert store.calls == {"rooms_of_user": 1, "members_page": 2}
    # Within the settle window what was forgotten is read each time (an index catching up) ...
    store.calls.clear()
    _fellows(cache, store)
    assert store.calls == {"members_page": 1}
    # ... and kept again once it has passed.
    clock.now += SETTLE_SECONDS
    _fellows(cache, store)
    store.calls.clear()
    _fellows(cache, store)
    assert store.calls == {}


def test_a_read_that_raced_a_change_is_not_kept() -> None:
    """A membership forgotten while it was being read: the answer is used once, not kept."""
    store, clock, cache = _setup()
    clock.now += SETTLE_SECONDS  # no window: the generation alone keeps it out
    store.during_read = lambda: cache.forget()
    _fellows(cache, store)
    store.during_read = lambda: None
    store.calls.clear()
    _fellows(cache, store)
    assert store.calls == {"members_page": 3}


def test_a_crowd_is_left_out_and_a_new_limit_reads_again() -> None:
    """A room of more members than the limit shares no presence; another limit is read anew."""
    store, _, cache = _setup()
    assert _fellows(cache, store, per_room=2) == ["a", "d"]
    store.calls.clear()
    assert _fellows(cache, store, per_room=3) == ["a", "c", "d"]
    assert store.calls == {"members_page": 3}


def test_entries_expire_and_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every entry is read again after ENTRY_SECONDS (a lost invalidation heals), and at most
    MAX_ENTRIES of each kind are kept."""
    store, clock, cache = _setup()
    _fellows(cache, store)
    clock.now += ENTRY_SECONDS
    store.calls.clear()
    _fellows(cache, store)
    assert store.calls == {"rooms_of_user": 1, "members_page": 3}
    monkeypatch.setattr(fellows, "MAX_ENTRIES", 2)
    cache.clear()
    assert _fellows(cache, store) == ["a", "c", "d"]  # three rooms read, two kept
    assert len(cache._members) == 2


def test_known_answers_from_what_is_kept_and_nothing_else() -> None:
    """`known` reads no store: None until every part is kept, the same answer as `fellows` after, None
    again once a membership changes or an entry expires (the event loop then sends a read off)."""
    store, clock, cache = _setup()
    assert cache.known(user_id="b", per_room=10) is None
    assert _fellows(cache, store) == ["a", "c", "d"]
    store.calls.clear()
    assert cache.known(user_id="b", per_room=10) == ["a", "c", "d"]
    assert cache.known(user_id="b", per_room=2) is None  # read with another room limit
    assert not store.calls
    cache.forget(room_id="lounge", user_id="c")
    assert cache.known(user_id="b", per_room=10) is None
    clock.now += SETTLE_SECONDS + 1
    assert _fellows(cache, store) == ["a", "c", "d"]
    assert cache.known(user_id="b", per_room=10) == ["a", "c", "d"]
    clock.now += ENTRY_SECONDS + 1
    assert cache.known(user_id="b", per_room=10) is None
