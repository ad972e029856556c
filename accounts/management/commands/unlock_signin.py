"""manage.py unlock_signin: forgive the failed sign-ins of an account or a client address."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import throttle


class Command(BaseCommand):
    help = (
        "Clear the failed sign-in count of an account (by username) and/or a client address, so they "
        "may sign in again at once. Reaches every process through Redis (REDIS_URL); without Redis "
        "the counts live in each server process, which only a restart or the window's end clears."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", help="the account's username")
        parser.add_argument("--address", help="a client IP address")

    def handle(self, *args: Any, **options: Any) -> None:
        username, address = options.get("username"), options.get("address")
        if not username and not address:
            raise CommandError("name a username, an --address, or both")
        if not settings.REDIS_URL:
            self.stderr.write(
                "REDIS_URL is not set: sign-in counts live in each server process, out of this "
                "command's reach. Restart the servers, or wait for the window to end."
            )
        cleared = throttle.unlock(username=username, address=address)
        who = " and ".join(filter(None, [f"account {username!r}" if username else "", address or ""]))
        self.stdout.write(f"Unlocked {who}." if cleared else f"No failed sign-ins recorded for {who}.")
