"""ENGINE "chatsite.db.postgresql" (every postgres:// DATABASE_URL): Django's PostgreSQL backend
with two changes.

- The password from a rotated secret, when the DATABASES entry names one in PASSWORD_SECRET
  (DATABASE_PASSWORD_SECRET; `chatsite.dburl` sets it).
- The health check (CONN_HEALTH_CHECKS) skipped for a connection that finished a trip without
  an error less than SOUND_FOR_SECONDS ago. Django pings a persistent connection with a
  `SELECT 1` before the first query after every `close_old_connections()`, which
  `database_sync_to_async` calls around each call: one more round trip for each trip off the
  event loop, a socket's open three, each message one (docs/performance.md, "A ping less per
  trip on PostgreSQL"). A connection that broke since its last trip fails that trip, as one
  that breaks between the ping and the query always could: the store call answers
  storage_unavailable, which clients retry, and the next trip finds the connection closed
  (Django closes it after an error it cannot use) and opens another. An idle connection is
  still pinged before its first use.
"""

from __future__ import annotations

from time import monotonic
from typing import Any, Final

import psycopg
from django.db.backends.postgresql import base

from chatsite.db.password import rotating_password

SOUND_FOR_SECONDS: Final = 5.0


class DatabaseWrapper(base.DatabaseWrapper):  # type: ignore[misc]
    _sound_at = float("-inf")
    health_check_done: bool

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        secret = self.settings_dict.get("PASSWORD_SECRET")
        if secret:
            params["password"] = rotating_password(secret).current()
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        secret = self.settings_dict.get("PASSWORD_SECRET")
        try:
            return super().get_new_connection(conn_params)
        except psycopg.OperationalError:
            if not secret:
                raise
            # Refused: if the secret now holds another password (it was rotated), log in with that.
            retry = rotating_password(secret).after_refusal(conn_params["password"])
            if retry is None:
                raise
            return super().get_new_connection({**conn_params, "password": retry})

    def close_if_unusable_or_obsolete(self) -> None:
        # Called before and after each trip; health_check_done says a cursor was made since the
        # last call (the trip used the connection), so only the call after a trip counts.
        used = self.health_check_done
        super().close_if_unusable_or_obsolete()
        if used and self.connection is not None and not self.errors_occurred:
            self._sound_at = monotonic()

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and not self.health_check_done
            and monotonic() - self._sound_at < SOUND_FOR_SECONDS
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
