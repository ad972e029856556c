"""The local storage backend: the Django ORM (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Final

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from chat import events, models
from chat.records import iso_timestamp
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
    ReadMarkResult,
    Removal,
    RemoveResult,
    ReplyRef,
    Room,
    RoomNotFound,
    RoomUpdate,
    membership_changed,
)
from chatsite.db import rows

# How many read marks one upsert statement carries (three parameters each: far under
# SQLite's 32,766 and PostgreSQL's 65,535).
MARKS_PER_STATEMENT: Final = 500
# How many room ids one IN list of get_rooms carries.
ROOMS_PER_STATEMENT: Final = 500
# The Room record's fields, read by get_rooms (the model's columns of the same names).
_ROOM_FIELDS: Final = tuple(field.name for field in dataclasses.fields(Room))
# The Membership record's fields, read by name from RoomMember (room_id: the model's room).
_MEMBERSHIP_FIELDS: Final = tuple(field.name for field in dataclasses.fields(Membership))
# The ConnectionRecord's fields, its key first, read and written by name on Connection.
_CONNECTION_FIELDS: Final = tuple(field.name for field in dataclasses.fields(ConnectionRecord))
# Every column of a message, by attribute name (room_id, not room): rows read without a model.
_MESSAGE_COLUMNS: Final = tuple(field.attname for field in models.Message._meta.concrete_fields)
_EVENT_COLUMNS: Final = tuple(field.attname for field in models.RoomEvent._meta.concrete_fields)
# How many reads one UNION ALL statement joins (SQLite takes at most 500 by default).
WINDOWS_PER_STATEMENT: Final = 100


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _rows_after(
    model: type[models.Message] | type[models.RoomEvent],
    names: tuple[str, ...],
    room_id: str,
    after_seq: int,
    limit: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """A room's live rows of `model` above `after_seq`, the first `limit` by seq."""
    seq = rows.column(model, "seq")
    where = f"{rows.column(model, 'room')} = %s AND {seq} > %s AND {rows.column(model, 'ttl')} > %s"
    return rows.select(model, names, where=where, params=[room_id, after_seq, _epoch(now)], order=seq, limit=limit)


def _room(row: models.Room) -> Room:
    return Room(
        room_id=row.room_id,
        name=row.name,
        created_at=row.created_at,
        created_by=row.created_by,
        last_seq=row.last_seq,
        archived=row.archived,
        private=row.private,
        read_only=row.read_only,
        slow_mode_seconds=row.slow_mode_seconds,
        direct=row.direct,
        topic=row.topic,
        last_activity=row.last_activity,
    )


def _membership(row: models.RoomMember) -> Membership:
    return Membership(
        room_id=row.room_id,  # type: ignore[attr-defined]
        user_id=row.user_id,
        role=row.role,
        muted=row.muted,
        joined_at=row.joined_at,
    )


def _past(entry: dict[str, object]) -> PastVersion:
    return PastVersion(
        text=str(entry["text"]),
        edited_at=datetime.fromisoformat(str(entry["editedAt"])),
        client_message_id=entry.get("clientMessageId"),  # type: ignore[arg-type]
    )


def _message(row: models.Message) -> MessageRecord:
    reply = (
        ReplyRef(
            row.reply_to_id, row.reply_seq, row.reply_username, row.reply_excerpt, row.reply_removed, row.reply_number
        )
        if row.reply_to_id
        else None
    )
    return MessageRecord(
        message_id=row.message_id,
        room_id=row.room_id,  # type: ignore[attr-defined]
        seq=row.seq,
        user_id=row.user_id,
        username=row.username,
        text=row.text,
        timestamp=row.timestamp,
        connection_id=row.connection_id,
        client_message_id=row.client_message_id,
        ttl=row.ttl,
        removed=row.removed,  # type: ignore[arg-type]
        edited_at=row.edited_at,
        reply_to=reply,
        reply_count=row.reply_count,
        reactions=tuple(
            sorted((emoji, tuple(sorted(users))) for emoji, users in (row.reactions or {}).items() if users)
        ),
        edits=tuple(_past(e) for e in row.edits or []),
        removed_by=row.removed_by or None,
        mentions=tuple(row.mentions or ()),
        attachments=tuple(row.attachments or ()),
    )


def _settings(room: Room) -> dict[str, object]:
    return events.room_settings(
        name=room.name,
        private=room.private,
        read_only=room.read_only,
        archived=room.archived,
        slow_mode_seconds=room.slow_mode_seconds,
        topic=room.topic,
    )


def _event(row: models.RoomEvent) -> EventRecord:
    return EventRecord(
        room_id=row.room_id,  # type: ignore[attr-defined]
        seq=row.seq,
        type=row.type,
        data=row.data,
        timestamp=row.timestamp,
        ttl=row.ttl,
    )


