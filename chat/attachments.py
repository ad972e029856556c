"""Attachments on messages: where the chat core meets the uploads app (issue 18).

The core knows an attachment only as an upload id a sender names in `sendMessage` and as the
small record stored with the message (chat.records.NewMessage.attachments). Everything about
files (storage, verification, URLs) is the uploads app's: it registers two hooks here when
it loads, so the pure protocol module can mint download URLs for a frame and the send
service can claim uploads, without the core importing the uploads app. With no uploads app
installed, a message naming attachments is refused and frames carry no URLs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Iterable
from typing import Any, Final, Protocol

UPLOAD_ID_RE: Final = re.compile(r"^[0-9a-f]{32}\Z")


class Uploads(Protocol):
    """What the uploads app provides to the core."""

    def claim(
        self, *, identity: Any, room_id: str, upload_ids: tuple[str, ...], client_message_id: str | None
    ) -> Awaitable[tuple[dict[str, Any], ...]]:
        """Verify and claim the sender's uploads for one message: each its own, received, of
        an allowed type, for this room, and not claimed by another message (a retry of the
        same clientMessageId gets the same claim). Raises ChatError; claims nothing then."""
        ...

    def bind(self, *, upload_ids: tuple[str, ...], room_id: str, message_id: str, ttl: int) -> Awaitable[None]:
        """The message is stored: the uploads live as long as it does."""
        ...

    def release(self, *, upload_ids: tuple[str, ...]) -> Awaitable[None]:
        """The message was not stored: the claims are given back."""
        ...

    def urls(self, entry: dict[str, Any]) -> dict[str, Any]:
        """An attachment record as a frame shows it: with short-lived download URLs."""
        ...

    def forget(self, message_ids: list[str]) -> None:
        """These messages were deleted: their files go now. Synchronous."""
        ...

    def purge(self) -> int:
        """Delete the files of expired messages and uploads never attached. Synchronous."""
        ...


_uploads: Uploads | None = None


def register(uploads: Uploads | None) -> None:
    global _uploads
    _uploads = uploads


def provider() -> Uploads | None:
    return _uploads


def frame_entries(entries: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """A message's attachments as a frame carries them (URLs minted now)."""
    if _uploads is None:
        return [dict(entry) for entry in entries]
    return [_uploads.urls(entry) for entry in entries]


def messages_deleted(messages: Iterable[Any]) -> None:
    """Moderation deleted these messages (chat.records.MessageRecord): delete their files
    once the caller's transaction commits. Synchronous."""
    from django.db import transaction  # here: the protocol module imports this one, pure

    ids = [m.message_id for m in messages if m.attachments]
    if ids and _uploads is not None:
        uploads = _uploads
        transaction.on_commit(lambda: uploads.forget(ids), robust=True)


def purge() -> int:
    """The expiry purge's part for files (manage.py purge_expired). Synchronous."""
    return _uploads.purge() if _uploads is not None else 0
