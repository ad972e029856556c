"""The local storage backend: the Django ORM (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F

from chat import models
from chat.storage.base import (
    AppendResult,
    ConnectionRecord,
    MessageRecord,
    NewMessage,
    Room,
    RoomNotFound,
)


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _room(row: models.Room) -> Room:
    return Room(
        room_id=row.room_id, name=row.name, created_at=row.created_at, created_by=row.created_by, last_seq=row.last_seq
    )


def _message(row: models.Message) -> MessageRecord:
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


class LocalStore:
    thread_sensitive = True

    # Rooms ------------------------------------------------------------------------------

    def ensure_room(self, *, room_id: str, name: str, created_by: str | None, now: datetime) -> Room:
        row, _ = models.Room.objects.get_or_create(
            room_id=room_id, defaults={"name": name, "created_at": now, "created_by": created_by}
        )
        return _room(row)

    def get_room(self, room_id: str) -> Room | None:
        row = models.Room.objects.filter(room_id=room_id).first()
        return _room(row) if row else None

    def list_rooms(self) -> list[Room]:
        return [_room(r) for r in models.Room.objects.order_by("room_id")]

    # Messages ---------------------------------------------------------------------------

    def _existing(self, new: NewMessage) -> MessageRecord | None:
        if new.client_message_id is None:
            return None
        row = models.Message.objects.filter(
            room_id=new.room_id, user_id=new.user_id, client_message_id=new.client_message_id
        ).first()
        return _message(row) if row else None

    def append_message(self, new: NewMessage) -> AppendResult:
        existing = self._existing(new)
        if existing is not None:
            return AppendResult(existing, created=False)
        try:
            with transaction.atomic():
                # The UPDATE takes the room's row lock (PostgreSQL) or the write lock
                # (SQLite) until commit, so concurrent senders get contiguous seqs.
                updated = models.Room.objects.filter(room_id=new.room_id).update(last_seq=F("last_seq") + 1)
                if not updated:
                    raise RoomNotFound(new.room_id)
                seq = models.Room.objects.values_list("last_seq", flat=True).get(room_id=new.room_id)
                row = models.Message.objects.create(
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
                )
        except IntegrityError:
            # A concurrent retry with the same clientMessageId won the race; the whole
            # transaction (seq increment included) rolled back, so no seq was burnt.
            existing = self._existing(new)
            if existing is None:
                raise
            return AppendResult(existing, created=False)
        return AppendResult(_message(row), created=True)

    def messages_after(self, *, room_id: str, after_seq: int, limit: int, now: datetime) -> list[MessageRecord]:
        rows = models.Message.objects.filter(room_id=room_id, seq__gt=after_seq, ttl__gt=_epoch(now)).order_by("seq")[
            :limit
        ]
        return [_message(r) for r in rows]

    def messages_before(
        self, *, room_id: str, before_seq: int | None, limit: int, now: datetime
    ) -> list[MessageRecord]:
        qs = models.Message.objects.filter(room_id=room_id, ttl__gt=_epoch(now))
        if before_seq is not None:
            qs = qs.filter(seq__lt=before_seq)
        rows = list(qs.order_by("-seq")[:limit])
        rows.reverse()
        return [_message(r) for r in rows]

    # Connections ------------------------------------------------------------------------

    def save_connection(self, record: ConnectionRecord) -> None:
        models.Connection.objects.update_or_create(
            connection_id=record.connection_id,
            defaults={
                "user_id": record.user_id,
                "username": record.username,
                "connected_at": record.connected_at,
                "ttl": record.ttl,
                "instance_id": record.instance_id,
            },
        )

    def refresh_connection(self, *, connection_id: str, ttl: int) -> None:
        models.Connection.objects.filter(connection_id=connection_id).update(ttl=ttl)

    def delete_connection(self, connection_id: str) -> None:
        models.Connection.objects.filter(connection_id=connection_id).delete()

    def connections_for_user(self, *, user_id: str, now: datetime) -> list[ConnectionRecord]:
        rows = models.Connection.objects.filter(user_id=user_id, ttl__gt=_epoch(now)).order_by("connected_at")
        return [_connection(r) for r in rows]

    def connections_on_instance(self, *, instance_id: str, now: datetime) -> list[ConnectionRecord]:
        rows = models.Connection.objects.filter(instance_id=instance_id, ttl__gt=_epoch(now)).order_by("connected_at")
        return [_connection(r) for r in rows]

    # Housekeeping -----------------------------------------------------------------------

    def purge_expired(self, *, now: datetime) -> int:
        cutoff = _epoch(now)
        messages, _ = models.Message.objects.filter(ttl__lte=cutoff).delete()
        connections, _ = models.Connection.objects.filter(ttl__lte=cutoff).delete()
        return messages + connections
