"""manage.py ensure_demo_users: the embedded default's demo accounts, alice and bob."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_USERS


class Command(BaseCommand):
    help = "Create the demo accounts (development only) and print how to sign in."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo accounts are for the embedded default only, not CHATSITE_ENV=production")
        user_model = get_user_model()
        created = []
        for name in DEMO_USERS:
            if not user_model.objects.filter(username=name).exists():
                user_model.objects.create_user(username=name, password=settings.DEMO_PASSWORD)
                created.append(name)
        if created:
            self.stdout.write(f"Created demo accounts: {', '.join(created)}")
        self.stdout.write(
            f"Sign in as {' or '.join(DEMO_USERS)} with password {settings.DEMO_PASSWORD!r} "
            "(open a second browser or a private window for the second user), or sign up."
        )
