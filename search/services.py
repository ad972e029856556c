"""User search: a query over every room the user may read, checked against the store.

The rooms come from the store at query time (public rooms, and the private ones the user is
a member of; every room for a moderator, as chat.services.room_readable), and the engine's
query is limited to them, so a room the user cannot read contributes nothing, not even a
count. The page the engine returns is then checked against the store's truth in two reads
(`get_rooms`, `get_messages`): a room no longer readable, a message removed, expired or
edited since the index took it is left out, so an index that lags may miss the newest
messages, never show a removed one.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from accounts.identity import Identity
from chat.errors import ChatError, ErrorCode
from chat.services import store_call
from chat.storage import get_store
from chat.storage.base import MessageRecord, Room
from search import metrics
from search.engines import Cursor, get_engine
from search.query import Query, QueryError, parse
from search.snippets import snippet

PAGE: Final = 20
MAX_PAGE: Final = 50


@dataclass(frozen=True, slots=True)
class SearchResult:
    message: MessageRecord  # as the store has it now
    room: Room
    snippet: list[tuple[str, bool]]


@dataclass(frozen=True, slots=True)
class SearchPage:
    query: Query
    results: list[SearchResult]
    next_cursor: str | None


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([cursor.score, cursor.at_us, cursor.message_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        score, at_us, message_id = json.loads(raw)
        float(score)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ChatError(ErrorCode.INVALID_QUERY, "this cursor is not one a search returned") from None
    if not (isinstance(score, str) and isinstance(at_us, int) and isinstance(message_id, str)):
        raise ChatError(ErrorCode.INVALID_QUERY, "this cursor is not one a search returned")
    return Cursor(score=score, at_us=at_us, message_id=message_id)


@dataclass(frozen=True, slots=True)
class Readable:
    """The rooms a user may read, as the store has it now: every room for a moderator, else
    the public rooms and the private ones the user is a member of."""

    room_ids: list[str]
    everything: bool
    members_of: frozenset[str]

    def allows(self, room: Room) -> bool:
        """The check of one room's record (read for the page returned)."""
        return self.everything or not room.private or room.room_id in self.members_of


def rooms_readable(*, identity: Identity) -> Readable:
    """Two small store reads: the public rooms' ids and the user's memberships; never every
    room's record (that was 1,000 rooms read per query in the bench), except for a moderator."""
    store = get_store()
    if identity.is_moderator:
        ids = [room.room_id for room in store_call(store.list_rooms)]
        return Readable(room_ids=ids, everything=True, members_of=frozenset())
    mine = frozenset(store_call(store.member_rooms, user_id=identity.user_id))
    public = store_call(store.public_room_ids)
    return Readable(room_ids=sorted(mine.union(public)), everything=False, members_of=mine)


def messages_search(*, identity: Identity, q: str, cursor: str | None = None, limit: int | None = None) -> SearchPage:
    """One page of the messages `identity` may read that match `q`, best first.

    Raises ChatError(invalid_query) for a query or cursor that cannot be read.
    """
    started = time.perf_counter()
    try:
        query = parse(q)
    except QueryError as error:
        metrics.INVALID_QUERIES.inc()
        raise ChatError(ErrorCode.INVALID_QUERY, str(error)) from None
    after = decode_cursor(cursor) if cursor else None
    size = max(1, min(limit or PAGE, MAX_PAGE))
    readable = rooms_readable(identity=identity)
    allowed = set(readable.room_ids)
    room_ids = [r for r in query.rooms if r in allowed] if query.rooms else readable.room_ids
    now = datetime.now(UTC)
    engine = get_engine()
    hits = engine.search(query, room_ids=room_ids, now=int(now.timestamp()), limit=size + 1, after=after)
    more = len(hits) > size
    hits = hits[:size]
    # The page against the store's truth, in two reads: its rooms (still readable?) and its
    # messages (still there, not removed, the text the index matched?).
    store = get_store()
    rooms = {room.room_id: room for room in store_call(store.get_rooms, room_ids=sorted({h.room_id for h in hits}))}
    keys = [(hit.room_id, hit.message_id) for hit in hits if hit.room_id in rooms]
    messages = {m.message_id: m for m in store_call(store.get_messages, keys=keys, now=now)} if keys else {}
    results: list[SearchResult] = []
    for hit in hits:
        room, message = rooms.get(hit.room_id), messages.get(hit.message_id)
        if room is None or not readable.allows(room):
            continue  # made private (or gone) since the room list was read
        if message is None or message.removed or message.text != hit.text:
            continue  # removed, expired or edited since it was indexed: the store decides
        results.append(SearchResult(message=message, room=room, snippet=snippet(message.text, query)))
    metrics.QUERIES.labels(engine.name).observe(time.perf_counter() - started)
    return SearchPage(query=query, results=results, next_cursor=encode_cursor(hits[-1].cursor()) if more else None)
