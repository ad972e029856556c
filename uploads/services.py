"""Upload services: slots, the embedded default's receiving end, verification, claims by
messages, and deletion. Views, the chat core's hook (uploads.provider) and commands call
these; they alone write Upload rows and the uploads storage.

The order of an upload: a slot (`upload_slot`: the room, limits and quotas are checked
before any byte moves), the browser's multipart POST (to S3, or `upload_receive` here),
`upload_complete` (the bytes are verified and moved where the browser cannot write), then
a message claims it (`uploads_claim`) and, once stored, `uploads_bind` ties the upload's
life to the message's. Bad input is a ChatError with its own code; whatever failed
verification is deleted, bytes and row.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from accounts.identity import Identity
from chat import services as chat_services
from chat.errors import ChatError, ErrorCode
from chat.moderation_models import Mute
from chat.protocol import format_timestamp
from chat.quota import QuotaExceeded
from uploads import images, metrics, rules, selectors, store
from uploads.models import Upload

log = logging.getLogger(__name__)
_tokens = signing.Signer(salt="uploads.receive")


@dataclass(frozen=True)
class Slot:
    upload_id: str
    url: str
    fields: dict[str, str]
    expires_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "uploadId": self.upload_id,
            "url": self.url,
            "fields": self.fields,
            "expiresAt": format_timestamp(self.expires_at),
        }


def refused(code: ErrorCode, message: str) -> ChatError:
    metrics.refused(code.value)
    return ChatError(code, message)


# Slots ----------------------------------------------------------------------------------------


def _require_postable(*, identity: Identity, room_id: str, now: datetime) -> None:
    """The user may post in the room now (slow mode aside: it counts messages, not files)."""
    room = chat_services.room_get(room_id)
    if room is None or not chat_services.room_readable(room=room, identity=identity):
        raise refused(ErrorCode.UNKNOWN_ROOM, f"room {room_id!r} does not exist")
    if room.archived:
        raise refused(ErrorCode.ROOM_ARCHIVED, "this room is archived: it takes no new files")
    if room.read_only and not identity.is_moderator:
        raise refused(ErrorCode.READ_ONLY, "only moderators post in this room")
    if Mute.until(user_id=identity.user_id, room_id=room_id, now=now) is not None:
        raise refused(ErrorCode.MUTED, "you are muted")


def _check_file(*, name: str, size: int, content_type: str) -> str:
    try:
        name = rules.clean_name(name)
    except rules.NameError_ as exc:
        raise refused(ErrorCode.INVALID_FILE_NAME, str(exc)) from None
    if size > settings.CHAT_MAX_UPLOAD_BYTES:
        raise refused(ErrorCode.UPLOAD_TOO_LARGE, f"a file is at most {settings.CHAT_MAX_UPLOAD_BYTES} bytes")
    if content_type not in settings.CHAT_UPLOAD_TYPES:
        raise refused(ErrorCode.UPLOAD_TYPE_NOT_ALLOWED, f"files of type {content_type[:100]!r} cannot be shared here")
    if rules.type_of_name(name) != content_type:
        raise refused(ErrorCode.UPLOAD_TYPE_MISMATCH, f"a file named {name!r} is not {content_type}")
    return name


def _check_quotas(*, identity: Identity, room_id: str, size: int, now: datetime) -> None:
    per_day: int = settings.CHAT_UPLOAD_BYTES_PER_USER_PER_DAY
    if (
        per_day
        and selectors.bytes_by_user_since(user_id=identity.user_id, since=now - timedelta(days=1)) + size > per_day
    ):
        metrics.refused(ErrorCode.QUOTA_EXCEEDED.value)
        raise QuotaExceeded(f"at most {per_day} bytes of files a day: try again later", retry_after=3600)
    per_room: int = settings.CHAT_UPLOAD_BYTES_PER_ROOM
    if per_room and selectors.bytes_in_room(room_id=room_id) + size > per_room:
        metrics.refused(ErrorCode.QUOTA_EXCEEDED.value)
        raise QuotaExceeded(f"this room holds at most {per_room} bytes of files")


def upload_slot(*, identity: Identity, room_id: str, name: str, size: int, content_type: str) -> Slot:
    """A slot for one file: S3's presigned POST (a key only this upload uses, this type, at
    most this size, for CHAT_UPLOAD_SLOT_SECONDS), or the same shape pointing at the
    embedded default's one-time receiving URL."""
    now = chat_services.utcnow()
    name = _check_file(name=name, size=size, content_type=content_type)
    _require_postable(identity=identity, room_id=room_id, now=now)
    _check_quotas(identity=identity, room_id=room_id, size=size, now=now)
    upload = Upload.objects.create(
        upload_id=uuid.uuid4().hex,
        user_id=identity.user_id,
        room_id=room_id,
        name=name,
        declared_size=size,
        declared_type=content_type,
        created_at=now,
        slot_expires_at=now + timedelta(seconds=settings.CHAT_UPLOAD_SLOT_SECONDS),
    )
    if store.is_s3():
        url, fields = store.presigned_post(
            key=upload.incoming_key,
            content_type=content_type,
            max_bytes=size,
            expires_in=settings.CHAT_UPLOAD_SLOT_SECONDS,
        )
    else:
        url, fields = f"/api/uploads/{upload.upload_id}/data", {"token": _tokens.sign(upload.upload_id)}
    return Slot(upload.upload_id, url, fields, upload.slot_expires_at)


