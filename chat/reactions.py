"""Reactions: one Unicode emoji per user per emoji on a message, as room events.

`valid_emoji` is the rule (pure): a reaction is exactly one emoji as Unicode's emoji data
(the `emoji` package, kept current with Unicode releases) knows it, a single grapheme cluster
with its modifiers and joiners; not text, not two emoji. `reaction_change` stores the change
with the room's next seq (chat.storage: atomic on both backends) and sends the reactions
event through the one room-event helper.
"""

from __future__ import annotations

from typing import Final

import emoji as emoji_data
from django.conf import settings

from accounts.identity import Identity
from chat.errors import ChatError, ErrorCode
from chat.message_changes import Changed, _found, changeable_room, find_message
from chat.services import event_of, room_change, utcnow
from chat.storage import get_store

# The longest emoji sequences (families, flags of subdivisions) are under 40 code points.
MAX_EMOJI_CHARS: Final = 40


def valid_emoji(value: str) -> bool:
    """Whether `value` is exactly one emoji (one grapheme cluster that is an emoji)."""
    if not value or len(value) > MAX_EMOJI_CHARS:
        return False
    return bool(emoji_data.is_emoji(value))


def emoji_refusal(value: str) -> ChatError | None:
    if valid_emoji(value):
        return None
    return ChatError(ErrorCode.INVALID_EMOJI, "a reaction is exactly one emoji")


async def reaction_change(*, identity: Identity, room_id: str, message_id: str, emoji: str, add: bool) -> Changed:
    """Add (or remove) the user's reaction; everyone in the room gets the message's reactions.
    Adding one twice, or removing one that is not there, changes nothing and is no error."""
    refused = emoji_refusal(emoji)
    if refused is not None:
        refused.room_id = room_id
        raise refused
    now = utcnow()
    await changeable_room(room_id=room_id, identity=identity, now=now)
    message = await find_message(identity=identity, room_id=room_id, message_id=message_id)
    missing = _found(message, room_id=room_id, message_id=message_id)
    if missing is not None:
        raise missing
    assert message is not None
    if message.removed is not None:
        raise ChatError(ErrorCode.MESSAGE_REMOVED, "that message was removed", room_id=room_id)
    limit = settings.CHAT_MAX_REACTIONS_PER_MESSAGE
    result = await room_change(
        get_store().change_reaction,
        room_id=room_id,
        message_id=message_id,
        user_id=identity.user_id,
        emoji=emoji,
        add=add,
        max_distinct=limit,
        now=now,
        ttl_seconds=settings.CHAT_MESSAGE_TTL_SECONDS,
        stored=event_of,
    )
    if result is None:
        raise ChatError(ErrorCode.MESSAGE_REMOVED, "that message was removed", room_id=room_id)
    if add and result.event is None and emoji not in dict(result.message.reactions):
        raise ChatError(
            ErrorCode.TOO_MANY_REACTIONS, f"a message takes at most {limit} different reactions", room_id=room_id
        )
    return Changed(result.message, None if result.event is None else result.event.seq)
