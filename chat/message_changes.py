"""Messages people change: edit and delete their own, reply to one, read a thread.

The rules (`edit_refusal`, `delete_refusal`, `reply_refusal`, `excerpt`) are pure: they see a
message as the store has it and answer with the ChatError a client gets, or None. The
services below them read, check, write through the store and send the room event with the
one room-event helper (chat.services.room_change), so an edit or a deletion takes the room's
next seq and a client resuming with lastSeq gets it like a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.conf import settings

from accounts.identity import Identity
from chat import attachments as chat_attachments
from chat import events
from chat.errors import ChatError, ErrorCode
from chat.moderation_models import Mute
from chat.records import DELETED, MessageRecord, ReplyRef, Room
from chat.services import _readable_room, _store_call, event_of, message_send, room_access, room_change, utcnow
from chat.storage import get_store

# How much of the original a reply quotes: one line, enough to recognise it.
EXCERPT_CHARS = 100


# --- rules (pure) ------------------------------------------------------------------------------


def _found(message: MessageRecord | None, *, room_id: str, message_id: str) -> ChatError | None:
    if message is None:
        return ChatError(ErrorCode.UNKNOWN_MESSAGE, f"no message {message_id!r}", room_id=room_id)
    if message.room_id != room_id:
        return ChatError(ErrorCode.MESSAGE_IN_OTHER_ROOM, "that message is in another room", room_id=room_id)
    return None


def edit_refusal(
    *, message: MessageRecord | None, message_id: str, room_id: str, user_id: str, now: datetime, window_seconds: int
) -> ChatError | None:
    """Why `user_id` may not edit the message now, or None. Only the author edits, never a
    removed message (hidden by a moderator or deleted), and within the edit window (0: none)."""
    missing = _found(message, room_id=room_id, message_id=message_id)
    if missing is not None or message is None:
        return missing
    if message.removed is not None:
        return ChatError(ErrorCode.MESSAGE_REMOVED, "that message was removed", room_id=room_id)
    if message.user_id != user_id:
        return ChatError(ErrorCode.NOT_AUTHOR, "only its author may edit a message", room_id=room_id)
    if window_seconds and now - message.timestamp > timedelta(seconds=window_seconds):
        return ChatError(
            ErrorCode.EDIT_WINDOW_CLOSED,
            f"messages can be edited for {window_seconds} seconds after they are sent",
            room_id=room_id,
        )
    return None


def delete_refusal(*, message: MessageRecord | None, message_id: str, room_id: str, user_id: str) -> ChatError | None:
    """Why `user_id` may not delete the message, or None. Only the author deletes; deleting
    one's own tombstone again is no error (a retry), and changes nothing clients see."""
    missing = _found(message, room_id=room_id, message_id=message_id)
    if missing is not None or message is None:
        return missing
    if message.user_id != user_id:
        return ChatError(ErrorCode.NOT_AUTHOR, "only its author may delete a message", room_id=room_id)
    return None


def reply_refusal(*, original: MessageRecord | None, message_id: str, room_id: str) -> ChatError | None:
    """Why a message may not reply to `original`: it must be a live message of the same room."""
    missing = _found(original, room_id=room_id, message_id=message_id)
    if missing is not None or original is None:
        return missing
    if original.removed is not None:
        return ChatError(ErrorCode.MESSAGE_REMOVED, "that message was removed", room_id=room_id)
    return None


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of a message on one line, cut at `limit` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def reply_ref(original: MessageRecord) -> ReplyRef:
    return ReplyRef(
        message_id=original.message_id, seq=original.seq, username=original.username, excerpt=excerpt(original.text)
    )


# --- services ----------------------------------------------------------------------------------


def _change_restriction(*, room: Room, identity: Identity, now: datetime) -> ChatError | None:
    """An archived room takes no changes; a muted user changes nothing (an edit is a post)."""
    if room.archived:
        return ChatError(ErrorCode.ROOM_ARCHIVED, "this room is archived: it takes no changes", room_id=room.room_id)
    if Mute.until(user_id=identity.user_id, room_id=room.room_id, now=now) is not None:
        return ChatError(ErrorCode.MUTED, "you are muted", room_id=room.room_id)
    return None


async def changeable_room(*, room_id: str, identity: Identity, now: datetime) -> Room:
    """The room, if `identity` may read it and change messages in it now."""
    room = await _readable_room(room_id, identity)
    refused = await database_sync_to_async(_change_restriction)(room=room, identity=identity, now=now)
    if refused is not None:
        raise refused
    return room


async def find_message(*, identity: Identity, room_id: str, message_id: str) -> MessageRecord | None:
    """The message named in a change to `room_id` (a room `identity` may read), or None.

    A message of another room that `identity` may not read (a private room's) is None too:
    its id must tell a non-member nothing, so the answer is the one for no message at all
    (unknown_message), never message_in_other_room (docs/auth.md). A readable other room is
    said (message_in_other_room): a client that mixed up two of its rooms learns why.
    """
    message = await _store_call(get_store().find_message, message_id=message_id, now=utcnow())
    if message is not None and message.room_id != room_id:
        if not await room_access(room_id=message.room_id, identity=identity):
            return None
    return message


@dataclass(frozen=True, slots=True)
class Changed:
    """What a change did: the message now, and the seq of its event (None: nothing changed)."""

    message: MessageRecord
    seq: int | None