# The embedded default's receiving end -------------------------------------------------------


def upload_receive(*, upload_id: str, token: str, file: UploadedFile[bytes] | None) -> None:
    """Store the file of a slot, once: what S3 does with a presigned POST."""
    try:
        valid = _tokens.unsign(token) == upload_id
    except signing.BadSignature:
        valid = False
    if not valid:
        raise refused(ErrorCode.UNKNOWN_UPLOAD, "no such upload slot")
    if file is None:
        raise refused(ErrorCode.UPLOAD_NOT_RECEIVED, "the file goes in the multipart part 'file'")
    now = chat_services.utcnow()
    with transaction.atomic():
        upload = Upload.objects.select_for_update().filter(pk=upload_id).first()
        if upload is None:
            raise refused(ErrorCode.UNKNOWN_UPLOAD, "no such upload slot")
        if upload.received or upload.status != Upload.PENDING:
            raise refused(ErrorCode.UPLOAD_USED, "this upload slot was used already")
        if upload.slot_expires_at < now:
            raise refused(ErrorCode.UPLOAD_EXPIRED, "this upload slot has expired: ask for another")
        if file.size is None or file.size > upload.declared_size:
            raise refused(ErrorCode.UPLOAD_TOO_LARGE, f"this slot takes at most {upload.declared_size} bytes")
        upload.received = True
        upload.save(update_fields=["received"])
    store.write(upload.incoming_key, file.read(), upload.declared_type)


# Verification ---------------------------------------------------------------------------------


def _discard(upload: Upload) -> None:
    store.delete(upload.incoming_key, upload.file_key, upload.thumbnail_key)
    Upload.objects.filter(pk=upload.pk).delete()


def _verify(upload: Upload) -> Upload:
    """Check a received file's bytes and move it where only the server writes. A file that
    fails is deleted with its row, and the error says why."""
    now = chat_services.utcnow()
    size = store.size_of(upload.incoming_key)
    if size is None:
        if upload.slot_expires_at < now:
            _discard(upload)
            raise refused(ErrorCode.UPLOAD_EXPIRED, "this upload slot expired before a file came")
        raise refused(ErrorCode.UPLOAD_NOT_RECEIVED, "no file was uploaded for this slot yet")
    try:
        if size > upload.declared_size or size > settings.CHAT_MAX_UPLOAD_BYTES:
            raise refused(
                ErrorCode.UPLOAD_TOO_LARGE, f"the file is larger than the {upload.declared_size} bytes announced"
            )
        kind = rules.sniff(store.read(upload.incoming_key, rules.HEAD_BYTES))
        if kind != upload.declared_type:
            raise refused(
                ErrorCode.UPLOAD_TYPE_MISMATCH,
                f"the file's bytes are not {upload.declared_type} but {kind or 'unknown'}",
            )
        width = height = None
        thumbnail_type = ""
        if rules.is_image(kind):
            try:
                done = images.process(store.read(upload.incoming_key), kind, max_pixels=settings.CHAT_UPLOAD_MAX_PIXELS)
            except images.BadImage as exc:
                raise refused(ErrorCode.UPLOAD_BAD_IMAGE, str(exc)) from None
            store.write(upload.file_key, done.data, kind, rules.content_disposition(upload.name, kind))
            store.write(
                upload.thumbnail_key,
                done.thumbnail,
                done.thumbnail_type,
                rules.content_disposition(upload.name, done.thumbnail_type),
            )
            store.delete(upload.incoming_key)
            size, width, height, thumbnail_type = len(done.data), done.width, done.height, done.thumbnail_type
        else:
            store.promote(upload.incoming_key, upload.file_key, kind, rules.content_disposition(upload.name, kind))
    except ChatError:
        _discard(upload)
        raise
    fields = {
        "status": Upload.READY,
        "size": size,
        "content_type": kind,
        "width": width,
        "height": height,
        "thumbnail_type": thumbnail_type,
    }
    Upload.objects.filter(pk=upload.pk, status=Upload.PENDING).update(**fields)
    for key, value in fields.items():
        setattr(upload, key, value)
    metrics.uploaded(size)
    return upload