def _connection(row: models.Connection) -> ConnectionRecord:
    return ConnectionRecord(
        connection_id=row.connection_id,
        user_id=row.user_id,
        username=row.username,
        connected_at=row.connected_at,
        ttl=row.ttl,
        instance_id=row.instance_id,
    )


def _reply_fields(reply: ReplyRef | None) -> dict[str, object]:
    if reply is None:
        return {}
    return {
        "reply_to_id": reply.message_id,
        "reply_seq": reply.seq,
        "reply_username": reply.username,
        "reply_excerpt": reply.excerpt,
        "reply_number": reply.number,
    }


class LocalStore:
    thread_sensitive = True

    # Rooms ------------------------------------------------------------------------------

    def ensure_room(self, *, room_id: str, name: str, created_by: str | None, now: datetime) -> Room:
        row, _ = models.Room.objects.get_or_create(
            room_id=room_id, defaults={"name": name, "created_at": now, "created_by": created_by}
        )
        return _room(row)

    def get_room(self, room_id: str) -> Room | None:
        found = self.get_rooms([room_id])
        return found[0] if found else None

    def list_rooms(self) -> list[Room]:
        return [_room(r) for r in models.Room.objects.order_by("room_id")]

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
        try:
            with transaction.atomic():
                row = models.Room.objects.create(
                    room_id=room_id,
                    name=name,
                    created_at=now,
                    created_by=created_by,
                    private=private or direct,
                    direct=direct,
                    topic=topic,
                )
        except IntegrityError:
            existing = models.Room.objects.filter(room_id=room_id).first()
            if existing is None:
                raise
            return _room(existing), False
        return _room(row), True

    def get_rooms(self, room_ids: list[str]) -> list[Room]:
        """One SELECT written out (chatsite.db.rows): the ORM's query building and a model
        per row cost about 0.5 ms and 40 µs each here, and every send reads its room, a
        batch of markReads its rooms, with this (docs/performance.md "Read state")."""
        ids = sorted(set(room_ids))
        found: list[Room] = []
        key = rows.column(models.Room, "room_id")
        for start in range(0, len(ids), ROOMS_PER_STATEMENT):
            chunk = ids[start : start + ROOMS_PER_STATEMENT]
            where = f"{key} IN ({', '.join(['%s'] * len(chunk))})"
            found += [Room(**values) for values in rows.select(models.Room, _ROOM_FIELDS, where=where, params=chunk)]
        return found

    def public_room_ids(self) -> list[str]:
        return list(models.Room.objects.filter(private=False).order_by("room_id").values_list("room_id", flat=True))

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
        with transaction.atomic():
            # The room's row lock (PostgreSQL; SQLite's write lock is taken at BEGIN) first,
            # in the order appends take it, so two changes cannot both read the old settings.
            row = models.Room.objects.select_for_update().filter(room_id=room_id).first()
            if row is None:
                raise RoomNotFound(room_id)
            wanted = {
                "name": name,
                "archived": archived,
                "private": private,
                "read_only": read_only,
                "slow_mode_seconds": slow_mode_seconds,
                "topic": topic,
            }
            changes = {
                field: value for field, value in wanted.items() if value is not None and getattr(row, field) != value
            }
            if not changes:
                return RoomUpdate(_room(row), None)
            # An UPDATE of the named columns only: last_seq moves by _next_seq alone.
            models.Room.objects.filter(room_id=room_id).update(**changes)
            seq = self._next_seq(room_id)
            assert seq is not None  # the row is locked
            row.refresh_from_db()
            room = _room(row)
            event = self._store_event(
                NewEvent(
                    room_id=room_id,
                    type=events.ROOM_UPDATED,
                    data={"room": _settings(room)},
                    timestamp=now,
                    ttl_seconds=ttl_seconds,
                ),
                seq=seq,
            )
        return RoomUpdate(room, event)

    # Members ----------------------------------------------------------------------------

    def add_member(self, *, room_id: str, user_id: str, role: str = "member", now: datetime | None = None) -> bool:
        if not models.Room.objects.filter(room_id=room_id).exists():
            raise RoomNotFound(room_id)
        try:
            with transaction.atomic():
                _, created = models.RoomMember.objects.get_or_create(
                    room_id=room_id, user_id=user_id, defaults={"role": role, "joined_at": now}
                )
        except IntegrityError:  # a concurrent add of the same member won
            return False
        if created:
            membership_changed(room_id=room_id, user_id=user_id)
        return created

    def get_membership(self, *, room_id: str, user_id: str) -> Membership | None:
        row = models.RoomMember.objects.filter(room_id=room_id, user_id=user_id).first()
        return _membership(row) if row else None

    def set_membership(
        self, *, room_id: str, user_id: str, role: str | None = None, muted: bool | None = None
    ) -> Membership | None:
        changes = {k: v for k, v in {"role": role, "muted": muted}.items() if v is not None}
        rows = models.RoomMember.objects.filter(room_id=room_id, user_id=user_id)
        if changes:
            rows.update(**changes)
        return self.get_membership(room_id=room_id, user_id=user_id)

    def members_page(self, *, room_id: str, after_user_id: str | None = None, limit: int = 100) -> list[Membership]:
        # Written out, as rooms_of_user: a socket's open reads its rooms' members (chat.fellows).
        user = rows.column(models.RoomMember, "user_id")
        where = f"{rows.column(models.RoomMember, 'room')} = %s"
        params: list[Any] = [room_id]
        if after_user_id is not None:
            where += f" AND {user} > %s"
            params.append(after_user_id)
        found = rows.select(models.RoomMember, _MEMBERSHIP_FIELDS, where=where, params=params, order=user, limit=limit)
        return [Membership(**values) for values in found]

    def rooms_of_user(self, user_id: str) -> list[Membership]:
        # Written out: every socket opened reads its user's rooms (chat.fellows, for presence),
        # and the ORM's building of this query cost more than the query.
        found = rows.select(
            models.RoomMember,
            _MEMBERSHIP_FIELDS,
            where=f"{rows.column(models.RoomMember, 'user_id')} = %s",
            params=[user_id],
            order=rows.column(models.RoomMember, "room"),
        )
        return [Membership(**values) for values in found]

    def remove_member(self, *, room_id: str, user_id: str) -> bool:
        deleted, _ = models.RoomMember.objects.filter(room_id=room_id, user_id=user_id).delete()
        if deleted:
            membership_changed(room_id=room_id, user_id=user_id)
        return deleted > 0

    def is_member(self, *, room_id: str, user_id: str) -> bool:
        return models.RoomMember.objects.filter(room_id=room_id, user_id=user_id).exists()

    def change_membership(
        self, *, user_id: str, event: NewEvent, role: str = "member", now: datetime | None = None
    ) -> EventRecord | None:
        """One transaction: the membership row first (nothing else when it changes nothing),
        then the event with the room's next seq."""
        room_id = event.room_id
        rows = models.RoomMember.objects.filter(room_id=room_id, user_id=user_id)
        with transaction.atomic():
            if not models.Room.objects.filter(room_id=room_id).exists():
                raise RoomNotFound(room_id)
            if event.type == events.MEMBER_ADDED:
                try:
                    with transaction.atomic():
                        _, changed = models.RoomMember.objects.get_or_create(
                            room_id=room_id, user_id=user_id, defaults={"role": role, "joined_at": now}
                        )
                except IntegrityError:  # a concurrent add of the same member won
                    changed = False
            elif event.type == events.MEMBER_REMOVED:
                changed = rows.delete()[0] > 0
            elif event.type == events.MEMBER_UPDATED:
                changed = rows.exclude(role=role).update(role=role) > 0
            else:
                raise ValueError(f"{event.type!r} is no membership change")
            if not changed:
                return None
            seq = self._next_seq(room_id)
            if seq is None:
                raise RoomNotFound(room_id)
            stored = self._store_event(event, seq=seq)
        if event.type != events.MEMBER_UPDATED:
            membership_changed(room_id=room_id, user_id=user_id)
        return stored

    def public_rooms(self) -> list[Room]:
        rows = models.Room.objects.filter(private=False, direct=False).order_by("room_id")
        return [_room(r) for r in rows]

    def private_rooms(self) -> list[Room]:
        rows = models.Room.objects.filter(private=True, direct=False).order_by("room_id")
        return [_room(r) for r in rows]

    def room_creation_times(self, *, created_by: str, since: datetime) -> list[datetime]:
        rows = models.Room.objects.filter(created_by=created_by, created_at__gt=since)
        return list(rows.values_list("created_at", flat=True))

    def room_members(self, room_id: str) -> list[str]:
        return sorted(models.RoomMember.objects.filter(room_id=room_id).values_list("user_id", flat=True))

    def member_rooms(self, *, user_id: str) -> list[str]:
        return sorted(models.RoomMember.objects.filter(user_id=user_id).values_list("room_id", flat=True))

    # Messages ---------------------------------------------------------------------------

    def _existing(self, new: NewMessage) -> MessageRecord | None:
        if new.client_message_id is None:
            return None
        row = models.Message.objects.filter(
            room_id=new.room_id, user_id=new.user_id, client_message_id=new.client_message_id
        ).first()
        return _message(row) if row else None

    def append_message(self, new: NewMessage) -> AppendResult:
        """One transaction: the room's next seq and the insert.

        A retry of a stored clientMessageId stores nothing, burns no seq and returns the
        original; a new message pays no lookup first. How a retry is found depends on the
        database:
        - SQLite: a transaction holds the database's write lock from its BEGIN (IMMEDIATE),
          so nothing can store the same clientMessageId between a look and the insert. The
          seq's UPDATE looks itself (one probe of the idempotency index) and changes nothing
          for a retry. So no savepoint inside a caller's transaction (chat.services._post_stored):
          two statements and Django's savepoint bookkeeping less a message.
        - PostgreSQL: a concurrent retry passes any look made before the other commits (its
          snapshot is older), so the insert's unique constraint decides, in a savepoint: the
          retry's seq increment rolls back with it, and the caller's transaction goes on.
        """
        if rows.default().vendor == "sqlite":
            return self._append_under_write_lock(new)
        try:
            with transaction.atomic():
                seq = self._next_seq(new.room_id, activity=new.timestamp)
                if seq is None:
                    raise RoomNotFound(new.room_id)
                row = self._insert_message(new, seq)
        except IntegrityError:
            existing = self._existing(new)
            if existing is None:
                raise
            return AppendResult(existing, created=False)
        return AppendResult(_message(row), created=True)

    def _append_under_write_lock(self, new: NewMessage) -> AppendResult:
        existing: MessageRecord | None = None
        # savepoint=False: nothing here is undone alone. An error fails the caller's
        # transaction with it, as the caller's own statements would.
        with transaction.atomic(savepoint=False):
            seq = self._next_seq(new.room_id, activity=new.timestamp, unless_sent=new)
            if seq is None:
                existing = self._existing(new)  # a retry, or no such room: nothing was written
            else:
                row = self._insert_message(new, seq)
        if seq is not None:
            return AppendResult(_message(row), created=True)
        if existing is None:
            raise RoomNotFound(new.room_id)
        return AppendResult(existing, created=False)

    def _insert_message(self, new: NewMessage, seq: int) -> models.Message:
        reply_to = new.reply_to
        if reply_to is not None:
            # The original's thread grows with the reply; the room's lock (taken by
            # _next_seq) orders replies, so the count read back is this reply's number.
            original = models.Message.objects.filter(room_id=new.room_id, message_id=reply_to.message_id)
            original.update(reply_count=F("reply_count") + 1)
            number = original.values_list("reply_count", flat=True).first() or 0
            reply_to = replace(reply_to, number=number)
        row = models.Message(
            message_id=str(uuid.uuid4()),
            room_id=new.room_id,
            seq=seq,
            user_id=new.user_id,
            username=new.username,
            text=new.text,
            timestamp=new.timestamp,
            connection_id=new.connection_id,
            client_message_id=new.client_message_id,
            ttl=_epoch(new.timestamp) + new.ttl_seconds,
            **_reply_fields(reply_to),
            mentions=list(new.mentions),
            attachments=list(new.attachments),
        )
        rows.insert(row)  # Message.objects.create's INSERT, not built each time
        return row

    def _next_seq(
        self, room_id: str, *, activity: datetime | None = None, unless_sent: NewMessage | None = None
    ) -> int | None:
        """Increment the room's last seq and return it (None: no such room, or `unless_sent`
        is a retry of a message the room has: its sender's clientMessageId is stored).

        One UPDATE ... RETURNING (SQLite 3.35+, PostgreSQL): it takes the room's row lock
        (PostgreSQL) or the write lock (SQLite) until commit, so concurrent senders get
        contiguous seqs. The ORM has no UPDATE ... RETURNING; names come from the model.
        """
        db = rows.default()
        params: list[Any] = [room_id]
        if activity is not None:
            params = [db.ops.adapt_datetimefield_value(activity), room_id]
        sent = unless_sent if unless_sent is not None and unless_sent.client_message_id is not None else None
        if sent is not None:  # without a clientMessageId a message is never a retry
            params += [room_id, sent.user_id, sent.client_message_id]
        statement = _next_seq_statement(db.vendor, with_activity=activity is not None, unless_sent=sent is not None)
        found = rows.fetch(db, statement, params)
        return int(found[0][0]) if found else None

    def messages_after(self, *, room_id: str, after_seq: int, limit: int, now: datetime) -> list[MessageRecord]:
        rows = models.Message.objects.filter(room_id=room_id, seq__gt=after_seq, ttl__gt=_epoch(now)).order_by("seq")[
            :limit
        ]
        return [_message(r) for r in rows]

    def messages_after_many(self, windows: list[tuple[str, int, int]], *, now: datetime) -> list[list[MessageRecord]]:
        """One statement, written out: a limited read per window, joined with UNION ALL
        (building messages_after's query through the ORM cost more than running it)."""
        found: list[list[MessageRecord]] = [[] for _ in windows]
        wanted = [(index, window) for index, window in enumerate(windows) if window[2] > 0]
        if not wanted:
            return found
        quote = connection.ops.quote_name
        table = quote(models.Message._meta.db_table)
        columns = ", ".join(quote(str(field.column)) for field in models.Message._meta.concrete_fields)
        room = quote(str(models.Message._meta.get_field("room").column))
        seq, ttl = quote("seq"), quote("ttl")
        where = f"FROM {table} WHERE {room} = %s AND {seq} > %s AND {ttl} > %s ORDER BY {seq} LIMIT %s"
        # The window's index is an int of ours, written in: a parameter in the select list
        # has no type PostgreSQL can infer.
        for start in range(0, len(wanted), WINDOWS_PER_STATEMENT):
            chunk = wanted[start : start + WINDOWS_PER_STATEMENT]
            sql = " UNION ALL ".join(
                f"SELECT * FROM (SELECT {columns}, {int(index)} AS chatsite_window {where}) AS w{int(index)}"  # noqa: S608
                for index, _ in chunk
            )
            params: list[Any] = []
            for _, (room_id, after_seq, limit) in chunk:
                params += [room_id, after_seq, _epoch(now), limit]
            for row in models.Message.objects.raw(sql, params):
                found[getattr(row, "chatsite_window")].append(_message(row))  # noqa: B009
        for messages in found:
            messages.sort(key=lambda m: m.seq)
        return found

    def messages_before(
        self, *, room_id: str, before_seq: int | None, limit: int, now: datetime
    ) -> list[MessageRecord]:
        """Written out (chatsite.db.rows), rows read without a model each: every join reads
        a page of history with this."""
        seq = rows.column(models.Message, "seq")
        where = f"{rows.column(models.Message, 'room')} = %s AND {rows.column(models.Message, 'ttl')} > %s"
        params: list[Any] = [room_id, _epoch(now)]
        if before_seq is not None:
            where += f" AND {seq} < %s"
            params.append(before_seq)
        found = rows.select(
            models.Message, _MESSAGE_COLUMNS, where=where, params=params, order=f"{seq} DESC", limit=limit
        )
        found.reverse()
        return [_message(SimpleNamespace(**values)) for values in found]  # type: ignore[arg-type]

    # Moderation of messages ---------------------------------------------------------------

    def get_message(self, *, room_id: str, message_id: str, now: datetime) -> MessageRecord | None:
        row = models.Message.objects.filter(room_id=room_id, message_id=message_id, ttl__gt=_epoch(now)).first()
        return _message(row) if row else None

    def get_messages(self, *, keys: list[tuple[str, str]], now: datetime) -> list[MessageRecord]:
        if not keys:
            return []
        wanted = set(keys)
        rows = models.Message.objects.filter(message_id__in=sorted({m for _, m in wanted}), ttl__gt=_epoch(now))
        return [_message(row) for row in rows if (row.room_id, row.message_id) in wanted]

    def remove_message(
        self, *, room_id: str, message_id: str, removal: Removal, removed_by: str, now: datetime, ttl_seconds: int
    ) -> RemoveResult | None:
        with transaction.atomic():
            if models.Room.objects.select_for_update().filter(room_id=room_id).first() is None:
                return None
            row = models.Message.objects.filter(room_id=room_id, message_id=message_id).first()
            if row is None:
                return None
            return self._remove(row, removal=removal, removed_by=removed_by, now=now, ttl_seconds=ttl_seconds)

    def _remove(
        self, row: models.Message, *, removal: Removal, removed_by: str, now: datetime, ttl_seconds: int
    ) -> RemoveResult:
        """Tombstone one message, and store its messageRemoved event if it was live. In a
        transaction holding the room's lock."""
        was_live = row.removed is None
        if was_live:
            row.removed_by = removed_by
        if removal == DELETED:
            row.removed, row.text, row.edits = DELETED, "", []
        elif row.removed != DELETED:
            # Hiding a deleted message must not turn it into a "hidden" one with its text gone.
            row.removed = removal
        row.save(update_fields=["removed", "text", "edits", "removed_by"])
        message = _message(row)
        if not was_live:
            return RemoveResult(message, None)
        self._scrub(message)
        seq = self._next_seq(message.room_id)
        assert seq is not None  # the room's row is locked
        new = NewEvent(
            room_id=message.room_id,
            type=events.MESSAGE_REMOVED,
            data=events.message_removed_data(
                message_id=message.message_id, message_seq=message.seq, removed_by=removed_by
            ),
            timestamp=now,
            ttl_seconds=ttl_seconds,
        )
        return RemoveResult(message, self._store_event(new, seq=seq))

    def _scrub(self, message: MessageRecord) -> None:
        """A removed message's text leaves the log: its edit events and its replies' excerpts."""
        models.Message.objects.filter(room_id=message.room_id, reply_to_id=message.message_id).update(
            reply_excerpt="", reply_removed=True
        )
        if message.edited_at is None:
            return
        edited = models.RoomEvent.objects.filter(
            room_id=message.room_id, seq__gt=message.seq, type=events.MESSAGE_EDITED
        )
        for event in edited:
            if event.data.get("messageId") == message.message_id:
                event.data = {**event.data, "message": ""}
                event.save(update_fields=["data"])

    # Changes people make ------------------------------------------------------------------

    def _locked_live(self, room_id: str, message_id: str) -> models.Message | None:
        """The live message, with its room's lock held (call inside a transaction).

        The lock is taken by a write (an UPDATE that changes nothing): PostgreSQL's row lock,
        and SQLite's write lock at once, so a waiting writer waits out the busy timeout instead
        of failing at once when its read transaction cannot become a write one.
        """
        if not models.Room.objects.filter(room_id=room_id).update(last_seq=F("last_seq")):
            return None
        return models.Message.objects.filter(room_id=room_id, message_id=message_id, removed__isnull=True).first()

    def _event_now(self, new: NewEvent) -> EventRecord:
        seq = self._next_seq(new.room_id)
        assert seq is not None  # the room's row is locked
        return self._store_event(new, seq=seq)

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
        with transaction.atomic():
            row = self._locked_live(room_id, message_id)
            if row is None or row.ttl <= _epoch(now):
                return None
            retried = client_message_id is not None and any(
                e.get("clientMessageId") == client_message_id for e in row.edits or []
            )
            if retried or row.text == text:
                return ChangeResult(_message(row), None)
            row.edits = [
                *(row.edits or []),
                {"text": row.text, "editedAt": now.isoformat(), "clientMessageId": client_message_id},
            ]
            row.text, row.edited_at = text, now
            row.save(update_fields=["text", "edited_at", "edits"])
            message = _message(row)
            event = self._event_now(
                NewEvent(
                    room_id=room_id,
                    type=events.MESSAGE_EDITED,
                    data=events.message_edited_data(
                        message_id=message_id, message_seq=row.seq, text=text, edited_at=iso_timestamp(now)
                    ),
                    timestamp=now,
                    ttl_seconds=ttl_seconds,
                )
            )
        return ChangeResult(message, event)

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
        with transaction.atomic():
            row = self._locked_live(room_id, message_id)
            if row is None or row.ttl <= _epoch(now):
                return None
            reactions: dict[str, list[str]] = {k: list(v) for k, v in (row.reactions or {}).items() if v}
            users = reactions.get(emoji, [])
            if add == (user_id in users) or (add and not users and len(reactions) >= max_distinct):
                return ChangeResult(_message(row), None)
            if add:
                reactions[emoji] = [*users, user_id]
            else:
                reactions[emoji] = [u for u in users if u != user_id]
            row.reactions = {k: v for k, v in reactions.items() if v}
            row.save(update_fields=["reactions"])
            message = _message(row)
            event = self._event_now(
                NewEvent(
                    room_id=room_id,
                    type=events.REACTIONS,
                    data=events.reactions_data(
                        message_id=message_id,
                        message_seq=row.seq,
                        reactions=message.reactions,
                        user_id=user_id,
                        emoji=emoji,
                        added=add,
                    ),
                    timestamp=now,
                    ttl_seconds=ttl_seconds,
                )
            )
        return ChangeResult(message, event)

    def find_message(self, *, message_id: str, now: datetime) -> MessageRecord | None:
        row = models.Message.objects.filter(message_id=message_id, ttl__gt=_epoch(now)).first()
        return _message(row) if row else None

    def replies(self, *, room_id: str, message_id: str, limit: int, now: datetime) -> list[MessageRecord]:
        rows = models.Message.objects.filter(room_id=room_id, reply_to_id=message_id, ttl__gt=_epoch(now)).order_by(
            "seq"
        )[:limit]
        return [_message(r) for r in rows]

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
        newest = models.Message.objects.filter(room_id=room_id, ttl__gt=_epoch(now)).order_by("-seq")
        window = newest.values_list("seq", flat=True)[scan - 1 : scan]
        qs = newest
        if window:
            qs = qs.filter(seq__gte=window[0])
        if text:
            qs = qs.filter(text__icontains=text)
        if user_id:
            qs = qs.filter(user_id=user_id)
        return [_message(r) for r in qs[:limit]]

    def removed_between(self, *, room_id: str, after_seq: int, up_to_seq: int, now: datetime) -> list[MessageRecord]:
        rows = models.Message.objects.filter(
            room_id=room_id, seq__gt=after_seq, seq__lte=up_to_seq, removed__isnull=False, ttl__gt=_epoch(now)
        ).order_by("seq")
        return [_message(r) for r in rows]

    def remove_user_messages(
        self, *, user_id: str, room_id: str | None, removal: Removal, now: datetime, ttl_seconds: int
    ) -> list[RemoveResult]:
        qs = models.Message.objects.filter(user_id=user_id, ttl__gt=_epoch(now))
        if room_id is not None:
            qs = qs.filter(room_id=room_id)
        # Deleting changes every message not deleted yet; hiding, only live ones.
        qs = qs.exclude(removed=DELETED) if removal == DELETED else qs.filter(removed__isnull=True)
        rooms = sorted(set(qs.values_list("room_id", flat=True)))
        changed: list[RemoveResult] = []
        for room in rooms:
            # One transaction per room: its lock, then each message with its event in seq order.
            with transaction.atomic():
                models.Room.objects.select_for_update().filter(room_id=room).first()
                for row in qs.filter(room_id=room).order_by("seq"):
                    changed.append(
                        self._remove(
                            row, removal=removal, removed_by=events.BY_MODERATOR, now=now, ttl_seconds=ttl_seconds
                        )
                    )
        return changed

    # The room's log -----------------------------------------------------------------------

    def _store_event(self, new: NewEvent, *, seq: int) -> EventRecord:
        row = models.RoomEvent.objects.create(
            room_id=new.room_id,
            seq=seq,
            type=new.type,
            data=new.data,
            timestamp=new.timestamp,
            ttl=_epoch(new.timestamp) + new.ttl_seconds,
        )
        return _event(row)

    def append_event(self, new: NewEvent) -> EventRecord:
        with transaction.atomic():
            seq = self._next_seq(new.room_id)
            if seq is None:
                raise RoomNotFound(new.room_id)
            return self._store_event(new, seq=seq)

    def events_after(self, *, room_id: str, after_seq: int, limit: int, now: datetime) -> list[LogEntry]:
        """Two indexed reads, each at most `limit` rows, merged by seq. Written out
        (chatsite.db.rows), rows read without a model each: every resume reads with this, and
        a reconnect storm's thousands of resumes spent a sixth of their database work building
        these two queries through the ORM (docs/performance.md)."""
        if limit <= 0:
            return []
        entries: list[LogEntry] = [
            _message(SimpleNamespace(**values))  # type: ignore[arg-type]
            for values in _rows_after(models.Message, _MESSAGE_COLUMNS, room_id, after_seq, limit, now)
        ]
        entries += [
            _event(SimpleNamespace(**values))  # type: ignore[arg-type]
            for values in _rows_after(models.RoomEvent, _EVENT_COLUMNS, room_id, after_seq, limit, now)
        ]
        entries.sort(key=lambda entry: entry.seq)
        return entries[:limit]

    # Read state ------------------------------------------------------------------------

    def mark_reads(self, marks: dict[tuple[str, str], int]) -> dict[tuple[str, str], ReadMarkResult]:
        """One transaction: an upsert statement per MARKS_PER_STATEMENT marks (INSERT ... ON
        CONFLICT DO UPDATE ... WHERE forward, RETURNING the rows it wrote), then one read of
        the marks it did not move. Written out (SQLite 3.35+ and PostgreSQL take the same
        text): the ORM's conditional UPDATE, then INSERT, then read back cost about 0.8 ms of
        CPU per mark before its commit (docs/performance.md "Read state")."""
        if not marks:
            return {}
        quote = connection.ops.quote_name
        table = quote(models.ReadMark._meta.db_table)
        room = quote(str(models.ReadMark._meta.get_field("room_id").column))
        user = quote(str(models.ReadMark._meta.get_field("user_id").column))
        seq = quote(str(models.ReadMark._meta.get_field("last_read_seq").column))
        # Sorted: concurrent batches on PostgreSQL take the rows' locks in one order.
        items = sorted(marks.items())
        moved: dict[tuple[str, str], int] = {}
        with transaction.atomic(), connection.cursor() as cursor:
            for start in range(0, len(items), MARKS_PER_STATEMENT):
                chunk = items[start : start + MARKS_PER_STATEMENT]
                rows = ", ".join(["(%s, %s, %s)"] * len(chunk))
                cursor.execute(
                    f"INSERT INTO {table} ({room}, {user}, {seq}) VALUES {rows} "  # noqa: S608
                    f"ON CONFLICT ({room}, {user}) DO UPDATE SET {seq} = excluded.{seq} "
                    f"WHERE {table}.{seq} < excluded.{seq} RETURNING {room}, {user}, {seq}",
                    [value for (room_id, user_id), to in chunk for value in (room_id, user_id, to)],
                )
                moved.update({(r, u): int(s) for r, u, s in cursor.fetchall()})
            kept = [key for key, _ in items if key not in moved]
            stored: dict[tuple[str, str], int] = {}
            if kept:
                rows_kept = models.ReadMark.objects.filter(
                    room_id__in={r for r, _ in kept}, user_id__in={u for _, u in kept}
                ).values_list("room_id", "user_id", "last_read_seq")
                stored = {(r, u): int(s) for r, u, s in rows_kept}
        return {
            key: ReadMarkResult(last_read_seq=moved[key], moved=True)
            if key in moved
            else ReadMarkResult(last_read_seq=stored[key], moved=False)
            for key in marks
        }

    def read_seqs(self, *, user_id: str, room_ids: list[str]) -> dict[str, int]:
        rows = models.ReadMark.objects.filter(user_id=user_id, room_id__in=room_ids)
        return dict(rows.values_list("room_id", "last_read_seq"))

    def room_readers(self, *, room_id: str, user_ids: list[str]) -> dict[str, int]:
        rows = models.ReadMark.objects.filter(room_id=room_id, user_id__in=user_ids)
        return dict(rows.values_list("user_id", "last_read_seq"))

    # Connections ------------------------------------------------------------------------

    def save_connection(self, record: ConnectionRecord) -> None:
        # One upsert statement (INSERT ... ON CONFLICT DO UPDATE), written out: a connect is
        # on the handshake path, where update_or_create's SELECT + INSERT cost a commit each,
        # and bulk_create built the statement each time.
        rows.upsert(
            models.Connection,
            [{name: getattr(record, name) for name in _CONNECTION_FIELDS}],
            conflict=["connection_id"],
            update=_CONNECTION_FIELDS[1:],
        )

    def refresh_connection(self, *, connection_id: str, ttl: int) -> None:
        models.Connection.objects.filter(connection_id=connection_id).update(ttl=ttl)

    def delete_connection(self, connection_id: str, *, ttl: int | None = None) -> None:
        rows = models.Connection.objects.filter(connection_id=connection_id)
        (rows if ttl is None else rows.filter(ttl=ttl)).delete()

    def delete_connections(self, connection_ids: Sequence[str]) -> None:
        models.Connection.objects.filter(connection_id__in=list(connection_ids)).delete()

    def connections_for_user(self, *, user_id: str, now: datetime) -> list[ConnectionRecord]:
        # Written out: the socket quota reads this on every connect.
        found = rows.select(
            models.Connection,
            _CONNECTION_FIELDS,
            where=f"{rows.column(models.Connection, 'user_id')} = %s AND {rows.column(models.Connection, 'ttl')} > %s",
            params=[user_id, _epoch(now)],
            order=rows.column(models.Connection, "connected_at"),
        )
        return [ConnectionRecord(**values) for values in found]

    def connections_on_instance(self, *, instance_id: str, now: datetime) -> list[ConnectionRecord]:
        rows = models.Connection.objects.filter(instance_id=instance_id, ttl__gt=_epoch(now)).order_by("connected_at")
        return [_connection(r) for r in rows]

    def connections_live_summary(self, *, now: datetime) -> tuple[int, int]:
        live = models.Connection.objects.filter(ttl__gt=_epoch(now))
        return live.count(), live.values("user_id").distinct().count()

    def beat_instance(self, *, instance_id: str, ttl: int, now: datetime) -> InstanceBeat:
        with transaction.atomic():
            before = models.Instance.objects.select_for_update().filter(instance_id=instance_id).first()
            models.Instance.objects.update_or_create(instance_id=instance_id, defaults={"ttl": ttl})
            dead = models.Instance.objects.filter(ttl__lte=_epoch(now)).exclude(instance_id=instance_id)
            return InstanceBeat(
                kept=before is not None and before.ttl > _epoch(now),
                dead=dict(dead.values_list("instance_id", "ttl")),
            )

    def forget_instance(self, *, instance_id: str, ttl: int) -> None:
        models.Instance.objects.filter(instance_id=instance_id, ttl=ttl).delete()

    # Housekeeping -----------------------------------------------------------------------

    def purge_expired(self, *, now: datetime) -> int:
        cutoff = _epoch(now)
        messages, _ = models.Message.objects.filter(ttl__lte=cutoff).delete()
        room_events, _ = models.RoomEvent.objects.filter(ttl__lte=cutoff).delete()
        connections, _ = models.Connection.objects.filter(ttl__lte=cutoff).delete()
        return messages + room_events + connections


@functools.cache
def _next_seq_statement(vendor: str, *, with_activity: bool, unless_sent: bool = False) -> str:
    """`LocalStore._next_seq`'s statement; a message also sets the room's last activity in it
    and, `unless_sent`, matches no row when its sender's clientMessageId is in the room."""
    last_seq = rows.column(models.Room, "last_seq")
    also = f", {rows.column(models.Room, 'last_activity')} = %s" if with_activity else ""
    key = rows.column(models.Room, "room_id")
    sets = f"{last_seq} = {last_seq} + 1{also}"
    where = f"{key} = %s"
    if unless_sent:
        message = models.Message
        sent = " AND ".join(f"{rows.column(message, name)} = %s" for name in ("room", "user_id", "client_message_id"))
        where += f" AND NOT EXISTS (SELECT 1 FROM {rows.table(message)} WHERE {sent})"  # noqa: S608
    return f"UPDATE {rows.table(models.Room)} SET {sets} WHERE {where} RETURNING {last_seq}"  # noqa: S608