async def message_edit(
    *, identity: Identity, room_id: str, message_id: str, text: str, client_message_id: str | None
) -> Changed:
    """The author replaces their message's text; everyone in the room gets messageEdited."""
    now = utcnow()
    await changeable_room(room_id=room_id, identity=identity, now=now)
    message = await find_message(identity=identity, room_id=room_id, message_id=message_id)
    refused = edit_refusal(
        message=message,
        message_id=message_id,
        room_id=room_id,
        user_id=identity.user_id,
        now=now,
        window_seconds=settings.CHAT_EDIT_WINDOW_SECONDS,
    )
    if refused is not None:
        raise refused
    result = await room_change(
        get_store().edit_message,
        room_id=room_id,
        message_id=message_id,
        text=text,
        client_message_id=client_message_id,
        now=now,
        ttl_seconds=settings.CHAT_MESSAGE_TTL_SECONDS,
        stored=event_of,
    )
    if result is None:  # removed between the read and the write
        raise ChatError(ErrorCode.MESSAGE_REMOVED, "that message was removed", room_id=room_id)
    return Changed(result.message, None if result.event is None else result.event.seq)


async def message_delete(*, identity: Identity, room_id: str, message_id: str) -> Changed:
    """The author deletes their message: a tombstone, its text (and earlier versions) erased,
    and messageRemoved with removedBy "author"."""
    now = utcnow()
    await _readable_room(room_id, identity)
    message = await find_message(identity=identity, room_id=room_id, message_id=message_id)
    refused = delete_refusal(message=message, message_id=message_id, room_id=room_id, user_id=identity.user_id)
    if refused is not None:
        raise refused
    result = await room_change(
        get_store().remove_message,
        room_id=room_id,
        message_id=message_id,
        removal=DELETED,
        removed_by=events.BY_AUTHOR,
        now=now,
        ttl_seconds=settings.CHAT_MESSAGE_TTL_SECONDS,
        stored=event_of,
    )
    if result is None:
        raise ChatError(ErrorCode.UNKNOWN_MESSAGE, f"no message {message_id!r}", room_id=room_id)
    # Its files go with its text, as for a moderator's delete (issue 18): the tombstone already
    # makes their URLs answer 404; this deletes the bytes. `message` (read before the write)
    # names them whatever the store keeps on a tombstone.
    await database_sync_to_async(chat_attachments.messages_deleted)([message])
    return Changed(result.message, None if result.event is None else result.event.seq)


async def reply_target(*, identity: Identity, room_id: str, message_id: str) -> ReplyRef:
    """What a new reply quotes of the message it answers (checked: same room, not removed)."""
    original = await find_message(identity=identity, room_id=room_id, message_id=message_id)
    refused = reply_refusal(original=original, message_id=message_id, room_id=room_id)
    if refused is not None:
        raise refused
    assert original is not None
    return reply_ref(original)


async def message_reply(
    *,
    identity: Identity,
    connection_id: str,
    room_id: str,
    text: str,
    client_message_id: str | None,
    reply_to: str,
    attachments: tuple[str, ...] = (),
) -> MessageRecord:
    """Send a message that replies to another of the same room (chat.services.message_send)."""
    await _readable_room(room_id, identity)
    quoted = await reply_target(identity=identity, room_id=room_id, message_id=reply_to)
    return await message_send(
        identity=identity,
        connection_id=connection_id,
        room_id=room_id,
        text=text,
        client_message_id=client_message_id,
        reply_to=quoted,
        attachments=attachments,
    )


@dataclass(frozen=True, slots=True)
class Thread:
    root: MessageRecord
    replies: list[MessageRecord]


async def thread_read(*, identity: Identity, room_id: str, message_id: str) -> Thread:
    """A message and its replies, in order."""
    await _readable_room(room_id, identity)
    root = await find_message(identity=identity, room_id=room_id, message_id=message_id)
    missing = _found(root, room_id=room_id, message_id=message_id)
    if missing is not None:
        raise missing
    assert root is not None
    replies = await _store_call(
        get_store().replies, room_id=room_id, message_id=message_id, limit=settings.CHAT_HISTORY_MAX_PAGE, now=utcnow()
    )
    return Thread(root, replies)


@dataclass(frozen=True, slots=True)
class AroundPage:
    messages: list[MessageRecord]
    has_more: bool  # older messages than the page's first
    has_newer: bool  # newer messages than the page's last


async def history_around(*, identity: Identity, room_id: str, around_seq: int, limit: int | None) -> AroundPage:
    """A page of history centred on a seq (a reply's original, a search hit): up to half the
    page at or below it and the rest above it, oldest first."""
    await _readable_room(room_id, identity)
    size = min(limit or settings.CHAT_HISTORY_PAGE, settings.CHAT_HISTORY_MAX_PAGE)
    below, above = size - size // 2, size // 2
    store, now = get_store(), utcnow()
    older = await _store_call(
        store.messages_before, room_id=room_id, before_seq=around_seq + 1, limit=below + 1, now=now
    )
    newer = await _store_call(store.messages_after, room_id=room_id, after_seq=around_seq, limit=above + 1, now=now)
    return AroundPage(
        messages=older[-below:] + newer[:above], has_more=len(older) > below, has_newer=len(newer) > above
    )


async def history_after(*, identity: Identity, room_id: str, after_seq: int, limit: int | None) -> AroundPage:
    """The messages after a seq, oldest first: how a client fills the gap between a page
    around a message far back (history_around) and the live end, page by page upwards,
    however long the gap is (beforeSeq pages from the top down had to stop somewhere)."""
    await _readable_room(room_id, identity)
    size = min(limit or settings.CHAT_HISTORY_PAGE, settings.CHAT_HISTORY_MAX_PAGE)
    store, now = get_store(), utcnow()
    newer = await _store_call(store.messages_after, room_id=room_id, after_seq=after_seq, limit=size + 1, now=now)
    older = await _store_call(store.messages_before, room_id=room_id, before_seq=after_seq + 1, limit=1, now=now)
    return AroundPage(messages=newer[:size], has_more=bool(older), has_newer=len(newer) > size)