def upload_complete(*, identity: Identity, upload_id: str) -> Upload:
    """The browser's upload is done: verify it now (a message could claim it unverified,
    which verifies it then, on the message's way)."""
    upload = selectors.upload_of(upload_id=upload_id)
    if upload is None or upload.user_id != identity.user_id:
        raise refused(ErrorCode.UNKNOWN_UPLOAD, "no such upload of yours")
    if upload.status != Upload.PENDING:
        raise refused(ErrorCode.UPLOAD_USED, "this upload is complete already")
    return _verify(upload)


# Claims by messages -----------------------------------------------------------------------------


def attachment_record(upload: Upload) -> dict[str, Any]:
    """What a message stores of a file (chat.records.NewMessage.attachments)."""
    return {
        "id": upload.upload_id,
        "name": upload.name,
        "size": upload.size,
        "contentType": upload.content_type,
        "width": upload.width,
        "height": upload.height,
        "thumbnail": bool(upload.thumbnail_type),
    }


def uploads_claim(
    *, identity: Identity, room_id: str, upload_ids: tuple[str, ...], client_message_id: str | None
) -> tuple[dict[str, Any], ...]:
    uploads = {u.upload_id: u for u in Upload.objects.filter(pk__in=upload_ids, user_id=identity.user_id)}
    for upload_id in upload_ids:
        upload = uploads.get(upload_id)
        if upload is None:
            raise refused(ErrorCode.UNKNOWN_UPLOAD, f"no such upload of yours: {upload_id}")
        if upload.room_id != room_id:
            raise refused(ErrorCode.UPLOAD_WRONG_ROOM, f"upload {upload_id} was made for another room")
    for upload_id in upload_ids:
        if uploads[upload_id].status == Upload.PENDING:
            uploads[upload_id] = _verify(uploads[upload_id])
    with transaction.atomic():
        locked = {u.upload_id: u for u in Upload.objects.select_for_update().filter(pk__in=upload_ids)}
        for upload_id in upload_ids:
            upload = locked.get(upload_id)
            if upload is None:
                raise refused(ErrorCode.UNKNOWN_UPLOAD, f"no such upload of yours: {upload_id}")
            if upload.status == Upload.ATTACHED and not (client_message_id and upload.claim_cmid == client_message_id):
                raise refused(ErrorCode.UPLOAD_USED, f"upload {upload_id} is on another message already")
        Upload.objects.filter(pk__in=upload_ids).update(status=Upload.ATTACHED, claim_cmid=client_message_id or "")
    return tuple(attachment_record(locked[upload_id]) for upload_id in upload_ids)


def uploads_bind(*, upload_ids: tuple[str, ...], room_id: str, message_id: str, ttl: int) -> None:
    expires = datetime.fromtimestamp(ttl, tz=chat_services.utcnow().tzinfo)
    Upload.objects.filter(pk__in=upload_ids, room_id=room_id, message_id="").update(
        message_id=message_id, expires_at=expires
    )


def uploads_release(*, upload_ids: tuple[str, ...]) -> None:
    Upload.objects.filter(pk__in=upload_ids, status=Upload.ATTACHED, message_id="").update(
        status=Upload.READY, claim_cmid=""
    )


# Deletion ---------------------------------------------------------------------------------------


def uploads_forget(*, message_ids: list[str]) -> int:
    """Delete the files of messages that are gone (deleted by a moderator)."""
    gone = list(Upload.objects.filter(message_id__in=message_ids))
    for upload in gone:
        _discard(upload)
    return len(gone)


def uploads_purge() -> int:
    """Delete uploads never attached within CHAT_UPLOAD_UNATTACHED_SECONDS and those whose
    message has expired: their bytes, then their rows."""
    stale = selectors.stale(now=chat_services.utcnow(), unattached_seconds=settings.CHAT_UPLOAD_UNATTACHED_SECONDS)
    for upload in stale:
        _discard(upload)
    return len(stale)
