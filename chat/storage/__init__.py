"""The one place that chooses the storage backend from settings."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed

from chat.storage.base import ChatStore


@lru_cache(maxsize=1)
def get_store() -> ChatStore:
    backend = settings.CHAT_STORAGE_BACKEND
    if backend == "local":
        from chat.storage.local import LocalStore

        return LocalStore()
    if backend == "dynamodb":
        from chat.storage.dynamodb import DynamoDBStore

        return DynamoDBStore.from_settings()  # type: ignore[no-any-return]
    raise ValueError(f"unknown CHAT_STORAGE_BACKEND {backend!r}")


def _reset(*, setting: str, **kwargs: object) -> None:
    if setting.startswith("CHAT_STORAGE") or setting.startswith("DYNAMODB"):
        get_store.cache_clear()


setting_changed.connect(_reset)
