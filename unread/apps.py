from __future__ import annotations

from django.apps import AppConfig


class UnreadConfig(AppConfig):
    name = "unread"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Unread and notifications"

    def ready(self) -> None:
        # Web Push and SNS are off until configured; half a configuration stops the start.
        from chat import services as chat_services
        from unread import services
        from unread.push import check_settings

        check_settings()
        chat_services.resolve_mentions = services.mentions_for
        chat_services.after_message = services.message_stored
