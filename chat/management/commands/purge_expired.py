"""manage.py purge_expired: delete expired messages and connections from the store."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from chat import services


class Command(BaseCommand):
    help = "Delete messages and connection rows whose ttl has passed (reads already ignore them)."

    def handle(self, *args: Any, **options: Any) -> None:
        removed = services.expired_purge()
        self.stdout.write(f"purged {removed} expired records")
