"""Reads of uploads: quotas' sums and what a download may serve. Selectors never write."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from django.db.models import Sum
from django.db.models.functions import Coalesce

from uploads.models import Upload

# What an upload weighs in a quota: the size of the verified object once there is one (what
# the storage really holds: fewer bytes than announced, or an image re-encoded without its
# EXIF), and until then what its slot announced, reserved so that many slots asked at once
# cannot together pass the quota before any of them is verified.
_WEIGHT: Final = Coalesce("size", "declared_size")


def bytes_by_user_since(*, user_id: str, since: datetime) -> int:
    """What a user uploaded (or holds a slot for) since then."""
    total = Upload.objects.filter(user_id=user_id, created_at__gte=since).aggregate(n=Sum(_WEIGHT))["n"]
    return int(total or 0)


def bytes_in_room(*, room_id: str) -> int:
    """What a room holds (every upload not purged yet)."""
    return int(Upload.objects.filter(room_id=room_id).aggregate(n=Sum(_WEIGHT))["n"] or 0)


def upload_of(*, upload_id: str) -> Upload | None:
    return Upload.objects.filter(pk=upload_id).first()


def stale(*, now: datetime, unattached_seconds: int) -> list[Upload]:
    """Uploads to delete: never attached within their hour, or whose message has expired."""
    cutoff = now - timedelta(seconds=unattached_seconds)
    unattached = Upload.objects.filter(message_id="", created_at__lt=cutoff)
    expired = Upload.objects.filter(expires_at__lt=now)
    return list(unattached.union(expired))
