"""The DynamoDB storage backend: the only module that talks to DynamoDB (through boto3).

boto3 is synchronous; `chat.services` runs every call in a thread pool (`thread_sensitive =
False`: a boto3 client is thread-safe, sessions are not, so one client is built once and
shared). The tables come from `chat.storage.schema`; docs/data-model.md explains the model.

Three rules hold for every method:
- Writes that must go together go in one TransactWriteItems with conditions; there is no
  read-then-write race (a read only proposes a value that the write's condition checks).
- Every read drops expired items (`ttl` <= now): DynamoDB deletes them days late, moto never.
- Every attribute name in an expression goes through ExpressionAttributeNames: `ttl`,
  `timestamp`, `message`, `name`, `data` are reserved words, and escaping them all means no
  one has to remember which.
"""

from __future__ import annotations

import functools
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chat import events
from chat.records import iso_timestamp
from chat.storage import schema
from chat.storage.base import (
    DELETED,
    AppendResult,
    ChangeResult,
    ConnectionRecord,
    EventRecord,
    InstanceBeat,
    LogEntry,
    Membership,
    MessageRecord,
    NewEvent,
    NewMessage,
    PastVersion,
    Reactions,
    ReadMarkResult,
    Removal,
    RemoveResult,
    ReplyRef,
    Room,
    RoomNotFound,
    RoomUpdate,
    membership_changed,
)

# boto3 ships no type information; the low-level client is dynamically generated.
DynamoDBClient = Any
Item = dict[str, dict[str, Any]]  # a DynamoDB item in the wire format: {"seq": {"N": "3"}}

# botocore's "standard" retry mode retries throttling and transient errors (5xx, timeouts,
# connection resets) with exponential backoff and jitter. Four attempts keep the worst case
# within a few seconds, after which the caller gets a retryable error frame. A transaction
# cancelled for TransactionConflict is not botocore's to retry: append_message does that.
MAX_ATTEMPTS: Final = 4
CONNECT_TIMEOUT: Final = 2.0
READ_TIMEOUT: Final = 5.0

# Concurrent senders in one room race for the next seq; the loser of a round re-reads lastSeq
# and tries again. With N concurrent senders the last one needs N rounds, so the bound is
# generous; beyond it the send fails with a retryable error and nothing stored.
MAX_APPEND_ATTEMPTS: Final = 50
APPEND_BACKOFF_BASE: Final = 0.002  # seconds, doubled per attempt, full jitter
APPEND_BACKOFF_CAP: Final = 0.1

# Items per Query/Scan page. DynamoDB applies Limit before FilterExpression, so a page may hold
# fewer live items than asked for; reads keep paging (and widen the page) until they have enough.
PAGE_SIZE: Final = 100

# Reads of a room's newest RECENT_WINDOW seqs fetch the messages by key, strongly consistent;
# older seqs come from RoomSeqIndex. A GSI is only eventually consistent: a message stored a
# moment ago may not be in it yet, and a replay or gap fill that skipped it would leave a
# hole the client never repairs. Index lag is well under a second, and one room cannot take
# 100 appends in that time (each is a read and a transaction, one after the other).
RECENT_WINDOW: Final = 100
BATCH_GET_MAX: Final = 100  # keys per BatchGetItem (DynamoDB's limit)
BATCH_ATTEMPTS: Final = 8  # rounds for what a throttled BatchGetItem or BatchWriteItem returns unprocessed
BATCH_WRITE_MAX: Final = 25  # requests per BatchWriteItem (DynamoDB's limit)

# Cancellation reasons of a TransactWriteItems that are worth another round.
_RETRYABLE_REASONS: Final = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)

_MESSAGE_ID_NAMESPACE: Final = uuid.UUID("5b0c8c1e-2f4e-4a53-9d52-2f3b7a8f6c11")
_CLIENT_MESSAGE_NAMESPACE: Final = uuid.UUID("0d7f4a39-8b2e-4c61-a5f0-6e9d3c1b2a48")
CLIENT_MESSAGE_KEY_PREFIX: Final = "cmid:"
# A user's read state in a room: one item in Messages keyed "read:<uuid5(room, user)>", with
# no roomId or userId attribute, so it is in no index and no message read or scan sees it.
_READ_NAMESPACE: Final = uuid.UUID("9a3e6f0b-71c4-4d2a-b8e5-3f1c0d7a6b92")
READ_KEY_PREFIX: Final = "read:"
# The key in Connections of the one item listing the processes and how long each is alive
# (beat_instance); connection ids are hex uuids, never this.
INSTANCES_KEY: Final = "instances"


class AppendContention(RuntimeError):
    """A room's seq stayed contended for every attempt; nothing was stored (the send is retryable)."""


def message_id_for(*, room_id: str, seq: int) -> str:
    """A message's id follows from its room and seq, so any seq can be read by key."""
    return str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, json.dumps([room_id, seq])))


def client_message_key(*, room_id: str, user_id: str, client_message_id: str) -> str:
    """The key of the item that records which message a (room, user, clientMessageId) became."""
    name = json.dumps([room_id, user_id, client_message_id])
    return CLIENT_MESSAGE_KEY_PREFIX + str(uuid.uuid5(_CLIENT_MESSAGE_NAMESPACE, name))


def read_key(*, room_id: str, user_id: str) -> str:
    """The key of the item holding a user's last-read seq in a room (docs/data-model.md)."""
    return READ_KEY_PREFIX + str(uuid.uuid5(_READ_NAMESPACE, json.dumps([room_id, user_id])))


