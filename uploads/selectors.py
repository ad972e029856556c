"""Reads of uploads: quotas' sums and what a download may serve. Selectors never write."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Sum

from uploads.models import Upload


def bytes_by_user_since(*, user_id: str, since: datetime) -> int:
    """What a user asked to upload since then (declared sizes: a slot counts before its bytes)."""
    total = Upload.objects.filter(user_id=user_id, created_at__gte=since).aggregate(n=Sum("declared_size"))["n"]
    return int(total or 0)


def bytes_in_room(*, room_id: str) -> int:
    """What a room holds (every upload not purged yet)."""
    return int(Upload.objects.filter(room_id=room_id).aggregate(n=Sum("declared_size"))["n"] or 0)


def upload_of(*, upload_id: str) -> Upload | None:
    return Upload.objects.filter(pk=upload_id).first()


def stale(*, now: datetime, unattached_seconds: int) -> list[Upload]:
    """Uploads to delete: never attached within their hour, or whose message has expired."""
    cutoff = now - timedelta(seconds=unattached_seconds)
    unattached = Upload.objects.filter(message_id="", created_at__lt=cutoff)
    expired = Upload.objects.filter(expires_at__lt=now)
    return list(unattached.union(expired))
