"""Services and selectors of what a user asked to be told and where: notification levels,
receipts, Web Push subscriptions and SNS devices. Synchronous: for the views."""

from __future__ import annotations

from typing import Any, Final

from django.db import transaction

from accounts.identity import Identity
from chat import protocol, services
from chat.errors import ChatError
from unread import push
from unread.models import Device, Level, Preference, PushSubscription, RoomNotify
from unread.push import BadSubscription

# A user's browsers and phones: past this the oldest subscription goes.
MAX_SUBSCRIPTIONS: Final = 20
MAX_TOKEN: Final = 512


def notification_settings(*, user_id: str) -> dict[str, Any]:
    preference = Preference.objects.filter(user_id=user_id).first()
    return {
        "vapidPublicKey": push.application_server_key(),
        "receipts": preference.send_receipts if preference is not None else True,
        "rooms": {
            row.room_id: {"level": row.level, "muted": row.muted} for row in RoomNotify.objects.filter(user_id=user_id)
        },
        "subscriptions": PushSubscription.objects.filter(user_id=user_id).count(),
        "devices": Device.objects.filter(user_id=user_id).count(),
    }


def preferences_set(*, user_id: str, body: dict[str, Any]) -> None:
    receipts = body.get("receipts")
    if not isinstance(receipts, bool):
        raise BadSubscription("receipts", "'receipts' must be true or false")
    Preference.objects.update_or_create(user_id=user_id, defaults={"send_receipts": receipts})


def subscription_add(*, user_id: str, body: dict[str, Any]) -> None:
    subscription = push.parse_subscription(body)
    with transaction.atomic():
        PushSubscription.objects.update_or_create(
            endpoint=subscription.endpoint,
            defaults={"user_id": user_id, "p256dh": subscription.p256dh, "auth": subscription.auth},
        )
        mine = PushSubscription.objects.filter(user_id=user_id).order_by("-created_at", "-pk")
        stale = list(mine.values_list("pk", flat=True)[MAX_SUBSCRIPTIONS:])
        if stale:
            PushSubscription.objects.filter(pk__in=stale).delete()


def subscription_remove(*, user_id: str, endpoint: str) -> bool:
    deleted, _ = PushSubscription.objects.filter(user_id=user_id, endpoint=endpoint).delete()
    return deleted > 0


def device_add(*, user_id: str, body: dict[str, Any]) -> str:
    platform, token = body.get("platform"), body.get("token")
    if platform not in Device.Platform.values:
        raise BadSubscription("platform", "'platform' must be 'apns' or 'fcm'")
    if not push.sns_application(platform):
        raise BadSubscription("platform", f"mobile push for {platform} is not configured on this server")
    if not isinstance(token, str) or not 8 <= len(token) <= MAX_TOKEN or not token.isprintable() or " " in token:
        raise BadSubscription("token", f"'token' must be a device token of 8-{MAX_TOKEN} printable characters")
    arn = push.sns_register(platform=platform, token=token, user_id=user_id)
    Device.objects.update_or_create(platform=platform, token=token, defaults={"user_id": user_id, "endpoint_arn": arn})
    return arn


def room_level_set(*, identity: Identity, body: dict[str, Any]) -> None:
    room_id = body.get("roomId")
    try:
        room_id = protocol.validate_room_id(room_id)
    except ChatError:
        raise BadSubscription("roomId", "'roomId' is not a room id") from None
    room = services.room_get(room_id)
    if room is None or not services.room_readable(room=room, identity=identity):
        raise BadSubscription("roomId", "no such room")
    level, muted = body.get("level"), body.get("muted")
    if level is not None and level not in Level.values:
        raise BadSubscription("level", "'level' must be 'all', 'mentions' or 'nothing'")
    if muted is not None and not isinstance(muted, bool):
        raise BadSubscription("muted", "'muted' must be true or false")
    defaults: dict[str, Any] = {}
    if level is not None:
        defaults["level"] = level
    if muted is not None:
        defaults["muted"] = muted
    RoomNotify.objects.update_or_create(user_id=identity.user_id, room_id=room_id, defaults=defaults)
