"""manage.py create_dynamodb_tables: create the DynamoDB backend's tables, indexes and TTL.

Creates what is missing (tables, global secondary indexes, TTL on `ttl`), waits until each
table is ACTIVE, prints what it did, and changes nothing on a second run. The definitions come
from chat.storage.schema; table names from DYNAMODB_*_TABLE, the region from AWS_REGION, and
AWS_ENDPOINT_URL(_DYNAMODB) points boto3 at a local stand-in.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.storage.dynamodb import ensure_tables, make_client, table_names_from_settings


class Command(BaseCommand):
    help = "Create the DynamoDB tables, indexes and TTL settings that are missing (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=600.0, help="Seconds to wait for each table or index to be ACTIVE."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tables = table_names_from_settings()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        client = make_client(region=settings.AWS_REGION)
        try:
            done = ensure_tables(client, tables, report=self.stdout.write, timeout=options["timeout"])
        except (RuntimeError, TimeoutError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{len(done)} change(s); the tables are ready" if done else "nothing to do")
