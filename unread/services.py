"""Read state, mentions and receipts: writes through the chat store, then the user's sockets.

The consumer (chat.consumers) calls these for markRead, readStates, mentions and receipts;
chat.services calls `message_stored` after a message is durably stored. Store calls go
through chat.services' one wrapper (timing; storage_unavailable for a failing store), and
frames to other sockets through chat.broadcast. docs/protocol.md "Read state".
"""

from __future__ import annotations

import asyncio
import logging
import operator
import weakref
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Any, Final

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q

from accounts.identity import Identity
from chat import broadcast, mentions, presence, protocol
from chat.errors import ChatError, ErrorCode, StorageUnavailable
from chat.presence_rules import OFFLINE
from chat.records import OWNER, MessageRecord, Room
from chat.services import _readable_room, _store_call, room_list, room_visible, rooms_readable_now, utcnow
from chat.storage import get_store
from unread import counting
from unread.models import Preference

log = logging.getLogger(__name__)

# How many mentioned users get a live readState for one message (the rest see it on their
# next count): a moderator's @room in a large room must not cost a count per member inline.
LIVE_MENTION_UPDATES: Final = 50
# How many @names of one message are looked up (the rest stay plain text).
MAX_NAMES: Final = 50
# How many messages the mentions list holds.
MENTIONS_LIST: Final = 50


def _state(*, room: Room, user_id: str, last_read: int, now: datetime) -> dict[str, Any]:
    """The readState frame of one room for one user: one bounded read of the store."""
    last_read = min(last_read, room.last_seq)
    window = (
        get_store().messages_after(room_id=room.room_id, after_seq=last_read, limit=counting.WINDOW, now=now)
        if room.last_seq > last_read
        else []
    )
    counts = counting.count(window, user_id=user_id)
    return protocol.read_state_frame(
        room_id=room.room_id, last_read_seq=last_read, unread=counts.unread, mentions=counts.mentions
    )


# markRead: gathered, one trip and one transaction for many -------------------------------

# How many markReads one trip to the store writes at most (the rest wait for the next).
MARKS_PER_TRIP: Final = 200


@dataclass(frozen=True, slots=True)
class _Marked:
    """One markRead's outcome, from the batch it was written in."""

    frame: dict[str, Any]  # the readState answer, with the mark as stored
    moved: bool  # this markRead moved the mark: its frame goes to the user's other sockets
    receipt: dict[str, Any] | None  # the readReceipt for a small private room's sockets


def _mark_batch(*, marks: list[tuple[Identity, str, int]]) -> list[_Marked | ChatError]:
    """The store work of many markReads in one trip off the event loop: the rooms in one read
    (may each user read theirs), the marks in one transaction (store.mark_reads: one synced
    commit for all), then the counts, after that commit. A mark is durable before its answer."""
    store = get_store()
    rooms = rooms_readable_now([(room_id, identity) for identity, room_id, _ in marks])
    wanted: dict[tuple[str, str], int] = {}
    readable: dict[str, Room] = {}
    for (identity, room_id, seq), room in zip(marks, rooms, strict=True):
        if isinstance(room, Room):
            readable[room_id] = room
            key = (room_id, identity.user_id)
            clamped = min(seq, room.last_seq)  # a seq past the room's last is clamped to it
            wanted[key] = max(wanted.get(key, clamped), clamped)
    stored = store.mark_reads(wanted) if wanted else {}
    frames = _states_of(rooms=readable, marks={key: result.last_read_seq for key, result in stored.items()})
    outcomes: list[_Marked | ChatError] = []
    told: set[tuple[str, str]] = set()
    for (identity, room_id, _), room in zip(marks, rooms, strict=True):
        if not isinstance(room, Room):
            outcomes.append(room)
            continue
        key = (room_id, identity.user_id)
        # One announcement per mark moved, by the first of the batch's markReads for it.
        moved = stored[key].moved and key not in told
        told.add(key)
        last_read = stored[key].last_read_seq
        receipt = _receipt_frame(room=room, identity=identity, last_read=last_read) if moved and room.private else None
        outcomes.append(_Marked(frame=frames[key], moved=moved, receipt=receipt))
    return outcomes


