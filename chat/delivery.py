"""The delivery core: which room events go out, in what order, and what must be read first.

Sans-I/O, in the style of python-websockets' protocol core: the objects here hold the
delivery state and return decisions; they never await, never touch a channel layer, a
transport, a clock or a database. Two shells execute their decisions:

- `chat.fanout` (once per process and room): a `RoomSequencer` puts the events that reach
  the process in seq order, waits a short reorder window before it calls a gap a loss, and
  asks for one store read per gap for the whole process.
- `chat.consumers` (once per socket): a `SocketDelivery` keeps a cursor per joined room,
  keeps room events back while a join, catch-up or repair runs, and says for each event
  whether to send it, skip it, repair a gap first, or resync the room (past the cap).

Both follow the one cursor rule (docs/protocol.md, "The one cursor rule"): with cursor =
the highest seq sent, an event with seq s is a duplicate when s <= cursor, the next one
when s == cursor + 1, and a gap when s > cursor + 1. No rule depends on the event's type:
every room event (message, removal, edit, reaction, membership, settings) takes the room's
next seq, and delivery never looks inside its frame.
"""

from __future__ import annotations

import bisect
import collections
import enum
from dataclasses import dataclass
from typing import Any, Final

# A gap wider than this is not read from the store: the sockets it affects get
# `recovered: false` and the room's current state, as a resume past the replay cap does.
# (The shells pass settings.CHAT_REPLAY_CAP.)
DEFAULT_GAP_CAP: Final = 500
# Events from two processes reach a third in either order: a seq past the next one is held
# this long for the missing ones before the gap counts as a loss and is read from the store.
DEFAULT_REORDER_WINDOW: Final = 0.25


class Rule(enum.IntEnum):
    """Where an event's seq stands against a cursor."""

    DUPLICATE = 0
    NEXT = 1
    GAP = 2


def rule(cursor: int, seq: int) -> Rule:
    """The one cursor rule."""
    if seq <= cursor:
        return Rule.DUPLICATE
    if seq == cursor + 1:
        return Rule.NEXT
    return Rule.GAP


class Step(enum.IntEnum):
    """A decision that needs no data beyond the event it was made for."""

    SEND = 1  # send the event now; the cursor has moved to its seq
    SKIP = 2  # nothing to send: a seq already sent, or a room this socket is not in
    DEFER = 3  # kept in the backlog: a join, catch-up or repair is running


# The decision of nearly every socket for nearly every event, as a plain name: Python 3.11
# looks an enum member up in about 70 ns, ten times a module global, and the fan-out's loop
# (chat.fanout, chat.socket_delivery) met four such lookups per socket per message: a third
# of that loop's own time in a 1000-member room (docs/performance.md).
SEND: Final = Step.SEND


@dataclass(frozen=True, slots=True)
class Repair:
    """Read the room's events in (after, up_to] from the store, hand each to `repaired`'s
    caller in order, then call `repaired(room_id, up_to)` and decide the event again."""

    room_id: str
    after: int
    up_to: int

    @property
    def missing(self) -> int:
        return self.up_to - self.after


@dataclass(frozen=True, slots=True)
class Resync:
    """The gap is past the cap: give the socket the room's current state (`recovered:
    false`, a rejoin) instead of reading the gap."""

    room_id: str
    after: int
    up_to: int


Decision = Step | Repair | Resync


