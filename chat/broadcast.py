"""The one place that sends to channel-layer groups.

Services call `message_stored` only after the store has durably written the message. The
frame is serialised once here and carried to every member as text, so no consumer
re-serialises it. Event types are fixed in this module; a client frame can never choose one.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from channels.layers import get_channel_layer

from chat import metrics, protocol
from chat.storage.base import MessageRecord

log = logging.getLogger(__name__)

MESSAGE_EVENT: Final = "chat.message"


def room_group(room_id: str) -> str:
    """Channel-layer group of a room. Room ids are validated by chat.protocol first."""
    return f"chat.room.{protocol.validate_room_id(room_id)}"


def message_event(message: MessageRecord) -> dict[str, Any]:
    return {
        "type": MESSAGE_EVENT,
        "room_id": message.room_id,
        "seq": message.seq,
        "text": protocol.encode(protocol.message_frame(message)),
    }


async def message_stored(message: MessageRecord) -> None:
    """Tell every socket joined to the room. A lost event is repaired by seq, not hidden:

    consumers notice the gap on the next event and read what they missed from the store,
    and clients resume from their last seq after a reconnect.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        with metrics.broadcast_timer():
            await layer.group_send(room_group(message.room_id), message_event(message))
    except Exception:
        # The message is stored and will be acked; receivers repair the gap by seq.
        metrics.record_drop("send_failed")
        log.exception("broadcast failed room=%s seq=%s", message.room_id, message.seq)


async def join(room_id: str, channel_name: str) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_add(room_group(room_id), channel_name)


async def leave(room_id: str, channel_name: str) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_discard(room_group(room_id), channel_name)
