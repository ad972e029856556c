from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        from accounts import auth, redact, revocation, sessions  # noqa: F401 - auth connects its setting_changed receiver

        redact.install_access_log_redaction()
        revocation.connect()
        sessions.connect()
