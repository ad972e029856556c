"""The DynamoDB tables of the DynamoDB backend: the one definition of names, keys, indexes and TTL.

`manage.py create_dynamodb_tables` builds its CreateTable requests from here, and so will the
infrastructure template in deploy/ (`cloudformation_properties`). Pure data: no boto3, no Django.
See docs/data-model.md for what each attribute means and how the store writes it.

Connections and Messages keep the keys and indexes of the origin design (the AWS WebSocket chat
the app grew out of), so its data stays readable; what Chatsite's guarantees need comes on top:
`instanceId` + InstanceIdIndex (sweep an instance's rows on restart), `seq` + RoomSeqIndex
(gapless per-room order, resume by seq), the Rooms table holding each room's `lastSeq`, and
in Messages one small item per clientMessageId (no roomId, so in neither room index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

KeyType = Literal["S", "N"]

# Attribute names shared by the schema and chat.storage.dynamodb.
CONNECTION_ID: Final = "connectionId"
USER_ID: Final = "userId"
INSTANCE_ID: Final = "instanceId"
MESSAGE_ID: Final = "messageId"
ROOM_ID: Final = "roomId"
TIMESTAMP: Final = "timestamp"
SEQ: Final = "seq"
# On a room event's item in Messages (docs/data-model.md): what kind of event; absent on messages.
EVENT_TYPE: Final = "eventType"
# On a reply's item in Messages: the message it answers (its thread's root); key of ReplyIndex.
REPLY_TO_ID: Final = "replyToId"
TTL: Final = "ttl"  # epoch seconds; DynamoDB's TTL deletes the item some time (up to days) after it

# On a membership item in Rooms (docs/data-model.md): its key is "member:<room>:<user>" (room
# ids hold no ':', so never a room's key) and these two name the room and the user.
MEMBER_ROOM_ID: Final = "memberRoomId"
MEMBER_USER_ID: Final = "memberUserId"
MEMBER_KEY_PREFIX: Final = "member:"
# On a room's item in Rooms, the key of PublicRoomsIndex: LISTED_PUBLIC on a public room
# (neither private nor a DM: what browsing lists), LISTED_PRIVATE on a private room that is
# not a DM (what moderators list besides); a DM has no listing, so it is in no list but its
# members'. Making a room private or public moves it from one key to the other.
PUBLIC_LISTING: Final = "listing"
LISTED_PUBLIC: Final = "public"
LISTED_PRIVATE: Final = "private"
# On a room's item in Rooms: who created it (absent on rooms made by a first message) and when.
CREATED_BY: Final = "createdBy"
CREATED_AT: Final = "createdAt"

# Index names.
USER_ID_INDEX: Final = "UserIdIndex"
INSTANCE_ID_INDEX: Final = "InstanceIdIndex"
ROOM_TIMESTAMP_INDEX: Final = "RoomIdTimestampIndex"
ROOM_SEQ_INDEX: Final = "RoomSeqIndex"
ROOM_MEMBERS_INDEX: Final = "RoomMembersIndex"
USER_ROOMS_INDEX: Final = "UserRoomsIndex"
REPLY_INDEX: Final = "ReplyIndex"
PUBLIC_ROOMS_INDEX: Final = "PublicRoomsIndex"
ROOM_CREATOR_INDEX: Final = "RoomCreatorIndex"


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    type: KeyType


@dataclass(frozen=True, slots=True)
class Index:
    """A global secondary index projecting every attribute (reads never go back to the table),
    or only its keys when `keys_only`: then a write that changes no key attribute (a room's
    lastSeq, on every message) costs the index nothing."""

    name: str
    hash_key: Key
    range_key: Key | None = None
    keys_only: bool = False

    def key_schema(self) -> list[dict[str, str]]:
        return _key_schema(self.hash_key, self.range_key)


@dataclass(frozen=True, slots=True)
class Table:
    logical_name: str  # "Messages": the CloudFormation resource and the docs call it this
    setting: str  # the Django setting / environment variable holding the real table name
    hash_key: Key
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None

    def attribute_definitions(self) -> list[dict[str, str]]:
        keys: dict[str, Key] = {self.hash_key.name: self.hash_key}
        for index in self.indexes:
            for key in (index.hash_key, index.range_key):
                if key is not None:
                    keys[key.name] = key
        return [{"AttributeName": k.name, "AttributeType": k.type} for k in keys.values()]

    def index(self, name: str) -> Index:
        return next(i for i in self.indexes if i.name == name)


def _key_schema(hash_key: Key, range_key: Key | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key.name, "KeyType": "HASH"}]
    if range_key is not None:
        schema.append({"AttributeName": range_key.name, "KeyType": "RANGE"})
    return schema


CONNECTIONS: Final = Table(
    logical_name="Connections",
    setting="DYNAMODB_CONNECTIONS_TABLE",
    hash_key=Key(CONNECTION_ID, "S"),
    indexes=(
        Index(USER_ID_INDEX, Key(USER_ID, "S")),
        Index(INSTANCE_ID_INDEX, Key(INSTANCE_ID, "S")),
    ),
    ttl_attribute=TTL,
)

MESSAGES: Final = Table(
    logical_name="Messages",
    setting="DYNAMODB_MESSAGES_TABLE",
    hash_key=Key(MESSAGE_ID, "S"),
    indexes=(
        # The origin design's index; ISO 8601 UTC timestamps sort as strings.
        Index(ROOM_TIMESTAMP_INDEX, Key(ROOM_ID, "S"), Key(TIMESTAMP, "S")),
        # Chatsite reads history and replays by seq: unique and gapless per room, unlike time.
        Index(ROOM_SEQ_INDEX, Key(ROOM_ID, "S"), Key(SEQ, "N")),
        # A thread: the replies to one message, in seq order. Sparse: only replies carry
        # replyToId, so a thread read touches its replies and nothing else of the room.
        Index(REPLY_INDEX, Key(REPLY_TO_ID, "S"), Key(SEQ, "N")),
    ),
    ttl_attribute=TTL,
)

ROOMS: Final = Table(
    logical_name="Rooms",
    setting="DYNAMODB_ROOMS_TABLE",
    hash_key=Key(ROOM_ID, "S"),
    indexes=(
        # Sparse: only membership items carry these attributes, so room items stay out.
        Index(ROOM_MEMBERS_INDEX, Key(MEMBER_ROOM_ID, "S"), Key(MEMBER_USER_ID, "S")),
        Index(USER_ROOMS_INDEX, Key(MEMBER_USER_ID, "S"), Key(MEMBER_ROOM_ID, "S")),
        # Sparse too: only public rooms carry the listing, all under one key, by room id
        # (browsing public rooms is one query, never a scan of rooms and memberships).
        Index(PUBLIC_ROOMS_INDEX, Key(PUBLIC_LISTING, "S"), Key(ROOM_ID, "S")),
        # The rooms a user created, by creation time: the per-day room quota is one query.
        # Sparse (memberships and rooms made by a first message have no createdBy) and keys
        # only (neither key ever changes), so a message moving lastSeq never writes to it.
        Index(ROOM_CREATOR_INDEX, Key(CREATED_BY, "S"), Key(CREATED_AT, "S"), keys_only=True),
    ),
)

TABLES: Final = (CONNECTIONS, MESSAGES, ROOMS)


@dataclass(frozen=True, slots=True)
class TableNames:
    """The real table names of one deployment (or of one test)."""

    connections: str
    messages: str
    rooms: str

    def of(self, table: Table) -> str:
        return {CONNECTIONS: self.connections, MESSAGES: self.messages, ROOMS: self.rooms}[table]

    @classmethod
    def with_prefix(cls, prefix: str) -> TableNames:
        return cls(connections=f"{prefix}Connections", messages=f"{prefix}Messages", rooms=f"{prefix}Rooms")


def create_table_request(table: Table, name: str) -> dict[str, Any]:
    """Keyword arguments for boto3's `create_table` (on-demand capacity)."""
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": table.attribute_definitions(),
        "KeySchema": _key_schema(table.hash_key, None),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if table.indexes:
        request["GlobalSecondaryIndexes"] = [create_index_request(index) for index in table.indexes]
    return request


def create_index_request(index: Index) -> dict[str, Any]:
    """One GlobalSecondaryIndexes entry (CreateTable, or UpdateTable's `Create`)."""
    projection = "KEYS_ONLY" if index.keys_only else "ALL"
    return {"IndexName": index.name, "KeySchema": index.key_schema(), "Projection": {"ProjectionType": projection}}


def cloudformation_properties(table: Table, name: Any) -> dict[str, Any]:
    """Properties of an `AWS::DynamoDB::Table` resource; `name` may be a string or a `{"Ref": ...}`."""
    properties = {**create_table_request(table, "")}
    properties["TableName"] = name
    if table.ttl_attribute is not None:
        properties["TimeToLiveSpecification"] = {"AttributeName": table.ttl_attribute, "Enabled": True}
    return properties
