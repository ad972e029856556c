"""Prometheus counters of shared files: uploads verified, their bytes, and refusals by code."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter

UPLOADS: Final = Counter("chatsite_uploads", "Files verified and ready to share")
UPLOAD_BYTES: Final = Counter("chatsite_upload_bytes", "Bytes of files verified")
REFUSED: Final = Counter("chatsite_upload_refusals", "Upload requests refused, by error code", ["code"])


def uploaded(size: int) -> None:
    UPLOADS.inc()
    UPLOAD_BYTES.inc(size)


def refused(code: str) -> None:
    REFUSED.labels(code=code).inc()