def _states_of(*, rooms: dict[str, Room], marks: dict[tuple[str, str], int]) -> dict[tuple[str, str], dict[str, Any]]:
    """The readState frame of each (room id, user id) mark. Marks of one room within WINDOW
    seqs of each other share one read: messages after the lowest, WINDOW more than their
    spread (at most spread messages lie between two of them, so each still sees WINDOW)."""
    by_room: dict[str, list[tuple[int, str]]] = {}
    for (room_id, user_id), last_read in marks.items():
        by_room.setdefault(room_id, []).append((min(last_read, rooms[room_id].last_seq), user_id))
    groups: list[tuple[str, list[tuple[int, str]]]] = []
    for room_id, readers in by_room.items():
        for reader in sorted(r for r in readers if r[0] < rooms[room_id].last_seq):
            if groups and groups[-1][0] == room_id and reader[0] - groups[-1][1][0][0] <= counting.WINDOW:
                groups[-1][1].append(reader)
            else:
                groups.append((room_id, [reader]))
    # Every window of the batch in one read.
    reads = get_store().messages_after_many(
        [(room_id, group[0][0], counting.WINDOW + group[-1][0] - group[0][0]) for room_id, group in groups],
        now=utcnow(),
    )
    windows: dict[tuple[str, str], list[MessageRecord]] = {}
    for (room_id, group), read in zip(groups, reads, strict=True):
        for last_read, user_id in group:
            windows[(room_id, user_id)] = [m for m in read if m.seq > last_read][: counting.WINDOW]
    frames: dict[tuple[str, str], dict[str, Any]] = {}
    for room_id, readers in by_room.items():
        for last_read, user_id in readers:
            counts = counting.count(windows.get((room_id, user_id), []), user_id=user_id)
            frames[(room_id, user_id)] = protocol.read_state_frame(
                room_id=room_id, last_read_seq=last_read, unread=counts.unread, mentions=counts.mentions
            )
    return frames


class _MarkQueue:
    """The markReads waiting for the store on one event loop. One writer task takes every
    markRead that arrived while the previous trip was running, up to MARKS_PER_TRIP, in one
    trip: group commit. The first waits CHAT_MARK_READ_GATHER_SECONDS for others to come, and
    every markRead that comes while a trip runs goes in the next: under load the marks of a
    fraction of a second share one room read and one synced commit (a markRead cost one of
    each, with the ORM's query building, about 4 ms of CPU before: docs/performance.md "Read
    state"). Each is answered only after its batch is committed."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Identity, str, int, asyncio.Future[_Marked]]] = []
        self.writer: asyncio.Task[None] | None = None

    async def mark(self, *, identity: Identity, room_id: str, seq: int) -> _Marked:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_Marked] = loop.create_future()
        self.waiting.append((identity, room_id, seq, done))
        if self.writer is None:
            self.writer = loop.create_task(self._write())
        return await done

    async def _write(self) -> None:
        batch: list[tuple[Identity, str, int, asyncio.Future[_Marked]]] = []
        try:
            if settings.CHAT_MARK_READ_GATHER_SECONDS > 0:
                await asyncio.sleep(settings.CHAT_MARK_READ_GATHER_SECONDS)
            while self.waiting:
                batch, self.waiting = self.waiting[:MARKS_PER_TRIP], self.waiting[MARKS_PER_TRIP:]
                try:
                    found: list[_Marked | ChatError] = await _store_call(
                        _mark_batch, marks=[(identity, room_id, seq) for identity, room_id, seq, _ in batch]
                    )
                except StorageUnavailable as error:
                    found = [StorageUnavailable(error.message) for _ in batch]  # an error of its own each
                for (_, _, _, done), outcome in zip(batch, found, strict=True):
                    if done.done():
                        continue  # its socket went away
                    if isinstance(outcome, ChatError):
                        done.set_exception(outcome)
                    else:
                        done.set_result(outcome)
                batch = []
        finally:
            # Cancelled (the loop is closing) or failed unexpectedly: nobody waits for ever.
            for _, _, _, done in batch + self.waiting:
                if not done.done():
                    done.set_exception(StorageUnavailable())
            self.waiting = []
            self.writer = None


_mark_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _MarkQueue] = weakref.WeakKeyDictionary()


async def read_mark(*, identity: Identity, room_id: str, seq: int, origin: str | None) -> dict[str, Any]:
    """Move the user's last-read seq in the room forward (a seq past the room's last is
    clamped to it); when it moved, tell every other socket of theirs (and, in a small private
    room, its readers); return the readState frame, sent only after the mark is committed."""
    queue = _mark_queues.setdefault(asyncio.get_running_loop(), _MarkQueue())
    marked = await queue.mark(identity=identity, room_id=room_id, seq=seq)
    if marked.moved:
        await broadcast.user_read_state(identity.user_id, marked.frame, origin=origin)
        if marked.receipt is not None:
            await broadcast.read_receipt(room_id, marked.receipt)
    return marked.frame


def _states(*, identity: Identity, room_ids: tuple[str, ...] | None) -> list[dict[str, Any]]:
    store = get_store()
    # The room list the user sees (the default room included before its first write).
    rooms = [r for r in room_list(identity=identity) if room_ids is None or r.room_id in room_ids]
    marks = store.read_seqs(user_id=identity.user_id, room_ids=[r.room_id for r in rooms])
    now = utcnow()
    return [_state(room=r, user_id=identity.user_id, last_read=marks.get(r.room_id, 0), now=now) for r in rooms]


async def read_states(*, identity: Identity, room_ids: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """The readState of every room the user sees (or of those named): the room list's counts."""
    states: list[dict[str, Any]] = await _store_call(_states, identity=identity, room_ids=room_ids)
    return states


