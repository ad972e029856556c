"""The "uploads" storage (settings.STORAGES): S3 through django-storages, or the file system.

The few things the rest of the app does with bytes, each for both backends: a slot for the
browser's POST, the first bytes and size of a received file, moving a verified file where
only the server writes, a short-lived download, deleting. On S3, slots and downloads are
presigned, so file bytes go between the browser and the bucket.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages


def storage() -> Storage:
    return storages["uploads"]


def is_s3() -> bool:
    return bool(settings.CHAT_UPLOADS_BUCKET)


def _client() -> Any:
    return storage().connection.meta.client  # type: ignore[attr-defined]


def presigned_post(*, key: str, content_type: str, max_bytes: int, expires_in: int) -> tuple[str, dict[str, str]]:
    """S3's presigned POST for one key: this type, at most max_bytes, for expires_in seconds."""
    post = _client().generate_presigned_post(
        Bucket=settings.CHAT_UPLOADS_BUCKET,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 0, max_bytes]],
        ExpiresIn=expires_in,
    )
    return post["url"], post["fields"]


def presigned_get(*, key: str, content_type: str, disposition: str, expires_in: int) -> str:
    return str(
        _client().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": settings.CHAT_UPLOADS_BUCKET,
                "Key": key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition,
                "ResponseCacheControl": "private, max-age=300",
            },
            ExpiresIn=expires_in,
        )
    )


def size_of(key: str) -> int | None:
    """The stored object's size, or None when there is none."""
    try:
        return storage().size(key)
    except (FileNotFoundError, OSError):
        return None
    except Exception as exc:  # botocore's ClientError for a missing object
        if _missing(exc):
            return None
        raise


def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    code = (response or {}).get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in {"404", "NoSuchKey", "NotFound"}


def read(key: str, limit: int | None = None) -> bytes:
    with storage().open(key, "rb") as handle:
        data = handle.read() if limit is None else handle.read(limit)
    return bytes(data)


def write(key: str, data: bytes, content_type: str) -> None:
    """Write (replace) an object only the server writes."""
    target = storage()
    if is_s3():
        _client().put_object(
            Bucket=settings.CHAT_UPLOADS_BUCKET,
            Key=key,
            Body=data,
            ContentType=content_type,
            ServerSideEncryption="AES256",
        )
        return
    if target.exists(key):
        target.delete(key)
    target.save(key, ContentFile(data))


def promote(source: str, target: str, content_type: str) -> None:
    """Move a verified file out of incoming/ (server-side on S3: no byte through here)."""
    if is_s3():
        _client().copy_object(
            Bucket=settings.CHAT_UPLOADS_BUCKET,
            Key=target,
            CopySource={"Bucket": settings.CHAT_UPLOADS_BUCKET, "Key": source},
            ContentType=content_type,
            MetadataDirective="REPLACE",
            ServerSideEncryption="AES256",
        )
    else:
        write(target, read(source), content_type)
    delete(source)


def delete(*keys: str) -> None:
    target = storage()
    for key in keys:
        try:
            target.delete(key)
        except (FileNotFoundError, OSError):
            pass


def path_of(key: str) -> str:
    """The file system path of a key (embedded default only)."""
    return storage().path(key)


def expires(at: datetime) -> int:
    return int(at.timestamp())