class SocketDelivery:
    """One socket's delivery state: a cursor per joined room and a backlog.

    The shell calls `receive` for every room event that reaches the socket and executes the
    decision. While it runs a join, a catch-up or a repair (between `hold` and `release`),
    `receive` keeps events back (DEFER); the shell takes them with `next_deferred` and
    decides each with `decide` before it releases, so nothing overtakes what it is sending.
    """

    __slots__ = ("_backlog", "_held", "cursors", "gap_cap")

    def __init__(self, *, gap_cap: int = DEFAULT_GAP_CAP) -> None:
        # room id -> the highest seq this socket has been sent
        self.cursors: dict[str, int] = {}
        self.gap_cap = gap_cap
        self._held = False
        # made when first needed, and let go after: most sockets never need one
        self._backlog: collections.deque[tuple[str, int, Any]] | None = None

    # Rooms -----------------------------------------------------------------------------

    def join(self, room_id: str, seq: int) -> None:
        """The socket joined (or rejoined) the room with everything up to `seq` sent."""
        self.cursors[room_id] = seq

    def leave(self, room_id: str) -> bool:
        """Forget the room; False when the socket was not in it."""
        return self.cursors.pop(room_id, None) is not None

    def joined(self, room_id: str) -> bool:
        return room_id in self.cursors

    def rooms(self) -> list[str]:
        return list(self.cursors)

    # Holding (a join, a catch-up or a repair runs) -----------------------------------

    @property
    def held(self) -> bool:
        return self._held

    def hold(self) -> None:
        assert not self._held, "one holder at a time (the shell's lock)"
        self._held = True

    def next_deferred(self) -> tuple[str, int, Any] | None:
        """The oldest event kept back while held (room id, seq, the shell's item), or None."""
        if self._backlog:
            return self._backlog.popleft()
        self._backlog = None
        return None

    def release(self) -> None:
        """Stop holding. Call only once `next_deferred` returned None."""
        assert not self._backlog, "decide every deferred event before releasing"
        self._backlog = None
        self._held = False

    # Events ----------------------------------------------------------------------------

    def receive(self, room_id: str, seq: int, item: Any = None) -> Decision:
        """Decide an event as it arrives: DEFER (kept, with `item`) while held, else `decide`.

        While held every event is kept, even of a room not joined yet: the join that holds
        may be the one that joins it.
        """
        if self._held:
            return self.defer(room_id, seq, item)
        return self.decide(room_id, seq)

    def defer(self, room_id: Any, seq: Any, item: Any) -> Step:
        """Keep an event back for the holder (the shell knows a holder is about to run)."""
        if self._backlog is None:
            self._backlog = collections.deque()
        self._backlog.append((room_id, seq, item))
        return Step.DEFER

    def decide(self, room_id: str, seq: int) -> Decision:
        """The cursor rule for one event; SEND moves the cursor to `seq`. Any other decision
        changes nothing, so deciding the same event again gives the same answer."""
        cursor = self.cursors.get(room_id)
        if cursor is None or seq <= cursor:
            return Step.SKIP
        if seq == cursor + 1:
            self.cursors[room_id] = seq
            return SEND
        if seq - 1 - cursor > self.gap_cap:
            return Resync(room_id, cursor, seq - 1)
        return Repair(room_id, cursor, seq - 1)

    def replayed(self, room_id: str, seq: int) -> bool:
        """An event a repair read from the store: True (send it; the cursor moves) when this
        socket has not had it."""
        cursor = self.cursors.get(room_id)
        if cursor is None or seq <= cursor:
            return False
        self.cursors[room_id] = seq
        return True

    def repaired(self, room_id: str, up_to: int) -> None:
        """A repair read what the store has up to `up_to`: what it lacks (expired) is gone."""
        cursor = self.cursors.get(room_id)
        if cursor is not None and up_to > cursor:
            self.cursors[room_id] = up_to

    def behind(self, room_id: str, last_seq: int | None) -> Decision:
        """A catch-up's check against the room's seq as the store has it now: SKIP when
        this socket has everything, else the Repair (or Resync) that brings it up to date."""
        cursor = self.cursors.get(room_id)
        if cursor is None or last_seq is None or last_seq <= cursor:
            return Step.SKIP
        if last_seq - cursor > self.gap_cap:
            return Resync(room_id, cursor, last_seq)
        return Repair(room_id, cursor, last_seq)


@dataclass(slots=True)
class _Room:
    cursor: int | None  # None: the baseline is not known yet (just subscribed)
    # events past a gap, kept for the reorder window: sorted seqs, their items, since when
    seqs: list[int]
    items: list[Any]
    since: float | None = None
    # A repair is being read: gaps in the meantime wait for it rather than start another.
    repairing: bool = False
    # before the baseline is known: the highest seq passed on
    seen: int = 0


