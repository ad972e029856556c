"""Who is told of a new message while away, and one push per room per burst.

A stored message (unread.services.message_stored) names its recipients: the users it
mentions, the other member of a direct message (a private room of two), and those who asked
for every message of the room; never its author, a muted room or a room set to "nothing".
Each (user, room) waits CHAT_PUSH_BATCH_SECONDS for more, then `_deliver` checks again what
may have changed meanwhile (the user opened a socket, the message was removed, the user was
banned or left the room) and sends one notification for the burst: Web Push to every browser
subscription, SNS to every device. Users with an open socket get nothing here: their
browser shows a Notification itself when the tab is hidden (static/chat/core/notify.js).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Final

from asgiref.sync import sync_to_async
from django.conf import settings

from chat import services as chat_services
from chat.records import MessageRecord, Room
from chat.storage import get_store
from unread import push
from unread.models import Device, Level, PushSubscription, RoomNotify

log = logging.getLogger(__name__)

BODY_CHARS: Final = 200


@dataclass
class _Burst:
    user_id: str
    room: Room
    messages: list[MessageRecord] = field(default_factory=list)


_bursts: dict[tuple[str, str], _Burst] = {}
_tasks: set[asyncio.Task[None]] = set()


def enabled() -> bool:
    return push.web_push_enabled() or bool(settings.CHAT_PUSH_SNS_APNS_ARN or settings.CHAT_PUSH_SNS_FCM_ARN)


def recipients(*, message: MessageRecord, room: Room) -> list[str]:
    """Who may be told of `message` (before the checks at delivery). Synchronous."""
    wanted = set(message.mentions)
    members: list[str] | None = None
    if room.private:
        members = get_store().room_members(room.room_id)
        if len(members) == 2:  # a direct message
            wanted |= set(members)
    rows = RoomNotify.objects.filter(room_id=room.room_id)
    wanted |= set(rows.filter(level=Level.ALL, muted=False).values_list("user_id", flat=True))
    quiet = set(rows.filter(muted=True).values_list("user_id", flat=True)) | set(
        rows.filter(level=Level.NOTHING).values_list("user_id", flat=True)
    )
    wanted -= quiet
    wanted.discard(message.user_id)
    if members is not None:
        wanted &= set(members)  # a mention of a non-member reaches nobody
    return sorted(wanted)


async def message_stored(*, message: MessageRecord, room: Room) -> None:
    if not enabled():
        return
    users: list[str] = await sync_to_async(recipients)(message=message, room=room)
    for user_id in users:
        key = (user_id, room.room_id)
        burst = _bursts.get(key)
        if burst is None:
            burst = _bursts[key] = _Burst(user_id=user_id, room=room)
            task = asyncio.get_running_loop().create_task(_after_batch(key))
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)
        burst.messages.append(message)


async def _after_batch(key: tuple[str, str]) -> None:
    await asyncio.sleep(settings.CHAT_PUSH_BATCH_SECONDS)
    burst = _bursts.pop(key, None)
    if burst is None:
        return
    try:
        await sync_to_async(deliver, thread_sensitive=False)(burst)
    except Exception:
        log.exception("push for user=%s room=%s failed", burst.user_id, burst.room.room_id)


def _still_wanted(burst: _Burst) -> list[MessageRecord]:
    """The burst's messages that may still be told now, or [] (see the module's rules)."""
    store = get_store()
    now = chat_services.utcnow()
    user_id, room = burst.user_id, burst.room
    if store.connections_for_user(user_id=user_id, now=now):
        return []  # online: the open tab notifies
    if chat_services._banned(user_id):
        return []
    current = store.get_room(room.room_id)
    if current is None or (current.private and not store.is_member(room_id=room.room_id, user_id=user_id)):
        return []
    if RoomNotify.objects.filter(user_id=user_id, room_id=room.room_id, muted=True).exists():
        return []
    membership = store.get_membership(room_id=room.room_id, user_id=user_id)
    if membership is not None and membership.muted:
        return []  # muted in the user's own room list (the muteRoom action): just as quiet
    live = []
    for message in burst.messages:
        now_is = store.get_message(room_id=room.room_id, message_id=message.message_id, now=now)
        if now_is is not None and now_is.removed is None:
            live.append(now_is)
    return live


def notification(room: Room, messages: list[MessageRecord]) -> dict[str, Any]:
    """What the push says: the room, the sender and the text (one per burst)."""
    # In seq order: each message joins its burst from a task of its own after its ack, and on
    # DynamoDB those tasks' store calls run in parallel threads, so they may join out of order
    # (the newest message was told as the one before it, once in a clean-clone run).
    messages = sorted(messages, key=lambda message: message.seq)
    first, last = messages[0], messages[-1]
    title = (
        f"{last.username} in #{room.name}" if len(messages) == 1 else f"{len(messages)} new messages in #{room.name}"
    )
    text = last.text if len(last.text) <= BODY_CHARS else last.text[: BODY_CHARS - 1] + "…"
    return {
        "title": title,
        "body": text if len(messages) == 1 else f"{last.username}: {text}",
        "roomId": room.room_id,
        "seq": first.seq,
        "url": f"/rooms/{room.room_id}/#seq-{first.seq}",
        "count": len(messages),
    }


def deliver(burst: _Burst) -> None:
    """Send one burst's notification to every subscription and device of its user. Blocking."""
    messages = _still_wanted(burst)
    if not messages:
        return
    message = notification(burst.room, messages)
    for row in PushSubscription.objects.filter(user_id=burst.user_id):
        subscription = push.Subscription(endpoint=row.endpoint, p256dh=row.p256dh, auth=row.auth)
        try:
            status = push.send_web_push(subscription, message)
        except push.BadSubscription:
            row.delete()  # an endpoint that now points inside: never again
            continue
        except OSError:
            log.warning("push service unreachable for subscription=%s", row.pk)
            continue
        if status in (404, 410):
            row.delete()  # the browser unsubscribed, or the push service expired it
        elif status >= 400:
            log.warning("push service answered %s for subscription=%s", status, row.pk)
    for device in Device.objects.filter(user_id=burst.user_id):
        try:
            push.sns_publish(endpoint_arn=device.endpoint_arn, message=message)
        except Exception as exc:
            if "EndpointDisabled" in str(exc) or "NotFound" in str(exc):
                device.delete()
            else:
                log.warning("SNS publish failed for device=%s", device.pk, exc_info=True)
    log.info("push user=%s room=%s messages=%d", burst.user_id, burst.room.room_id, len(messages))


def pending() -> int:
    """How many messages wait in bursts for their batch to end."""
    return sum(len(burst.messages) for burst in _bursts.values())


async def flush_now() -> None:
    """Deliver every waiting burst now, not at the end of its batch (tests; a graceful stop)."""
    for task in list(_tasks):
        task.cancel()
    bursts = list(_bursts.values())
    _bursts.clear()
    for burst in bursts:
        await sync_to_async(deliver, thread_sensitive=False)(burst)