def make_client(
    *,
    region: str,
    max_attempts: int = MAX_ATTEMPTS,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> DynamoDBClient:
    """A DynamoDB client; boto3 itself honours AWS_ENDPOINT_URL(_DYNAMODB) for a local stand-in."""
    config = Config(
        region_name=region,
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # One connection per thread of the pool that runs storage calls.
        max_pool_connections=64,
    )
    # A session of its own, as boto3.client() would make, but sharing one loader: a fresh
    # session parsed botocore's service models again, about 0.1 s of CPU per client (each
    # test on DynamoDB makes two, a management command one). Credentials and the endpoint
    # are still read from this session's environment, as before.
    session = botocore.session.get_session()
    session.register_component("data_loader", _models_loader())
    return session.create_client("dynamodb", config=config)


@functools.cache
def _models_loader() -> botocore.loaders.Loader:
    """botocore's loader of service models, shared by every client this process makes (its
    cache is what makes a second client cheap; a race on it loads a model twice, no worse)."""
    return botocore.loaders.create_loader()


def table_names_from_settings() -> schema.TableNames:
    """The table names from DYNAMODB_*_TABLE; ImproperlyConfigured names any that is missing."""
    names = {table.setting: str(getattr(settings, table.setting, "") or "") for table in schema.TABLES}
    missing = [setting for setting, value in names.items() if not value]
    if missing:
        raise ImproperlyConfigured(f"the DynamoDB storage backend needs {', '.join(missing)}")
    return schema.TableNames(
        connections=names[schema.CONNECTIONS.setting],
        messages=names[schema.MESSAGES.setting],
        rooms=names[schema.ROOMS.setting],
    )


# --- attribute values ------------------------------------------------------------------------


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _str(item: Item, name: str) -> str:
    return str(item[name]["S"])


def _opt_str(item: Item, name: str) -> str | None:
    value = item.get(name)
    return None if value is None or "NULL" in value else str(value["S"])


def _int(item: Item, name: str) -> int:
    return int(item[name]["N"])


def _opt_bool(item: Item, name: str) -> bool:
    value = item.get(name)
    return bool(value.get("BOOL", False)) if value else False


def _opt_int(item: Item, name: str) -> int:
    value = item.get(name)
    return int(value["N"]) if value and "N" in value else 0


def _time(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds: fixed width, so it sorts as a string."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _room(item: Item) -> Room:
    return Room(
        room_id=_str(item, "roomId"),
        name=_str(item, "name"),
        created_at=_parse_time(_str(item, "createdAt")),
        created_by=_opt_str(item, "createdBy"),
        last_seq=_int(item, "lastSeq"),
        # Moderation settings: absent on rooms written before them, which keep the defaults.
        archived=_opt_bool(item, "archived"),
        private=_opt_bool(item, "private"),
        read_only=_opt_bool(item, "readOnly"),
        slow_mode_seconds=_opt_int(item, "slowModeSeconds"),
        direct=_opt_bool(item, "direct"),
        topic=_opt_str(item, "topic") or "",
        last_activity=_parse_time(item["lastActivity"]["S"]) if "lastActivity" in item else None,
    )


def _is_member_item(item: Item) -> bool:
    return schema.MEMBER_ROOM_ID in item


def member_key(*, room_id: str, user_id: str) -> str:
    """The Rooms-table key of one membership item (room ids hold no ':')."""
    return f"{schema.MEMBER_KEY_PREFIX}{room_id}:{user_id}"


def _membership(item: Item) -> Membership:
    return Membership(
        room_id=_str(item, schema.MEMBER_ROOM_ID),
        user_id=_str(item, schema.MEMBER_USER_ID),
        role=_opt_str(item, "role") or "member",
        muted=_opt_bool(item, "muted"),
        joined_at=_parse_time(item["joinedAt"]["S"]) if "joinedAt" in item else None,
    )


# A reaction is a string set of user ids on the message's item, one attribute per emoji
# (REACTION_PREFIX + the emoji): a user is added with ADD and taken out with DELETE.
REACTION_PREFIX: Final = "rx:"


def _reactions(item: Item) -> Reactions:
    found = [
        (name.removeprefix(REACTION_PREFIX), value) for name, value in item.items() if name.startswith(REACTION_PREFIX)
    ]
    # A set has no order: user ids sort, so every reader lists them alike.
    return tuple(sorted((emoji, tuple(sorted(value.get("SS", [])))) for emoji, value in found if value.get("SS")))


def _edits(item: Item) -> tuple[PastVersion, ...]:
    raw = item.get("edits")
    if not raw or "S" not in raw:
        return ()
    return tuple(
        PastVersion(
            text=entry["text"], edited_at=_parse_time(entry["editedAt"]), client_message_id=entry.get("clientMessageId")
        )
        for entry in json.loads(raw["S"])
    )


def _reply(item: Item) -> ReplyRef | None:
    reply_to = _opt_str(item, schema.REPLY_TO_ID)
    if reply_to is None:
        return None
    return ReplyRef(
        message_id=reply_to,
        seq=_opt_int(item, "replySeq"),
        username=_opt_str(item, "replyUsername") or "",
        excerpt=_opt_str(item, "replyExcerpt") or "",
        removed=_opt_bool(item, "replyRemoved"),
        number=_opt_int(item, "replyNumber"),
    )


def _message(item: Item) -> MessageRecord:
    edited_at = _opt_str(item, "editedAt")
    return MessageRecord(
        message_id=_str(item, "messageId"),
        room_id=_str(item, "roomId"),
        seq=_int(item, "seq"),
        user_id=_str(item, "userId"),
        username=_str(item, "username"),
        text=_str(item, "message"),
        timestamp=_parse_time(_str(item, "timestamp")),
        connection_id=_str(item, "connectionId"),
        client_message_id=_opt_str(item, "clientMessageId"),
        ttl=_int(item, "ttl"),
        removed=_opt_str(item, "removed"),  # type: ignore[arg-type]
        edited_at=_parse_time(edited_at) if edited_at else None,
        reply_to=_reply(item),
        reply_count=_opt_int(item, "replyCount"),
        reactions=_reactions(item),
        edits=_edits(item),
        removed_by=_opt_str(item, "removedBy"),
        mentions=tuple(v["S"] for v in item.get("mentions", {}).get("L", [])),
        attachments=tuple(json.loads(_opt_str(item, "attachments") or "[]")),
    )


def _is_event(item: Item) -> bool:
    """A room event's item (in Messages, at its seq's key) rather than a message's."""
    return schema.EVENT_TYPE in item


def _event(item: Item) -> EventRecord:
    return EventRecord(
        room_id=_str(item, "roomId"),
        seq=_int(item, "seq"),
        type=_str(item, schema.EVENT_TYPE),
        data=json.loads(_str(item, "data")),
        timestamp=_parse_time(_str(item, "timestamp")),
        ttl=_int(item, "ttl"),
    )


def _entry(item: Item) -> LogEntry:
    return _event(item) if _is_event(item) else _message(item)


def _event_item(record: EventRecord) -> Item:
    return {
        "messageId": _s(message_id_for(room_id=record.room_id, seq=record.seq)),
        "roomId": _s(record.room_id),
        "seq": _n(record.seq),
        schema.EVENT_TYPE: _s(record.type),
        "data": _s(json.dumps(record.data, ensure_ascii=False, separators=(",", ":"))),
        "timestamp": _s(_time(record.timestamp)),
        "ttl": _n(record.ttl),
    }


def _new_event_record(new: NewEvent, seq: int) -> EventRecord:
    return EventRecord(
        room_id=new.room_id,
        seq=seq,
        type=new.type,
        data=new.data,
        timestamp=new.timestamp,
        ttl=_epoch(new.timestamp) + new.ttl_seconds,
    )


def _settings(room: Room) -> dict[str, Any]:
    return events.room_settings(
        name=room.name,
        private=room.private,
        read_only=room.read_only,
        archived=room.archived,
        slow_mode_seconds=room.slow_mode_seconds,
        topic=room.topic,
    )


def _message_item(message: MessageRecord) -> Item:
    item: Item = {
        "messageId": _s(message.message_id),
        "roomId": _s(message.room_id),
        "seq": _n(message.seq),
        "userId": _s(message.user_id),
        "username": _s(message.username),
        "message": _s(message.text),
        "timestamp": _s(_time(message.timestamp)),
        "connectionId": _s(message.connection_id),
        "ttl": _n(message.ttl),
    }
    if message.client_message_id is not None:
        item["clientMessageId"] = _s(message.client_message_id)
    if message.removed is not None:
        item["removed"] = _s(message.removed)
    if message.reply_to is not None:
        item[schema.REPLY_TO_ID] = _s(message.reply_to.message_id)
        item["replySeq"] = _n(message.reply_to.seq)
        item["replyUsername"] = _s(message.reply_to.username)
        item["replyExcerpt"] = _s(message.reply_to.excerpt)
        item["replyNumber"] = _n(message.reply_to.number)
    if message.mentions:
        item["mentions"] = {"L": [_s(user_id) for user_id in message.mentions]}
    if message.attachments:
        item["attachments"] = _s(json.dumps(list(message.attachments), ensure_ascii=False, separators=(",", ":")))
    return item


def _connection(item: Item) -> ConnectionRecord:
    return ConnectionRecord(
        connection_id=_str(item, "connectionId"),
        user_id=_str(item, "userId"),
        username=_str(item, "username"),
        connected_at=_parse_time(_str(item, "connectedAt")),
        ttl=_int(item, "ttl"),
        # Rows written by the origin design have no instance.
        instance_id=_opt_str(item, "instanceId") or "",
    )


def _backoff(attempt: int) -> None:
    """Full jitter, doubled per attempt, capped."""
    time.sleep(random.uniform(0, min(APPEND_BACKOFF_CAP, APPEND_BACKOFF_BASE * 2**attempt)))  # noqa: S311


def _until_processed(
    send: Callable[..., dict[str, Any]], request: dict[str, Any], leftover: str
) -> Iterator[dict[str, Any]]:
    """Each response of a BatchGetItem or BatchWriteItem (`send`, given the RequestItems) and
    of its rounds for what it left unprocessed (`leftover`: throttled keys or writes), backing
    off between rounds; RuntimeError after BATCH_ATTEMPTS. Callers pass a lambda that calls
    the client, so that deploy/tests still finds each call the store makes (its IAM actions)."""
    for attempt in range(BATCH_ATTEMPTS):
        response = send(request)
        yield response
        request = response.get(leftover) or {}
        if not request:
            return
        _backoff(attempt)
    raise RuntimeError(f"{leftover} left after {BATCH_ATTEMPTS} attempts")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _cancellation_codes(exc: ClientError, *, items: int) -> list[str]:
    """The cancellation reason of each item of a cancelled transaction ("None": that item was fine)."""
    reasons = exc.response.get("CancellationReasons") or []
    codes = [str(reason.get("Code") or "None") for reason in reasons]
    return (codes + ["None"] * items)[:items]


# --- the store -------------------------------------------------------------------------------


class DynamoDBStore:
    thread_sensitive = False

    def __init__(
        self,
        *,
        client: DynamoDBClient,
        tables: schema.TableNames,
        page_size: int = PAGE_SIZE,
        recent_window: int = RECENT_WINDOW,
        max_append_attempts: int = MAX_APPEND_ATTEMPTS,
    ) -> None:
        self.client = client
        self.tables = tables
        self.page_size = page_size
        self.recent_window = recent_window
        self.max_append_attempts = max_append_attempts

    @classmethod
    def from_settings(cls) -> DynamoDBStore:
        client = make_client(
            region=settings.AWS_REGION,
            max_attempts=settings.DYNAMODB_MAX_ATTEMPTS,
            connect_timeout=settings.DYNAMODB_CONNECT_TIMEOUT,
            read_timeout=settings.DYNAMODB_READ_TIMEOUT,
        )
        return cls(client=client, tables=table_names_from_settings())

    # Paging -----------------------------------------------------------------------------------

    def _query(self, *, want: int | None = None, **request: Any) -> Iterator[Item]:
        """Yield items of a Query, page by page, until `want` items came through the filter.

        The first page asks for `want` items; as filtered-out (expired) items eat into pages,
        later pages double in size up to `page_size`.
        """
        limit = min(want or self.page_size, self.page_size)
        yielded = 0
        while True:
            page = self.client.query(Limit=limit, **request)
            for item in page.get("Items", []):
                yield item
                yielded += 1
                if want is not None and yielded >= want:
                    return
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            limit = min(limit * 2, self.page_size)

    def _query_key(
        self, *, table: str, index: str, attribute: str, value: str, live_at: datetime | None = None
    ) -> Iterator[Item]:
        """Every item of a table's index whose partition key `attribute` is `value` (one Query,
        page after page); with `live_at`, only items whose ttl is still ahead of it."""
        request: dict[str, Any] = {
            "TableName": table,
            "IndexName": index,
            "KeyConditionExpression": "#key = :key",
            "ExpressionAttributeNames": {"#key": attribute},
            "ExpressionAttributeValues": {":key": _s(value)},
        }
        if live_at is not None:
            request["FilterExpression"] = "#ttl > :now"
            request["ExpressionAttributeNames"]["#ttl"] = "ttl"
            request["ExpressionAttributeValues"][":now"] = _n(_epoch(live_at))
        return self._query(**request)

    def _scan(self, **request: Any) -> Iterator[Item]:
        while True:
            page = self.client.scan(Limit=self.page_size, **request)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # Rooms ------------------------------------------------------------------------------------

    def ensure_room(self, *, room_id: str, name: str, created_by: str | None, now: datetime) -> Room:
        # A public room, made unless it is there already: create_room's item and its answer.
        return self.create_room(room_id=room_id, name=name, created_by=created_by, now=now)[0]

    def get_room(self, room_id: str) -> Room | None:
        # Strongly consistent: a join compares the room's lastSeq with what the client has.
        response = self.client.get_item(TableName=self.tables.rooms, Key={"roomId": _s(room_id)}, ConsistentRead=True)
        item = response.get("Item")
        return _room(item) if item else None

    def list_rooms(self) -> list[Room]:
        items = self._scan(TableName=self.tables.rooms, ConsistentRead=True)
        return sorted((_room(item) for item in items if not _is_member_item(item)), key=lambda r: r.room_id)

    def create_room(
        self,
        *,
        room_id: str,
        name: str,
        created_by: str | None,
        now: datetime,
        private: bool = False,
        direct: bool = False,
        topic: str = "",
    ) -> tuple[Room, bool]:
        item: Item = {"roomId": _s(room_id), "name": _s(name), "createdAt": _s(_time(now)), "lastSeq": _n(0)}
        if created_by is not None:
            item["createdBy"] = _s(created_by)
        if private or direct:
            item["private"] = {"BOOL": True}
        if direct:
            item["direct"] = {"BOOL": True}
        else:
            item[schema.PUBLIC_LISTING] = _s(schema.LISTED_PRIVATE if private else schema.LISTED_PUBLIC)
        if topic:
            item["topic"] = _s(topic)
        try:
            self.client.put_item(
                TableName=self.tables.rooms,
                Item=item,
                ConditionExpression="attribute_not_exists(#room)",
                ExpressionAttributeNames={"#room": "roomId"},
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            existing = self.get_room(room_id)
            if existing is None:  # rooms are never deleted; a table wiped under us is an outage
                raise
            return existing, False
        return _room(item), True

    def public_rooms(self) -> list[Room]:
        return [room for room in self._listed(schema.LISTED_PUBLIC) if not (room.private or room.direct)]

    def private_rooms(self) -> list[Room]:
        return [room for room in self._listed(schema.LISTED_PRIVATE) if room.private and not room.direct]

    def _listed(self, listing: str) -> list[Room]:
        # PublicRoomsIndex (sparse, DMs never in it): one key per listing, by room id.
        # Eventually consistent like every index: a room made a moment ago, or just made
        # private or public, may be missing (or still there) for that moment; the filter
        # in the callers drops a room whose item moved on but whose index entry lags.
        items = self._query_key(
            table=self.tables.rooms, index=schema.PUBLIC_ROOMS_INDEX, attribute=schema.PUBLIC_LISTING, value=listing
        )
        return [_room(item) for item in items]

    def room_creation_times(self, *, created_by: str, since: datetime) -> list[datetime]:
        # RoomCreatorIndex (sparse, keys only): the user's rooms after `since`, one query.
        items = self._query(
            TableName=self.tables.rooms,
            IndexName=schema.ROOM_CREATOR_INDEX,
            KeyConditionExpression="#by = :by AND #at > :since",
            ExpressionAttributeNames={"#by": schema.CREATED_BY, "#at": schema.CREATED_AT},
            ExpressionAttributeValues={":by": _s(created_by), ":since": _s(_time(since))},
        )
        return [_parse_time(_str(item, schema.CREATED_AT)) for item in items]

    def get_rooms(self, room_ids: list[str]) -> list[Room]:
        keys = [{"roomId": _s(room_id)} for room_id in sorted(set(room_ids))]
        return [_room(item) for item in self._batch_get(self.tables.rooms, keys)]

    def _batch_get(self, table: str, keys: list[Item]) -> list[Item]:
        """The items of these keys that exist (BatchGetItem, consistent, in batches of 100)."""
        found: list[Item] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            request: dict[str, Any] = {table: {"Keys": keys[start : start + BATCH_GET_MAX], "ConsistentRead": True}}
            for response in _until_processed(
                lambda r: self.client.batch_get_item(RequestItems=r), request, "UnprocessedKeys"
            ):
                found += response.get("Responses", {}).get(table, [])
        return found

    def public_room_ids(self) -> list[str]:
        # No index tells public rooms apart: the same scan as list_rooms.
        return [room.room_id for room in self.list_rooms() if not room.private]

    def update_room(
        self,
        *,
        room_id: str,
        name: str | None = None,
        archived: bool | None = None,
        private: bool | None = None,
        read_only: bool | None = None,
        slow_mode_seconds: int | None = None,
        topic: str | None = None,
        now: datetime,
        ttl_seconds: int,
    ) -> RoomUpdate:
        wanted: dict[str, Any] = {
            "name": name,
            "archived": archived,
            "private": private,
            "read_only": read_only,
            "slow_mode_seconds": slow_mode_seconds,
            "topic": topic,
        }
        attributes = {
            "name": "name",
            "archived": "archived",
            "private": "private",
            "read_only": "readOnly",
            "topic": "topic",
        }
        for attempt in range(self.max_append_attempts):
            room = self.get_room(room_id)
            if room is None:
                raise RoomNotFound(room_id)
            changes: dict[str, Any] = {k: v for k, v in wanted.items() if v is not None and getattr(room, k) != v}
            if not changes:
                return RoomUpdate(room, None)
            after = replace(room, last_seq=room.last_seq + 1, **changes)
            values: dict[str, dict[str, Any]] = {}
            for field, value in changes.items():
                if field == "slow_mode_seconds":
                    values["slowModeSeconds"] = _n(value)
                else:
                    values[attributes[field]] = {"BOOL": value} if isinstance(value, bool) else _s(value)
            # Made private or public: the room moves to the other key of PublicRoomsIndex (a
            # DM is never listed, whatever it says).
            unlisted = "private" in changes and after.direct
            if "private" in changes and not unlisted:
                values[schema.PUBLIC_LISTING] = _s(schema.LISTED_PRIVATE if after.private else schema.LISTED_PUBLIC)
            event = _new_event_record(
                NewEvent(
                    room_id=room_id,
                    type=events.ROOM_UPDATED,
                    data={"room": _settings(after)},
                    timestamp=now,
                    ttl_seconds=ttl_seconds,
                ),
                after.last_seq,
            )
            # The settings move with lastSeq, from the lastSeq read: a concurrent change or
            # append makes this round fail, and the next one starts from what it wrote.
            take = self._take_seq(room, extra=values, remove=[schema.PUBLIC_LISTING] if unlisted else [])
            if self._try_transaction([take, self._put_event(event)]):
                return RoomUpdate(after, event)
            _backoff(attempt)
        raise AppendContention(f"room {room_id!r}: no free seq after {self.max_append_attempts} attempts")

    # Seqs for room events ----------------------------------------------------------------------

    def _take_seq(
        self, room: Room, *, extra: dict[str, dict[str, Any]] | None = None, remove: list[str] | None = None
    ) -> dict[str, Any]:
        """The transaction item that moves the room's lastSeq on by one from the value read
        (and sets `extra` attributes, and removes `remove` ones, with it)."""
        values = dict(extra or {})
        names = {f"#a{i}": attribute for i, attribute in enumerate(values)}
        names |= {f"#r{i}": attribute for i, attribute in enumerate(remove or [])}
        update = ["#last = :seq"] + [f"#a{i} = :v{i}" for i in range(len(values))]
        gone = f" REMOVE {', '.join(f'#r{i}' for i in range(len(remove)))}" if remove else ""
        return {
            "Update": {
                "TableName": self.tables.rooms,
                "Key": {"roomId": _s(room.room_id)},
                "UpdateExpression": "SET " + ", ".join(update) + gone,
                "ConditionExpression": "#last = :previous",
                "ExpressionAttributeNames": {"#last": "lastSeq", **names},
                "ExpressionAttributeValues": {
                    ":seq": _n(room.last_seq + 1),
                    ":previous": _n(room.last_seq),
                    **{f":v{i}": value for i, value in enumerate(values.values())},
                },
            }
        }

    def _put_event(self, event: EventRecord) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.tables.messages,
                "Item": _event_item(event),
                "ConditionExpression": "attribute_not_exists(#id)",
                "ExpressionAttributeNames": {"#id": "messageId"},
            }
        }

    def _try_transaction(self, items: list[dict[str, Any]]) -> bool:
        """Write all or nothing; False when a condition failed or a conflict cancelled it
        (the caller reads again and retries), so a room's seq is never taken twice."""
        try:
            self.client.transact_write_items(ClientRequestToken=str(uuid.uuid4()), TransactItems=items)
        except ClientError as exc:
            if _error_code(exc) != "TransactionCanceledException":
                raise
            codes = set(_cancellation_codes(exc, items=len(items)))
            if "ConditionalCheckFailed" in codes or codes & _RETRYABLE_REASONS:
                return False
            raise
        return True

    def append_event(self, new: NewEvent) -> EventRecord:
        for attempt in range(self.max_append_attempts):
            room = self.get_room(new.room_id)
            if room is None:
                raise RoomNotFound(new.room_id)
            event = _new_event_record(new, room.last_seq + 1)
            if self._try_transaction([self._take_seq(room), self._put_event(event)]):
                return event
            _backoff(attempt)
        raise AppendContention(f"room {new.room_id!r}: no free seq after {self.max_append_attempts} attempts")

    def events_after(self, *, room_id: str, after_seq: int, limit: int, now: datetime) -> list[LogEntry]:
        return self._after(room_id=room_id, after_seq=after_seq, limit=limit, now=now, messages_only=False)

    # Members: one item per (room, user) in Rooms, found by two indexes (docs/data-model.md) -----

    def add_member(self, *, room_id: str, user_id: str, role: str = "member", now: datetime | None = None) -> bool:
        item: Item = {
            "roomId": _s(member_key(room_id=room_id, user_id=user_id)),
            schema.MEMBER_ROOM_ID: _s(room_id),
            schema.MEMBER_USER_ID: _s(user_id),
            "role": _s(role),
        }
        if now is not None:
            item["joinedAt"] = _s(_time(now))
        items = [
            {
                "ConditionCheck": {
                    "TableName": self.tables.rooms,
                    "Key": {"roomId": _s(room_id)},
                    "ConditionExpression": "attribute_exists(#room)",
                    "ExpressionAttributeNames": {"#room": "roomId"},
                }
            },
            {
                "Put": {
                    "TableName": self.tables.rooms,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(#room)",
                    "ExpressionAttributeNames": {"#room": "roomId"},
                }
            },
        ]
        for attempt in range(self.max_append_attempts):
            try:
                self.client.transact_write_items(ClientRequestToken=str(uuid.uuid4()), TransactItems=items)
            except ClientError as exc:
                if _error_code(exc) != "TransactionCanceledException":
                    raise
                room_reason, member_reason = _cancellation_codes(exc, items=2)
                if room_reason == "ConditionalCheckFailed":
                    raise RoomNotFound(room_id) from None
                if member_reason == "ConditionalCheckFailed":
                    return False  # a member already
                if {room_reason, member_reason} & _RETRYABLE_REASONS:
                    _backoff(attempt)
                    continue
                raise
            membership_changed(room_id=room_id, user_id=user_id)
            return True
        raise AppendContention(f"room {room_id!r}: member {user_id!r} not added after {self.max_append_attempts} tries")

    def remove_member(self, *, room_id: str, user_id: str) -> bool:
        response = self.client.delete_item(
            TableName=self.tables.rooms,
            Key={"roomId": _s(member_key(room_id=room_id, user_id=user_id))},
            ReturnValues="ALL_OLD",
        )
        if not response.get("Attributes"):
            return False
        membership_changed(room_id=room_id, user_id=user_id)
        return True

    def change_membership(
        self, *, user_id: str, event: NewEvent, role: str = "member", now: datetime | None = None
    ) -> EventRecord | None:
        """One TransactWriteItems: the room's next seq, the event, and the membership item's
        put, delete or update, each conditional, so a failure writes neither (the ORM
        backend's single transaction). A concurrent seq taker makes a round fail and the
        next one starts from what it wrote; a failed membership condition means nothing
        to change."""
        room_id = event.room_id
        key = {"roomId": _s(member_key(room_id=room_id, user_id=user_id))}
        names = {"#room": "roomId"}
        change: dict[str, Any]
        if event.type == events.MEMBER_ADDED:
            item: Item = {
                **key,
                schema.MEMBER_ROOM_ID: _s(room_id),
                schema.MEMBER_USER_ID: _s(user_id),
                "role": _s(role),
            }
            if now is not None:
                item["joinedAt"] = _s(_time(now))
            condition = "attribute_not_exists(#room)"
            change = {"Put": {"Item": item, "ConditionExpression": condition, "ExpressionAttributeNames": names}}
        elif event.type == events.MEMBER_REMOVED:
            condition = "attribute_exists(#room)"
            change = {"Delete": {"Key": key, "ConditionExpression": condition, "ExpressionAttributeNames": names}}
        elif event.type == events.MEMBER_UPDATED:
            change = {
                "Update": {
                    "Key": key,
                    "UpdateExpression": "SET #role = :role",
                    "ConditionExpression": "attribute_exists(#room) AND #role <> :role",
                    "ExpressionAttributeNames": {**names, "#role": "role"},
                    "ExpressionAttributeValues": {":role": _s(role)},
                }
            }
        else:
            raise ValueError(f"{event.type!r} is no membership change")
        kind = next(iter(change))
        change[kind]["TableName"] = self.tables.rooms
        for attempt in range(self.max_append_attempts):
            room = self.get_room(room_id)
            if room is None:
                raise RoomNotFound(room_id)
            record = _new_event_record(event, room.last_seq + 1)
            items = [self._take_seq(room), self._put_event(record), change]
            try:
                self.client.transact_write_items(ClientRequestToken=str(uuid.uuid4()), TransactItems=items)
            except ClientError as exc:
                if _error_code(exc) != "TransactionCanceledException":
                    raise
                seq_reason, event_reason, member_reason = _cancellation_codes(exc, items=3)
                if member_reason == "ConditionalCheckFailed":
                    return None  # nothing to change: nothing was written
                if {seq_reason, event_reason, member_reason} & (_RETRYABLE_REASONS | {"ConditionalCheckFailed"}):
                    _backoff(attempt)  # the seq moved on (or a conflict): read it again
                    continue
                raise
            if event.type != events.MEMBER_UPDATED:
                membership_changed(room_id=room_id, user_id=user_id)
            return record
        raise AppendContention(f"room {room_id!r}: member {user_id!r} unchanged after {self.max_append_attempts} tries")

    def get_membership(self, *, room_id: str, user_id: str) -> Membership | None:
        response = self.client.get_item(
            TableName=self.tables.rooms,
            Key={"roomId": _s(member_key(room_id=room_id, user_id=user_id))},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _membership(item) if item else None

    def set_membership(
        self, *, room_id: str, user_id: str, role: str | None = None, muted: bool | None = None
    ) -> Membership | None:
        values: dict[str, Any] = {}
        if role is not None:
            values["role"] = _s(role)
        if muted is not None:
            values["muted"] = {"BOOL": muted}
        if not values:
            return self.get_membership(room_id=room_id, user_id=user_id)
        names = {f"#a{i}": name for i, name in enumerate(values)}
        try:
            response = self.client.update_item(
                TableName=self.tables.rooms,
                Key={"roomId": _s(member_key(room_id=room_id, user_id=user_id))},
                UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
                ConditionExpression="attribute_exists(#room)",
                ExpressionAttributeNames={"#room": "roomId", **names},
                ExpressionAttributeValues={f":v{i}": value for i, value in enumerate(values.values())},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return _membership(response["Attributes"])

    def members_page(self, *, room_id: str, after_user_id: str | None = None, limit: int = 100) -> list[Membership]:
        condition = "#room = :room"
        values: dict[str, Any] = {":room": _s(room_id)}
        if after_user_id is not None:
            condition += " AND #user > :after"
            values[":after"] = _s(after_user_id)
        items = self._query(
            want=limit,
            TableName=self.tables.rooms,
            IndexName=schema.ROOM_MEMBERS_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#room": schema.MEMBER_ROOM_ID, "#user": schema.MEMBER_USER_ID}
            if after_user_id is not None
            else {"#room": schema.MEMBER_ROOM_ID},
            ExpressionAttributeValues=values,
        )
        return [_membership(item) for item in items]

    def rooms_of_user(self, user_id: str) -> list[Membership]:
        items = self._query_key(
            table=self.tables.rooms, index=schema.USER_ROOMS_INDEX, attribute=schema.MEMBER_USER_ID, value=user_id
        )
        return [_membership(item) for item in items]

    def room_members(self, room_id: str) -> list[str]:
        members: list[str] = []
        while True:
            page = self.members_page(room_id=room_id, after_user_id=members[-1] if members else None, limit=1000)
            members += [m.user_id for m in page]
            if len(page) < 1000:
                return sorted(members)

    def is_member(self, *, room_id: str, user_id: str) -> bool:
        # By key, strongly consistent: access to a private room never waits for an index.
        return self.get_membership(room_id=room_id, user_id=user_id) is not None

    def member_rooms(self, *, user_id: str) -> list[str]:
        # The user's membership items through UserRoomsIndex: one query, never a scan. The
        # index is eventually consistent (a room joined a moment ago may be missing for that
        # moment); search re-checks each hit against the store anyway.
        return sorted({m.room_id for m in self.rooms_of_user(user_id)})

    # Messages ---------------------------------------------------------------------------------

    def _get_message(self, message_id: str) -> MessageRecord | None:
        response = self.client.get_item(
            TableName=self.tables.messages, Key={"messageId": _s(message_id)}, ConsistentRead=True
        )
        item = response.get("Item")
        return _message(item) if item and not _is_event(item) else None

    def _original(self, key: str, *, now: int) -> MessageRecord | None:
        """The message a stored (room, user, clientMessageId) became, or None if there is none.

        As in the local backend, the original counts until it is deleted, expired or not.
        """
        response = self.client.get_item(TableName=self.tables.messages, Key={"messageId": _s(key)}, ConsistentRead=True)
        item = response.get("Item")
        if not item:
            return None
        original = self._get_message(_str(item, "originalMessageId"))
        if original is not None:
            return original
        if _int(item, "ttl") <= now:
            return None  # TTL took the message first; the key is expired too and may be replaced
        raise RuntimeError(f"client-message item {key} names {_str(item, 'originalMessageId')}, which is missing")

    def append_message(self, new: NewMessage) -> AppendResult:
        sent = _epoch(new.timestamp)
        key = None
        if new.client_message_id is not None:
            # No read of the key first: a retry of a stored clientMessageId is rare, and the
            # transaction's condition on the key finds it (the original is read only then).
            # Reading it on every send cost one strongly consistent read per message.
            key = client_message_key(room_id=new.room_id, user_id=new.user_id, client_message_id=new.client_message_id)
        # The sender's checks read the room a moment ago: the first attempt takes its seq from
        # that read (new.last_seq), and only an attempt that lost the race reads the room again.
        last_seq = new.last_seq
        for attempt in range(self.max_append_attempts):
            if last_seq is None:
                room = self.get_room(new.room_id)
                if room is None:
                    raise RoomNotFound(new.room_id)
                last_seq = room.last_seq
            seq = last_seq + 1
            reply_to = new.reply_to
            replies_before = None
            if reply_to is not None:
                # Read after lastSeq: a reply stored in between moves lastSeq and fails this
                # attempt, so a successful one is exactly the original's next reply.
                replies_before = self._reply_count(reply_to.message_id)
                reply_to = replace(reply_to, number=(replies_before or 0) + 1)
            record = MessageRecord(
                message_id=message_id_for(room_id=new.room_id, seq=seq),
                room_id=new.room_id,
                seq=seq,
                user_id=new.user_id,
                username=new.username,
                text=new.text,
                timestamp=new.timestamp,
                connection_id=new.connection_id,
                client_message_id=new.client_message_id,
                ttl=sent + new.ttl_seconds,
                reply_to=reply_to,
                mentions=new.mentions,
                attachments=new.attachments,
            )
            try:
                self._write_message(
                    record, previous_seq=last_seq, client_message_key=key, now=sent, replies_before=replies_before
                )
            except ClientError as exc:
                if _error_code(exc) != "TransactionCanceledException":
                    raise
                # One reason per item of the transaction, in order: room, message, client key
                # (if any), the original's reply count (if a reply).
                codes = _cancellation_codes(exc, items=4)
                room_reason, message_reason = codes[0], codes[1]
                key_reason = codes[2] if key is not None else "None"
                count_reason = codes[3 if key is not None else 2] if reply_to is not None else "None"
                if key is not None and key_reason == "ConditionalCheckFailed":
                    # This clientMessageId was stored by a concurrent attempt (or by our own
                    # attempt whose reply was lost). Nothing of this attempt was written.
                    original = self._original(key, now=sent)
                    if original is None:
                        raise
                    return AppendResult(original, created=False)
                if (
                    "ConditionalCheckFailed" in (room_reason, message_reason)
                    or {room_reason, message_reason, key_reason, count_reason} & _RETRYABLE_REASONS
                ):
                    # Another sender took this seq first (or the room is gone: the next
                    # get_room says so). Back off with full jitter and read lastSeq again;
                    # a stale proposal from the caller is retried at once.
                    if attempt or new.last_seq is None:
                        _backoff(attempt)
                    last_seq = None
                    continue
                raise
            return AppendResult(record, created=True)
        raise AppendContention(f"room {new.room_id!r}: no free seq after {self.max_append_attempts} attempts")

    def _reply_count(self, message_id: str) -> int | None:
        """The original's replyCount now (strongly consistent); None: no such message."""
        response = self.client.get_item(
            TableName=self.tables.messages,
            Key={"messageId": _s(message_id)},
            ConsistentRead=True,
            ProjectionExpression="#count, #id",
            ExpressionAttributeNames={"#count": "replyCount", "#id": "messageId"},
        )
        item = response.get("Item")
        return None if not item else _opt_int(item, "replyCount")

    def _write_message(
        self,
        record: MessageRecord,
        *,
        previous_seq: int,
        client_message_key: str | None,
        now: int,
        replies_before: int | None = None,
    ) -> None:
        """Take seq `record.seq`, store the message and its clientMessageId: all or nothing.

        The room's lastSeq moves only from the value we read, so two senders can never take the
        same seq. The clientMessageId's key must be free (or expired with its message), so a
        clientMessageId is stored once. The ClientRequestToken makes botocore's own retries of
        this very call idempotent.
        """
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.tables.rooms,
                    "Key": {"roomId": _s(record.room_id)},
                    # The room's last activity moves with it: the same small item, no extra write.
                    "UpdateExpression": "SET #last = :seq, #activity = :activity",
                    "ConditionExpression": "#last = :previous",
                    "ExpressionAttributeNames": {"#last": "lastSeq", "#activity": "lastActivity"},
                    "ExpressionAttributeValues": {
                        ":seq": _n(record.seq),
                        ":previous": _n(previous_seq),
                        ":activity": _s(_time(record.timestamp)),
                    },
                }
            },
            {
                "Put": {
                    "TableName": self.tables.messages,
                    "Item": _message_item(record),
                    "ConditionExpression": "attribute_not_exists(#id)",
                    "ExpressionAttributeNames": {"#id": "messageId"},
                }
            },
        ]
        if client_message_key is not None:
            # No roomId on this item: it stays out of both room indexes.
            items.append(
                {
                    "Put": {
                        "TableName": self.tables.messages,
                        "Item": {
                            "messageId": _s(client_message_key),
                            "originalMessageId": _s(record.message_id),
                            "ttl": _n(record.ttl),
                        },
                        "ConditionExpression": "attribute_not_exists(#id) OR #ttl <= :now",
                        "ExpressionAttributeNames": {"#id": "messageId", "#ttl": "ttl"},
                        "ExpressionAttributeValues": {":now": _n(now)},
                    }
                }
            )
        if record.reply_to is not None:
            # The original's thread grows with the reply (its replyCount), in the same
            # transaction, from the count this reply's number was taken from: never twice.
            before = replies_before or 0
            unchanged = "#count = :before" if before else "(attribute_not_exists(#count) OR #count = :before)"
            items.append(
                {
                    "Update": {
                        "TableName": self.tables.messages,
                        "Key": {"messageId": _s(record.reply_to.message_id)},
                        "UpdateExpression": "SET #count = :number",
                        "ConditionExpression": f"#room = :room AND {unchanged}",
                        "ExpressionAttributeNames": {"#count": "replyCount", "#room": "roomId"},
                        "ExpressionAttributeValues": {
                            ":number": _n(record.reply_to.number),
                            ":before": _n(before),
                            ":room": _s(record.room_id),
                        },
                    }
                }
            )
        self.client.transact_write_items(ClientRequestToken=str(uuid.uuid4()), TransactItems=items)

    def _by_seq(self, room_id: str, seqs: list[int], now: datetime, *, messages_only: bool) -> list[LogEntry]:
        """The live entries among `seqs`, read by key (strongly consistent), in the order of `seqs`."""
        found: dict[int, LogEntry] = {}
        keys = [{"messageId": _s(message_id_for(room_id=room_id, seq=seq))} for seq in seqs]
        for item in self._batch_get(self.tables.messages, keys):
            if messages_only and _is_event(item):
                continue
            entry = _entry(item)
            found[entry.seq] = entry
        cutoff = _epoch(now)
        return [found[seq] for seq in seqs if seq in found and found[seq].ttl > cutoff]

    def _by_index(
        self, *, room_id: str, low: int, high: int, forward: bool, limit: int, now: datetime, messages_only: bool
    ) -> list[LogEntry]:
        """Live entries with low <= seq <= high from RoomSeqIndex, in seq order (descending unless `forward`)."""
        if limit <= 0 or low > high:
            return []
        names = {"#room": "roomId", "#seq": "seq", "#ttl": "ttl"}
        live = "#ttl > :now"
        if messages_only:
            names["#event"] = schema.EVENT_TYPE
            live += " AND attribute_not_exists(#event)"
        items = self._query(
            want=limit,
            TableName=self.tables.messages,
            IndexName=schema.ROOM_SEQ_INDEX,
            KeyConditionExpression="#room = :room AND #seq BETWEEN :low AND :high",
            FilterExpression=live,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                ":room": _s(room_id),
                ":low": _n(low),
                ":high": _n(high),
                ":now": _n(_epoch(now)),
            },
            ScanIndexForward=forward,
        )
        return [_entry(item) for item in items]

    def _after(self, *, room_id: str, after_seq: int, limit: int, now: datetime, messages_only: bool) -> list[LogEntry]:
        room = self.get_room(room_id) if limit > 0 else None
        if room is None:
            return []
        settled = max(0, room.last_seq - self.recent_window)  # seqs up to here are in the index
        found = self._by_index(
            room_id=room_id,
            low=after_seq + 1,
            high=settled,
            forward=True,
            limit=limit,
            now=now,
            messages_only=messages_only,
        )
        # Then the recent seqs by key, oldest first, as many as still wanted; expired ones (and
        # events, for messages only) are skipped, so ask for more until there are enough or none are left.
        next_seq = max(after_seq, settled) + 1
        while len(found) < limit and next_seq <= room.last_seq:
            count = min(limit - len(found), room.last_seq - next_seq + 1, BATCH_GET_MAX)
            found += self._by_seq(room_id, list(range(next_seq, next_seq + count)), now, messages_only=messages_only)
            next_seq += count
        return found

    def messages_after(self, *, room_id: str, after_seq: int, limit: int, now: datetime) -> list[MessageRecord]:
        entries = self._after(room_id=room_id, after_seq=after_seq, limit=limit, now=now, messages_only=True)
        return [entry for entry in entries if isinstance(entry, MessageRecord)]

    def messages_after_many(self, windows: list[tuple[str, int, int]], *, now: datetime) -> list[list[MessageRecord]]:
        return [self.messages_after(room_id=r, after_seq=after, limit=limit, now=now) for r, after, limit in windows]

    def messages_before(
        self, *, room_id: str, before_seq: int | None, limit: int, now: datetime
    ) -> list[MessageRecord]:
        room = self.get_room(room_id) if limit > 0 else None
        if room is None:
            return []
        top = room.last_seq if before_seq is None else min(before_seq - 1, room.last_seq)
        settled = max(0, room.last_seq - self.recent_window)
        # Newest first: the recent seqs by key, then older ones from the index.
        found: list[LogEntry] = []
        next_seq = top
        while len(found) < limit and next_seq > settled:
            count = min(limit - len(found), next_seq - settled, BATCH_GET_MAX)
            found += self._by_seq(room_id, list(range(next_seq, next_seq - count, -1)), now, messages_only=True)
            next_seq -= count
        found += self._by_index(
            room_id=room_id,
            low=1,
            high=min(top, settled),
            forward=False,
            limit=limit - len(found),
            now=now,
            messages_only=True,
        )
        found.reverse()
        return [entry for entry in found if isinstance(entry, MessageRecord)]

    # Moderation of messages -------------------------------------------------------------------

    def get_message(self, *, room_id: str, message_id: str, now: datetime) -> MessageRecord | None:
        if message_id.startswith((CLIENT_MESSAGE_KEY_PREFIX, READ_KEY_PREFIX)):
            return None
        message = self._get_message(message_id)
        if message is None or message.room_id != room_id or message.ttl <= _epoch(now):
            return None
        return message

    def get_messages(self, *, keys: list[tuple[str, str]], now: datetime) -> list[MessageRecord]:
        wanted = {(room_id, message_id) for room_id, message_id in keys}
        ids = sorted({m for _, m in wanted if not m.startswith((CLIENT_MESSAGE_KEY_PREFIX, READ_KEY_PREFIX))})
        items = self._batch_get(self.tables.messages, [{"messageId": _s(message_id)} for message_id in ids])
        found = [_message(item) for item in items if not _is_event(item)]
        return [m for m in found if (m.room_id, m.message_id) in wanted and m.ttl > _epoch(now)]

    def _tombstone(self, message_id: str, *, room_id: str, removal: Removal) -> MessageRecord | None:
        """Mark one message removed; None when it is not a message of this room. Deleting
        erases the text; hiding leaves a deleted message as it is."""
        names = {"#room": "roomId", "#removed": "removed"}
        values: dict[str, dict[str, Any]] = {":room": _s(room_id), ":removal": _s(removal)}
        condition = "#room = :room"
        update = "SET #removed = :removal"
        if removal == DELETED:
            names["#message"] = "message"
            names["#edits"] = "edits"
            values[":empty"] = _s("")
            update += ", #message = :empty REMOVE #edits"
        else:
            values[":deleted"] = _s(DELETED)
            condition += " AND (attribute_not_exists(#removed) OR #removed <> :deleted)"
        try:
            response = self.client.update_item(
                TableName=self.tables.messages,
                Key={"messageId": _s(message_id)},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            current = self._get_message(message_id)
            return current if current is not None and current.room_id == room_id else None
        return _message(response["Attributes"])

    def remove_message(
        self, *, room_id: str, message_id: str, removal: Removal, removed_by: str, now: datetime, ttl_seconds: int
    ) -> RemoveResult | None:
        if message_id.startswith((CLIENT_MESSAGE_KEY_PREFIX, READ_KEY_PREFIX)):
            return None
        for attempt in range(self.max_append_attempts):
            message = self._get_message(message_id)
            if message is None or message.room_id != room_id:
                return None
            if message.removed is not None:
                # A tombstone already: clients see no change, so no event (deleting a hidden
                # message still erases its text).
                after = self._tombstone(message_id, room_id=room_id, removal=removal)
                return RemoveResult(after or message, None)
            room = self.get_room(room_id)
            if room is None:
                return None
            tombstone = replace(
                message, removed=removal, text="" if removal == DELETED else message.text, removed_by=removed_by
            )
            data = events.message_removed_data(message_id=message_id, message_seq=message.seq, removed_by=removed_by)
            new = NewEvent(
                room_id=room_id, type=events.MESSAGE_REMOVED, data=data, timestamp=now, ttl_seconds=ttl_seconds
            )
            event = _new_event_record(new, room.last_seq + 1)
            names = {"#room": "roomId", "#removed": "removed", "#message": "message", "#by": "removedBy"}
            values = {
                ":room": _s(room_id),
                ":removal": _s(removal),
                ":text": _s(tombstone.text),
                ":by": _s(removed_by),
            }
            update = "SET #removed = :removal, #message = :text, #by = :by"
            if removal == DELETED:
                tombstone = replace(tombstone, edits=())
                names["#edits"] = "edits"
                update += " REMOVE #edits"
            mark = {
                "Update": {
                    "TableName": self.tables.messages,
                    "Key": {"messageId": _s(message_id)},
                    "UpdateExpression": update,
                    # Still live: a concurrent removal makes this round fail, and the next
                    # one finds the tombstone (one event per removal).
                    "ConditionExpression": "#room = :room AND attribute_not_exists(#removed)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
            if self._try_transaction([self._take_seq(room), mark, self._put_event(event)]):
                self._scrub(tombstone, last_seq=room.last_seq + 1, now=now)
                return RemoveResult(tombstone, event)
            _backoff(attempt)
        raise AppendContention(f"room {room_id!r}: no free seq after {self.max_append_attempts} attempts")

    def _later_items(self, *, room_id: str, after_seq: int, up_to_seq: int, now: datetime) -> list[Item]:
        """The room's items with after_seq < seq <= up_to_seq: the index's, then the newest by key."""
        settled = max(after_seq, up_to_seq - self.recent_window)
        items = (
            list(
                self._query(
                    TableName=self.tables.messages,
                    IndexName=schema.ROOM_SEQ_INDEX,
                    KeyConditionExpression="#room = :room AND #seq BETWEEN :low AND :high",
                    ExpressionAttributeNames={"#room": "roomId", "#seq": "seq"},
                    ExpressionAttributeValues={":room": _s(room_id), ":low": _n(after_seq + 1), ":high": _n(settled)},
                )
            )
            if settled > after_seq
            else []
        )
        seqs = list(range(settled + 1, up_to_seq + 1))
        for start in range(0, len(seqs), BATCH_GET_MAX):
            keys = [
                {"messageId": _s(message_id_for(room_id=room_id, seq=q))} for q in seqs[start : start + BATCH_GET_MAX]
            ]
            response = self.client.batch_get_item(
                RequestItems={self.tables.messages: {"Keys": keys, "ConsistentRead": True}}
            )
            items += response.get("Responses", {}).get(self.tables.messages, [])
        cutoff = _epoch(now)
        return [item for item in items if _int(item, "ttl") > cutoff]

    def _scrub(self, message: MessageRecord, *, last_seq: int, now: datetime) -> None:
        """A removed message's text leaves the log: its edit events and its replies' excerpts.

        After the removal's transaction (it cannot hold a query): a reader in between sees the
        tombstone's messageRemoved later in the log, so a client never shows the text.
        """
        if message.reply_count == 0 and message.edited_at is None:
            return
        for item in self._later_items(room_id=message.room_id, after_seq=message.seq, up_to_seq=last_seq, now=now):
            key = {"messageId": item["messageId"]}
            if _opt_str(item, schema.REPLY_TO_ID) == message.message_id:
                self.client.update_item(
                    TableName=self.tables.messages,
                    Key=key,
                    UpdateExpression="SET #excerpt = :empty, #gone = :true",
                    ExpressionAttributeNames={"#excerpt": "replyExcerpt", "#gone": "replyRemoved"},
                    ExpressionAttributeValues={":empty": _s(""), ":true": {"BOOL": True}},
                )
            elif _is_event(item) and _str(item, schema.EVENT_TYPE) == events.MESSAGE_EDITED:
                data = json.loads(_str(item, "data"))
                if data.get("messageId") == message.message_id:
                    self.client.update_item(
                        TableName=self.tables.messages,
                        Key=key,
                        UpdateExpression="SET #data = :data",
                        ExpressionAttributeNames={"#data": "data"},
                        ExpressionAttributeValues={
                            ":data": _s(json.dumps({**data, "message": ""}, ensure_ascii=False))
                        },
                    )

    # Changes people make ------------------------------------------------------------------------

    def _change(
        self,
        *,
        room_id: str,
        message_id: str,
        now: datetime,
        plan: Callable[[Room, MessageRecord], tuple[MessageRecord, dict[str, Any], NewEvent] | None],
    ) -> ChangeResult | None:
        """One change to a live message with its event at the room's next seq, all or nothing.

        The room is read before the message: any change to the message takes a seq, so a
        change committed after the room read fails this round's seq condition, and one
        committed before it is in the message read; `plan` (the message after, its item's
        update, the event) always starts from the message as it is at that seq.
        """
        if message_id.startswith(CLIENT_MESSAGE_KEY_PREFIX):
            return None
        for attempt in range(self.max_append_attempts):
            room = self.get_room(room_id)
            message = self._get_message(message_id) if room is not None else None
            if room is None or message is None or message.room_id != room_id or message.removed is not None:
                return None
            if message.ttl <= _epoch(now):
                return None
            planned = plan(room, message)
            if planned is None:
                return ChangeResult(message, None)
            after, update, new = planned
            event = _new_event_record(new, room.last_seq + 1)
            names = {"#room": "roomId", "#removed": "removed", **update.pop("names", {})}
            mark = {
                "Update": {
                    "TableName": self.tables.messages,
                    "Key": {"messageId": _s(message_id)},
                    "ConditionExpression": "#room = :room AND attribute_not_exists(#removed)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {":room": _s(room_id), **update.pop("values", {})},
                    **update,
                }
            }
            if self._try_transaction([self._take_seq(room), mark, self._put_event(event)]):
                return ChangeResult(after, event)
            _backoff(attempt)
        raise AppendContention(f"room {room_id!r}: no free seq after {self.max_append_attempts} attempts")

    def edit_message(
        self,
        *,
        room_id: str,
        message_id: str,
        text: str,
        client_message_id: str | None,
        now: datetime,
        ttl_seconds: int,
    ) -> ChangeResult | None:
        def plan(room: Room, message: MessageRecord) -> tuple[MessageRecord, dict[str, Any], NewEvent] | None:
            retried = client_message_id is not None and any(
                e.client_message_id == client_message_id for e in message.edits
            )
            if retried or message.text == text:
                return None
            edits = (*message.edits, PastVersion(message.text, now, client_message_id))
            stored = [
                {"text": e.text, "editedAt": _time(e.edited_at), "clientMessageId": e.client_message_id} for e in edits
            ]
            after = replace(message, text=text, edited_at=now, edits=edits)
            update = {
                "UpdateExpression": "SET #message = :text, #editedAt = :at, #edits = :edits",
                "names": {"#message": "message", "#editedAt": "editedAt", "#edits": "edits"},
                "values": {
                    ":text": _s(text),
                    ":at": _s(_time(now)),
                    ":edits": _s(json.dumps(stored, ensure_ascii=False)),
                },
            }
            data = events.message_edited_data(
                message_id=message_id, message_seq=message.seq, text=text, edited_at=iso_timestamp(now)
            )
            new = NewEvent(
                room_id=room_id, type=events.MESSAGE_EDITED, data=data, timestamp=now, ttl_seconds=ttl_seconds
            )
            return after, update, new

        return self._change(room_id=room_id, message_id=message_id, now=now, plan=plan)

    def change_reaction(
        self,
        *,
        room_id: str,
        message_id: str,
        user_id: str,
        emoji: str,
        add: bool,
        max_distinct: int,
        now: datetime,
        ttl_seconds: int,
    ) -> ChangeResult | None:
        def plan(room: Room, message: MessageRecord) -> tuple[MessageRecord, dict[str, Any], NewEvent] | None:
            current = dict(message.reactions)
            users = current.get(emoji, ())
            if add == (user_id in users) or (add and not users and len(current) >= max_distinct):
                return None
            users = tuple(sorted((*users, user_id))) if add else tuple(u for u in users if u != user_id)
            current[emoji] = users
            reactions = tuple(sorted((e, u) for e, u in current.items() if u))
            after = replace(message, reactions=reactions)
            # An atomic set update (ADD / DELETE of one user id), not a rewrite of the reactions.
            update = {
                "UpdateExpression": f"{'ADD' if add else 'DELETE'} #rx :user",
                "names": {"#rx": REACTION_PREFIX + emoji},
                "values": {":user": {"SS": [user_id]}},
            }
            data = events.reactions_data(
                message_id=message_id,
                message_seq=message.seq,
                reactions=reactions,
                user_id=user_id,
                emoji=emoji,
                added=add,
            )
            new = NewEvent(room_id=room_id, type=events.REACTIONS, data=data, timestamp=now, ttl_seconds=ttl_seconds)
            return after, update, new

        return self._change(room_id=room_id, message_id=message_id, now=now, plan=plan)

    def find_message(self, *, message_id: str, now: datetime) -> MessageRecord | None:
        if message_id.startswith(CLIENT_MESSAGE_KEY_PREFIX):
            return None
        message = self._get_message(message_id)
        return message if message is not None and message.ttl > _epoch(now) else None

    def replies(self, *, room_id: str, message_id: str, limit: int, now: datetime) -> list[MessageRecord]:
        """One Query on ReplyIndex (replyToId, seq): the thread's replies and nothing else of
        the room, in seq order, however busy the room was since its root. The index is
        eventually consistent: a reply sent a moment ago may show on the next read."""
        items = self._query(
            want=limit,
            TableName=self.tables.messages,
            IndexName=schema.REPLY_INDEX,
            KeyConditionExpression="#reply = :root",
            FilterExpression="#room = :room AND #ttl > :now",
            ExpressionAttributeNames={"#reply": schema.REPLY_TO_ID, "#room": schema.ROOM_ID, "#ttl": schema.TTL},
            ExpressionAttributeValues={":root": _s(message_id), ":room": _s(room_id), ":now": _n(_epoch(now))},
            ScanIndexForward=True,
        )
        return [_message(item) for item in items]

    def search_messages(
        self,
        *,
        room_id: str,
        now: datetime,
        text: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
        scan: int = 1000,
    ) -> list[MessageRecord]:
        # DynamoDB's contains() is case-sensitive: read the window (newest seqs by key,
        # strongly consistent) and match here. Admin-only, and bounded by `scan`.
        needle = text.casefold() if text else None
        found: list[MessageRecord] = []
        for message in reversed(self.messages_before(room_id=room_id, before_seq=None, limit=scan, now=now)):
            if needle is not None and needle not in message.text.casefold():
                continue
            if user_id and message.user_id != user_id:
                continue
            found.append(message)
            if len(found) >= limit:
                break
        return found

    def removed_between(self, *, room_id: str, after_seq: int, up_to_seq: int, now: datetime) -> list[MessageRecord]:
        window = self.messages_after(room_id=room_id, after_seq=after_seq, limit=max(0, up_to_seq - after_seq), now=now)
        return [m for m in window if m.removed is not None and m.seq <= up_to_seq]

    def remove_user_messages(
        self, *, user_id: str, room_id: str | None, removal: Removal, now: datetime, ttl_seconds: int
    ) -> list[RemoveResult]:
        candidates: dict[str, MessageRecord] = {}
        if room_id is None:
            # Every room: a strongly consistent scan of the table (a rare, admin-only call).
            items = self._scan(
                TableName=self.tables.messages,
                ConsistentRead=True,
                FilterExpression="#user = :user AND attribute_exists(#room) AND #ttl > :now",
                ExpressionAttributeNames={"#user": "userId", "#room": "roomId", "#ttl": "ttl"},
                ExpressionAttributeValues={":user": _s(user_id), ":now": _n(_epoch(now))},
            )
            candidates = {m.message_id: m for m in map(_message, items)}
        else:
            # The room's index, plus its newest seqs by key, which the index may not have yet.
            items = self._query(
                TableName=self.tables.messages,
                IndexName=schema.ROOM_SEQ_INDEX,
                KeyConditionExpression="#room = :room",
                FilterExpression="#user = :user AND #ttl > :now",
                ExpressionAttributeNames={"#room": "roomId", "#user": "userId", "#ttl": "ttl"},
                ExpressionAttributeValues={":room": _s(room_id), ":user": _s(user_id), ":now": _n(_epoch(now))},
            )
            candidates = {m.message_id: m for m in map(_message, items)}
            recent = self.messages_before(room_id=room_id, before_seq=None, limit=self.recent_window, now=now)
            candidates.update({m.message_id: m for m in recent if m.user_id == user_id})
        changed: list[RemoveResult] = []
        for message in sorted(candidates.values(), key=lambda m: (m.room_id, m.seq)):
            if message.removed == DELETED or (message.removed is not None and removal != DELETED):
                continue
            result = self.remove_message(
                room_id=message.room_id,
                message_id=message.message_id,
                removal=removal,
                removed_by=events.BY_MODERATOR,
                now=now,
                ttl_seconds=ttl_seconds,
            )
            if result is not None and result.message.removed != message.removed:
                changed.append(result)
        return changed

    # Read state ------------------------------------------------------------------------------

    def mark_reads(self, marks: dict[tuple[str, str], int]) -> dict[tuple[str, str], ReadMarkResult]:
        # No synced commit to share: one conditional write per mark.
        return {key: self._mark(room_id=key[0], user_id=key[1], seq=seq) for key, seq in marks.items()}

    def _mark(self, *, room_id: str, user_id: str, seq: int) -> ReadMarkResult:
        """One conditional UpdateItem: forward only. When the stored seq is already as far,
        the condition fails and nothing is written (one consistent read answers)."""
        key = {"messageId": _s(read_key(room_id=room_id, user_id=user_id))}
        try:
            self.client.update_item(
                TableName=self.tables.messages,
                Key=key,
                UpdateExpression="SET #read = :seq, #rr = :room, #ru = :user",
                ConditionExpression="attribute_not_exists(#read) OR #read < :seq",
                ExpressionAttributeNames={"#read": "lastReadSeq", "#rr": "readRoom", "#ru": "readUser"},
                ExpressionAttributeValues={":seq": _n(seq), ":room": _s(room_id), ":user": _s(user_id)},
            )
            return ReadMarkResult(last_read_seq=seq, moved=True)
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
        response = self.client.get_item(TableName=self.tables.messages, Key=key, ConsistentRead=True)
        return ReadMarkResult(last_read_seq=_int(response["Item"], "lastReadSeq"), moved=False)

    def _read_items(self, keys: dict[str, str]) -> dict[str, int]:
        """BatchGetItem of read items by key; {name: lastReadSeq} for those that exist."""
        by_key = {key: name for name, key in keys.items()}
        items = self._batch_get(self.tables.messages, [{"messageId": _s(key)} for key in by_key])
        return {by_key[_str(item, "messageId")]: _int(item, "lastReadSeq") for item in items}

    def read_seqs(self, *, user_id: str, room_ids: list[str]) -> dict[str, int]:
        return self._read_items({room: read_key(room_id=room, user_id=user_id) for room in dict.fromkeys(room_ids)})

    def room_readers(self, *, room_id: str, user_ids: list[str]) -> dict[str, int]:
        return self._read_items({user: read_key(room_id=room_id, user_id=user) for user in dict.fromkeys(user_ids)})

    # Connections ------------------------------------------------------------------------------

    def save_connection(self, record: ConnectionRecord) -> None:
        self.client.put_item(
            TableName=self.tables.connections,
            Item={
                "connectionId": _s(record.connection_id),
                "userId": _s(record.user_id),
                "username": _s(record.username),
                "connectedAt": _s(_time(record.connected_at)),
                "ttl": _n(record.ttl),
                "instanceId": _s(record.instance_id),
            },
        )

    def refresh_connection(self, *, connection_id: str, ttl: int) -> None:
        try:
            self.client.update_item(
                TableName=self.tables.connections,
                Key={"connectionId": _s(connection_id)},
                UpdateExpression="SET #ttl = :ttl",
                # Without it, an update of a deleted row would create a row with only a ttl.
                ConditionExpression="attribute_exists(#id)",
                ExpressionAttributeNames={"#ttl": "ttl", "#id": "connectionId"},
                ExpressionAttributeValues={":ttl": _n(ttl)},
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise

    def delete_connection(self, connection_id: str, *, ttl: int | None = None) -> None:
        key = {"connectionId": _s(connection_id)}
        if ttl is None:
            self.client.delete_item(TableName=self.tables.connections, Key=key)
            return
        try:
            self.client.delete_item(
                TableName=self.tables.connections,
                Key=key,
                ConditionExpression="#ttl = :ttl",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":ttl": _n(ttl)},
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise

    def delete_connections(self, connection_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(connection_ids))  # a batch may not name one key twice
        table = self.tables.connections
        for start in range(0, len(ids), BATCH_WRITE_MAX):
            request: dict[str, Any] = {
                table: [
                    {"DeleteRequest": {"Key": {"connectionId": _s(connection_id)}}}
                    for connection_id in ids[start : start + BATCH_WRITE_MAX]
                ]
            }
            for _ in _until_processed(
                lambda r: self.client.batch_write_item(RequestItems=r), request, "UnprocessedItems"
            ):
                pass

    def _live_connections(self, *, index: str, attribute: str, value: str, now: datetime) -> list[ConnectionRecord]:
        items = self._query_key(
            table=self.tables.connections, index=index, attribute=attribute, value=value, live_at=now
        )
        return sorted((_connection(item) for item in items), key=lambda c: (c.connected_at, c.connection_id))

    def connections_for_user(self, *, user_id: str, now: datetime) -> list[ConnectionRecord]:
        return self._live_connections(index=schema.USER_ID_INDEX, attribute=schema.USER_ID, value=user_id, now=now)

    def connections_on_instance(self, *, instance_id: str, now: datetime) -> list[ConnectionRecord]:
        return self._live_connections(
            index=schema.INSTANCE_ID_INDEX, attribute=schema.INSTANCE_ID, value=instance_id, now=now
        )

    def connections_live_summary(self, *, now: datetime) -> tuple[int, int]:
        items = self._scan(
            TableName=self.tables.connections,
            FilterExpression="#ttl > :now",
            ProjectionExpression="#user",
            ExpressionAttributeNames={"#ttl": "ttl", "#user": "userId"},
            ExpressionAttributeValues={":now": _n(_epoch(now))},
        )
        users = [_str(item, "userId") for item in items]
        return len(users), len(set(users))

    # Processes: one item in Connections, {"connectionId": "instances", "instances": {id: ttl}}.
    # No userId, instanceId or ttl: in no index, and no read of connection rows (their scans
    # filter on ttl) sees it. One item, so a beat is one UpdateItem whose old image lists every
    # process: a process with thousands of sockets pays one small write a heartbeat, not one
    # per socket (issue 22.4). Beats are a few a second at most (one per process a minute),
    # far below one item's limit; an entry is some 40 bytes, so thousands of processes fit.

    def beat_instance(self, *, instance_id: str, ttl: int, now: datetime) -> InstanceBeat:
        request: dict[str, Any] = {
            "TableName": self.tables.connections,
            "Key": {"connectionId": _s(INSTANCES_KEY)},
            "UpdateExpression": "SET #all.#me = :ttl",
            "ExpressionAttributeNames": {"#all": "instances", "#me": instance_id},
            "ExpressionAttributeValues": {":ttl": _n(ttl)},
            "ReturnValues": "ALL_OLD",
        }
        try:
            response = self.client.update_item(**request)
        except ClientError as exc:
            if _error_code(exc) != "ValidationException":
                raise
            # The first beat ever: there is no map to set an entry in yet.
            try:
                self.client.put_item(
                    TableName=self.tables.connections,
                    Item={"connectionId": _s(INSTANCES_KEY), "instances": {"M": {}}},
                    ConditionExpression="attribute_not_exists(#id)",
                    ExpressionAttributeNames={"#id": "connectionId"},
                )
            except ClientError as again:
                if _error_code(again) != "ConditionalCheckFailedException":
                    raise
            response = self.client.update_item(**request)
        entries = response.get("Attributes", {}).get("instances", {}).get("M", {})
        seen = {name: _int(entries, name) for name in entries}
        cutoff = _epoch(now)
        return InstanceBeat(
            kept=seen.get(instance_id, 0) > cutoff,
            dead={name: at for name, at in seen.items() if name != instance_id and at <= cutoff},
        )

    def forget_instance(self, *, instance_id: str, ttl: int) -> None:
        try:
            self.client.update_item(
                TableName=self.tables.connections,
                Key={"connectionId": _s(INSTANCES_KEY)},
                UpdateExpression="REMOVE #all.#it",
                ConditionExpression="#all.#it = :ttl",
                ExpressionAttributeNames={"#all": "instances", "#it": instance_id},
                ExpressionAttributeValues={":ttl": _n(ttl)},
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise

    # Housekeeping -----------------------------------------------------------------------------

    def purge_expired(self, *, now: datetime) -> int:
        """Delete what DynamoDB's TTL has not deleted yet; each delete re-checks the ttl.

        The re-check matters: a heartbeat may refresh a connection between the scan and the
        delete, and that connection must survive. The count is of messages, room events and
        connections; a clientMessageId's key expires with its message and goes uncounted.
        """
        removed = 0
        for table, key in ((self.tables.messages, "messageId"), (self.tables.connections, "connectionId")):
            for item in list(self._expired(table, key, now)):
                if self._delete_expired(table, {key: item[key]}, now):
                    removed += not item[key].get("S", "").startswith(CLIENT_MESSAGE_KEY_PREFIX)
        return removed

    def _expired(self, table: str, key: str, now: datetime) -> Iterator[Item]:
        return self._scan(
            TableName=table,
            FilterExpression="#ttl <= :now",
            ProjectionExpression="#key",
            ExpressionAttributeNames={"#ttl": "ttl", "#key": key},
            ExpressionAttributeValues={":now": _n(_epoch(now))},
        )

    def _delete_expired(self, table: str, key: Item, now: datetime) -> bool:
        try:
            self.client.delete_item(
                TableName=table,
                Key=key,
                ConditionExpression="#ttl <= :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": _n(_epoch(now))},
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True


# --- creating the tables -----------------------------------------------------------------------


def ensure_tables(
    client: DynamoDBClient,
    names: schema.TableNames,
    *,
    report: Callable[[str], None] = lambda line: None,
    poll_seconds: float = 2.0,
    timeout: float = 600.0,
) -> list[str]:
    """Create the tables, indexes and TTL settings that are missing; return what was done.

    Idempotent: a second run changes nothing. A table of the origin design (no RoomSeqIndex or
    InstanceIdIndex) gets the missing indexes added. A table whose primary key differs from the
    schema is an error, never "fixed".
    """
    done: list[str] = []

    def say(line: str, *, changed: bool) -> None:
        report(line)
        if changed:
            done.append(line)

    for table in schema.TABLES:
        name = names.of(table)
        description = _describe(client, name)
        if description is None:
            client.create_table(**schema.create_table_request(table, name))
            say(f"created table {name} ({table.logical_name})", changed=True)
        else:
            key = {k["KeyType"]: k["AttributeName"] for k in description["KeySchema"]}
            if key != {"HASH": table.hash_key.name}:
                raise RuntimeError(f"table {name} exists with key {key}, expected HASH {table.hash_key.name}")
            say(f"table {name} ({table.logical_name}) exists", changed=False)
        _wait_active(client, name, poll_seconds=poll_seconds, timeout=timeout)

        present = {index["IndexName"] for index in (_describe(client, name) or {}).get("GlobalSecondaryIndexes", [])}
        for index in table.indexes:
            if index.name in present:
                continue
            # UpdateTable creates one index per call, and the table must be ACTIVE between calls.
            client.update_table(
                TableName=name,
                AttributeDefinitions=table.attribute_definitions(),
                GlobalSecondaryIndexUpdates=[{"Create": schema.create_index_request(index)}],
            )
            _wait_active(client, name, poll_seconds=poll_seconds, timeout=timeout)
            say(f"created index {index.name} on {name}", changed=True)

        if table.ttl_attribute is not None:
            ttl = client.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
            status, attribute = ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")
            if status in {"ENABLED", "ENABLING"}:
                if attribute != table.ttl_attribute:
                    raise RuntimeError(f"table {name} has TTL on {attribute!r}, expected {table.ttl_attribute!r}")
                say(f"TTL on {name}.{attribute} already enabled", changed=False)
            else:
                client.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
                )
                say(f"enabled TTL on {name}.{table.ttl_attribute}", changed=True)
    moved = migrate_member_sets(client, names)
    if moved:
        say(f"moved {moved} members from room member sets to membership items", changed=True)
    listed = list_rooms(client, names)
    if listed:
        say(f"listed {listed} rooms written before PublicRoomsIndex held them", changed=True)
    return done


def list_rooms(client: DynamoDBClient, names: schema.TableNames) -> int:
    """Give the rooms stored before PublicRoomsIndex held them their listing attribute (public
    rooms, and private rooms but DMs), so browsing and moderators' room list find them. A
    scan, once, from the tables command (idempotent): never on a request's path."""
    store = DynamoDBStore(client=client, tables=names)
    listed = 0
    for item in list(
        store._scan(
            TableName=names.rooms,
            FilterExpression="attribute_not_exists(#listing) AND attribute_not_exists(#member)"
            " AND attribute_exists(#name) AND attribute_exists(#created) AND attribute_exists(#last)",
            ExpressionAttributeNames={
                "#listing": schema.PUBLIC_LISTING,
                "#member": schema.MEMBER_ROOM_ID,
                "#name": "name",
                "#created": "createdAt",
                "#last": "lastSeq",
            },
        )
    ):
        room = _room(item)
        if room.direct:
            continue
        listing, private = (schema.LISTED_PRIVATE, True) if room.private else (schema.LISTED_PUBLIC, False)
        try:
            client.update_item(
                TableName=names.rooms,
                Key={"roomId": _s(room.room_id)},
                UpdateExpression="SET #listing = :listing",
                # Still unlisted and as private as read: a room made private or public
                # meanwhile was listed by that change.
                ConditionExpression="attribute_exists(#room) AND attribute_not_exists(#listing) AND "
                + ("#private = :yes" if private else "(attribute_not_exists(#private) OR #private = :no)"),
                ExpressionAttributeNames={"#listing": schema.PUBLIC_LISTING, "#room": "roomId", "#private": "private"},
                ExpressionAttributeValues={
                    ":listing": _s(listing),
                    **({":yes": {"BOOL": True}} if private else {":no": {"BOOL": False}}),
                },
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            continue
        listed += 1
    return listed


def migrate_member_sets(client: DynamoDBClient, names: schema.TableNames) -> int:
    """Turn the member sets on room items (the first design) into membership items.

    Each set goes only once every member has an item (adding is idempotent), so a run cut
    short is finished by the next one. A scan, once, from the tables command: never on a
    request's path.
    """
    store = DynamoDBStore(client=client, tables=names)
    moved = 0
    for item in list(
        store._scan(
            TableName=names.rooms,
            FilterExpression="attribute_exists(#members)",
            ExpressionAttributeNames={"#members": "members"},
        )
    ):
        room_id = _str(item, "roomId")
        for user_id in item["members"].get("SS", []):
            moved += store.add_member(room_id=room_id, user_id=user_id)
        client.update_item(
            TableName=names.rooms,
            Key={"roomId": _s(room_id)},
            UpdateExpression="REMOVE #members",
            ExpressionAttributeNames={"#members": "members"},
        )
    return moved


def _describe(client: DynamoDBClient, name: str) -> dict[str, Any] | None:
    try:
        return dict(client.describe_table(TableName=name)["Table"])
    except ClientError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def _wait_active(client: DynamoDBClient, name: str, *, poll_seconds: float, timeout: float) -> None:
    """Wait until the table and each of its indexes is ACTIVE (new tables take seconds, indexes minutes)."""
    deadline = time.monotonic() + timeout
    while True:
        description = _describe(client, name) or {}
        statuses = [description.get("TableStatus")]
        statuses += [index.get("IndexStatus") for index in description.get("GlobalSecondaryIndexes", [])]
        if all(status == "ACTIVE" for status in statuses):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} not ACTIVE after {timeout:.0f}s: {statuses}")
        time.sleep(poll_seconds)
