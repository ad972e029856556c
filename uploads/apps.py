from __future__ import annotations

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat import attachments
        from uploads.provider import UploadsProvider

        attachments.register(UploadsProvider())