class RoomSequencer:
    """A process's delivery state per subscribed room: the events that reach the process, in
    seq order, each once, with a reorder window before a gap counts as a loss.

    `receive` returns the items to fan out now (in seq order; often just the one that came).
    An event past a gap is held until the events before it arrive (a reordering between
    publishers: counted in `reordered`, nothing read) or until `window` seconds have passed
    (a loss): then `expired` returns the Repair to run, and once the shell has fanned out
    what it read, `repaired` returns the held events that follow. A gap wider than
    `gap_cap` is not read at all: the held events go on and each socket resyncs.
    """

    def __init__(self, *, window: float = DEFAULT_REORDER_WINDOW, gap_cap: int = DEFAULT_GAP_CAP) -> None:
        self.window = window
        self.gap_cap = gap_cap
        self._rooms: dict[str, _Room] = {}
        # Counters the shell reads for metrics: events that arrived out of order but within
        # the window, and seqs that never arrived (read from the store, or past the cap).
        self.reordered = 0
        self.lost = 0

    def subscribe(self, room_id: str) -> None:
        if room_id not in self._rooms:
            self._rooms[room_id] = _Room(cursor=None, seqs=[], items=[])

    def unsubscribe(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)

    def subscribed(self, room_id: str) -> bool:
        return room_id in self._rooms

    def cursor(self, room_id: str) -> int | None:
        room = self._rooms.get(room_id)
        return None if room is None else room.cursor

    def baseline(self, room_id: str, seq: int) -> None:
        """The room's seq as read right after subscribing: the first gap is measured from
        there, never from whatever old seq happens to arrive first (a retry's re-broadcast)."""
        room = self._rooms.get(room_id)
        if room is not None and room.cursor is None:
            room.cursor = max(seq, room.seen)

    def receive(self, room_id: str, seq: int, item: Any, now: float) -> list[Any]:
        """The items to fan out now, in order (empty: a duplicate, held, or not subscribed)."""
        room = self._rooms.get(room_id)
        if room is None:
            return []
        if room.cursor is None:
            # No baseline yet: the joining sockets keep their own order; only remember it.
            room.seen = max(room.seen, seq)
            return [item]
        verdict = rule(room.cursor, seq)
        if verdict is Rule.DUPLICATE:
            return []
        if verdict is Rule.NEXT and not room.seqs:
            room.cursor = seq
            return [item]
        index = bisect.bisect_left(room.seqs, seq)
        if index < len(room.seqs) and room.seqs[index] == seq:
            return []  # held already
        room.seqs.insert(index, seq)
        room.items.insert(index, item)
        if verdict is Rule.NEXT:
            self.reordered += 1
            return self._release(room)
        if room.since is None:
            room.since = now
        return []

    def deadline(self) -> float | None:
        """When `expired` next has work (the oldest held gap's window end), or None."""
        times = [room.since for room in self._rooms.values() if room.since is not None and not room.repairing]
        return min(times) + self.window if times else None

    def expired(self, now: float) -> list[Repair | Resync]:
        """The gaps whose window has passed: Repair to read, Resync (past the cap) to let go."""
        due: list[Repair | Resync] = []
        for room_id, room in self._rooms.items():
            if room.since is None or room.repairing or now < room.since + self.window:
                continue
            assert room.cursor is not None and room.seqs
            after, up_to = room.cursor, room.seqs[0] - 1
            self.lost += up_to - after
            room.repairing = True
            wide = up_to - after > self.gap_cap
            due.append(Resync(room_id, after, up_to) if wide else Repair(room_id, after, up_to))
        return due

    def repaired(self, room_id: str, up_to: int) -> list[Any]:
        """The shell fanned out what it read up to `up_to` (or gave up on it): the held
        items that now follow, in order."""
        room = self._rooms.get(room_id)
        if room is None:
            return []
        room.repairing = False
        if room.cursor is not None and up_to > room.cursor:
            room.cursor = up_to
        return self._release(room)

    def _release(self, room: _Room) -> list[Any]:
        assert room.cursor is not None
        out: list[Any] = []
        while room.seqs and room.seqs[0] <= room.cursor + 1:
            seq = room.seqs.pop(0)
            item = room.items.pop(0)
            if seq == room.cursor + 1:
                room.cursor = seq
                out.append(item)
        room.since = None if not room.seqs else room.since
        return out