def _mentions_of(*, identity: Identity) -> list[MessageRecord]:
    store = get_store()
    now = utcnow()
    found: list[MessageRecord] = []
    for room in store.list_rooms():
        if not room_visible(room=room, identity=identity):
            continue
        latest = store.messages_before(room_id=room.room_id, before_seq=None, limit=counting.WINDOW, now=now)
        found += [m for m in latest if identity.user_id in m.mentions and m.removed is None]
    found.sort(key=lambda m: m.timestamp, reverse=True)
    return found[:MENTIONS_LIST]


async def mentions_list(*, identity: Identity) -> dict[str, Any]:
    """The `mentions` frame: the latest messages (newest first) that mention the user, among
    the newest 100 of each room they may read."""
    found: list[MessageRecord] = await _store_call(_mentions_of, identity=identity)
    return {"type": "mentions", "messages": [protocol.message_payload(m) for m in found]}


# Read receipts ------------------------------------------------------------------------------


def _receipt_room_members(room: Room) -> list[str] | None:
    """The members of a room small enough for read receipts (a private room, a DM), or None."""
    if not room.private:
        return None
    members = get_store().room_members(room.room_id)
    return members if len(members) <= settings.CHAT_READ_RECEIPTS_MAX_MEMBERS else None


def _sends_receipts(user_ids: list[str]) -> set[str]:
    off = set(Preference.objects.filter(user_id__in=user_ids, send_receipts=False).values_list("user_id", flat=True))
    return {u for u in user_ids if u not in off}


def _usernames(user_ids: list[str]) -> dict[str, str]:
    ids = [int(u) for u in user_ids if u.isdigit()]
    users = get_user_model().objects.filter(pk__in=ids)
    return {str(user.pk): user.get_username() for user in users}


def _receipts_of(*, room: Room) -> list[dict[str, Any]] | None:
    members = _receipt_room_members(room)
    if members is None:
        return None
    senders = _sends_receipts(members)
    marks = get_store().room_readers(room_id=room.room_id, user_ids=sorted(senders))
    names = _usernames(list(marks))
    return [
        {"userId": user_id, "username": names.get(user_id, user_id), "lastReadSeq": seq}
        for user_id, seq in sorted(marks.items())
    ]


async def receipts(*, identity: Identity, room_id: str) -> dict[str, Any]:
    """The `receipts` frame: how far each member of a small room has read (those who send
    receipts). A room too large (or public) answers `forbidden`."""
    room = await _readable_room(room_id, identity)
    readers = await _store_call(_receipts_of, room=room)
    if readers is None:
        raise ChatError(ErrorCode.FORBIDDEN, "read receipts are kept in small private rooms only", room_id=room_id)
    return {"type": "receipts", "roomId": room_id, "readers": readers}


def _receipt_frame(*, room: Room, identity: Identity, last_read: int) -> dict[str, Any] | None:
    if _receipt_room_members(room) is None or not _sends_receipts([identity.user_id]):
        return None
    return {
        "type": "readReceipt",
        "roomId": room.room_id,
        "userId": identity.user_id,
        "username": identity.username,
        "lastReadSeq": last_read,
    }


async def receipts_set(*, user_id: str, send: bool) -> None:
    await sync_to_async(_set_receipts)(user_id=user_id, send=send)


