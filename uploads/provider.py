"""The uploads app as the chat core sees it (chat.attachments.Uploads): claims for a
message on its way, and download URLs in frames. Registered by uploads.apps."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from accounts.identity import Identity
from uploads import services, signing


class UploadsProvider:
    async def claim(
        self, *, identity: Identity, room_id: str, upload_ids: tuple[str, ...], client_message_id: str | None
    ) -> tuple[dict[str, Any], ...]:
        claimed: tuple[dict[str, Any], ...] = await database_sync_to_async(services.uploads_claim)(
            identity=identity, room_id=room_id, upload_ids=upload_ids, client_message_id=client_message_id
        )
        return claimed

    async def bind(self, *, upload_ids: tuple[str, ...], room_id: str, message_id: str, ttl: int) -> None:
        await database_sync_to_async(services.uploads_bind)(
            upload_ids=upload_ids, room_id=room_id, message_id=message_id, ttl=ttl
        )

    async def release(self, *, upload_ids: tuple[str, ...]) -> None:
        await database_sync_to_async(services.uploads_release)(upload_ids=upload_ids)

    def urls(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The frame's entry: the record without its thumbnail flag, with signed URLs."""
        shown = {key: value for key, value in entry.items() if key != "thumbnail"}
        upload_id = str(entry.get("id", ""))
        shown["url"] = signing.signed_url(upload_id, "file")
        shown["thumbnailUrl"] = signing.signed_url(upload_id, "thumbnail") if entry.get("thumbnail") else None
        return shown

    def forget(self, message_ids: list[str]) -> None:
        services.uploads_forget(message_ids=message_ids)

    def purge(self) -> int:
        return services.uploads_purge()
