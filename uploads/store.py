"""The "uploads" storage (settings.STORAGES): S3 through django-storages, or the file system.

The few things the rest of the app does with bytes, each for both backends: a slot for the
browser's POST, the first bytes and size of a received file, moving a verified file where
only the server writes, a short-lived download, deleting. On S3, slots are presigned POSTs
and downloads CloudFront signed URLs, so file bytes go between the browser and AWS.

Why CloudFront for downloads: S3 cannot add `X-Content-Type-Options: nosniff` to what it
serves (a presigned GET can override Content-Type and Content-Disposition, no other
header), and the issue requires it. The uploads distribution's response-headers policy adds
it (and the CSP and Referrer-Policy the site's own downloads carry); the type, disposition
and cache headers are the objects' own metadata, set here when the server writes a verified
file, so the signed URL names the object alone. Without a distribution (a developer's moto)
the site streams the object itself, with the same headers.
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


def has_cdn() -> bool:
    """Downloads are CloudFront signed URLs (S3 behind the uploads distribution)."""
    return is_s3() and bool(settings.CHAT_UPLOADS_CDN_DOMAIN)


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


def cdn_url(key: str, *, expires_in: int) -> str:
    """A CloudFront signed URL (canned policy) for one object, valid expires_in seconds:
    django-storages signs it with the distribution's key (settings.STORAGES["uploads"])."""
    return str(storage().url(key, expire=expires_in))  # type: ignore[call-arg]  # S3Storage.url


def open_stream(key: str) -> Any:
    """A readable file object of a stored object, for the site to stream (no CDN)."""
    if is_s3():
        return _client().get_object(Bucket=settings.CHAT_UPLOADS_BUCKET, Key=key)["Body"]
    return storage().open(key, "rb")


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


def write(key: str, data: bytes, content_type: str, disposition: str = "") -> None:
    """Write (replace) an object only the server writes; on S3 with the headers it is served
    with (Content-Type, Content-Disposition, Cache-Control)."""
    target = storage()
    if is_s3():
        _client().put_object(
            Bucket=settings.CHAT_UPLOADS_BUCKET,
            Key=key,
            Body=data,
            ServerSideEncryption="AES256",
            **_served_as(content_type, disposition),
        )
        return
    if target.exists(key):
        target.delete(key)
    target.save(key, ContentFile(data))


def promote(source: str, target: str, content_type: str, disposition: str) -> None:
    """Move a verified file out of incoming/ (server-side on S3: no byte through here)."""
    if is_s3():
        _client().copy_object(
            Bucket=settings.CHAT_UPLOADS_BUCKET,
            Key=target,
            CopySource={"Bucket": settings.CHAT_UPLOADS_BUCKET, "Key": source},
            MetadataDirective="REPLACE",
            ServerSideEncryption="AES256",
            **_served_as(content_type, disposition),
        )
    else:
        write(target, read(source), content_type)
    delete(source)


CACHE_CONTROL = "private, max-age=300"


def _served_as(content_type: str, disposition: str) -> dict[str, str]:
    headers = {"ContentType": content_type, "CacheControl": CACHE_CONTROL}
    if disposition:
        headers["ContentDisposition"] = disposition
    return headers


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