def _set_receipts(*, user_id: str, send: bool) -> None:
    Preference.objects.update_or_create(user_id=user_id, defaults={"send_receipts": send})


# After a message is stored ------------------------------------------------------------------


def _audience(*, room: Room, identity: Identity, broadcast: bool) -> tuple[bool, list[str]]:
    """Whether the author may use @here/@room in the room (a moderator, or an owner of the
    room), and the room's members when they matter: a private room's readers, or the members
    a broadcast mention reaches. The same store calls on both backends (a membership get, a
    members query): a public room's members are the users who joined it to their list."""
    store = get_store()
    may = False
    if broadcast:
        may = identity.is_moderator or room.created_by == identity.user_id
        if not may:
            membership = store.get_membership(room_id=room.room_id, user_id=identity.user_id)
            may = membership is not None and membership.role == OWNER
    members = store.room_members(room.room_id) if room.private or may else []
    return may, members


def _resolve_mentions(
    *, room: Room, identity: Identity, parsed: mentions.Parsed, may: bool, members: list[str], present: set[str]
) -> tuple[str, ...]:
    names: dict[str, str] = {}
    if parsed.usernames:
        # One query, case-insensitive, for at most MAX_NAMES names a message may mention.
        wanted = sorted(parsed.usernames)[:MAX_NAMES]
        match = reduce(operator.or_, (Q(username__iexact=name) for name in wanted))
        for account in get_user_model().objects.filter(match, is_active=True):
            names[account.get_username().lower()] = str(account.pk)
    return mentions.resolve(
        parsed,
        author_id=identity.user_id,
        user_ids_by_name=names,
        may_broadcast=may,
        readers=members if room.private else None,
        present=present,
        members=members,
    )


async def _present(*, room_id: str, members: list[str]) -> set[str]:
    """Everyone present for @here: the members with a socket open now, and anyone with a
    socket in the room now (a public room's readers need not be members), on every process.
    Read from presence (chat.presence: Redis, or this process's memory on the embedded
    default), not from a storage backend, so it is the same on both; when presence cannot be
    read it is empty and @here reaches no one (the message itself goes out)."""
    here = set(await presence.present_in(room_id))
    online = await presence.presence_of(members)
    return here | {user_id for user_id, p in online.items() if p.status != OFFLINE}


async def mentions_for(*, room: Room, identity: Identity, text: str) -> tuple[str, ...]:
    """The user ids `text` mentions in `room`, resolved by the server (chat.mentions)."""
    if "@" not in text:
        return ()  # the common case: no store or database call
    parsed = mentions.parse(text)
    broadcast = parsed.here or parsed.room
    if not (parsed.usernames or broadcast):
        return ()
    may = False
    members: list[str] = []
    if room.private or broadcast:
        may, members = await _store_call(_audience, room=room, identity=identity, broadcast=broadcast)
    present = await _present(room_id=room.room_id, members=members) if may else set()
    resolved: tuple[str, ...] = await _store_call(
        _resolve_mentions, room=room, identity=identity, parsed=parsed, may=may, members=members, present=present
    )
    return resolved


async def _live_mention_states(message: MessageRecord) -> None:
    """A readState to each mentioned user's sockets, so a mention counts at once even in a
    room their tab has not joined."""
    room = await _store_call(get_store().get_room, room_id=message.room_id)
    if room is None:
        return
    for user_id in message.mentions[:LIVE_MENTION_UPDATES]:
        marks = await _store_call(get_store().read_seqs, user_id=user_id, room_ids=[room.room_id])
        frame = await _store_call(
            _state, room=room, user_id=user_id, last_read=marks.get(room.room_id, 0), now=utcnow()
        )
        await broadcast.user_read_state(user_id, frame, origin=None)


_background: set[asyncio.Task[None]] = set()


def message_stored(*, message: MessageRecord, room: Room) -> None:
    """After a new message is stored and acked: live mention counts, then notifications
    (unread.notify), in a task of their own: the sender's ack never waits for them."""
    from unread import notify

    async def run() -> None:
        try:
            if message.mentions:
                await _live_mention_states(message)
            await notify.message_stored(message=message, room=room)
        except Exception:
            log.exception("after-message work failed room=%s seq=%s", message.room_id, message.seq)

    task = asyncio.get_running_loop().create_task(run())
    _background.add(task)
    task.add_done_callback(_background.discard)
