"""ENGINE "chatsite.db.postgresql": Django's PostgreSQL backend with the password from a rotated secret.

The DATABASES entry names the secret in PASSWORD_SECRET (DATABASE_PASSWORD_SECRET;
`chatsite.dburl` sets it). Everything else is Django's backend unchanged.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db.backends.postgresql import base

from chatsite.db.password import rotating_password


class DatabaseWrapper(base.DatabaseWrapper):  # type: ignore[misc]
    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params["password"] = rotating_password(self.settings_dict["PASSWORD_SECRET"]).current()
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        try:
            return super().get_new_connection(conn_params)
        except psycopg.OperationalError:
            # Refused: if the secret now holds another password (it was rotated), log in with that.
            retry = rotating_password(self.settings_dict["PASSWORD_SECRET"]).after_refusal(conn_params["password"])
            if retry is None:
                raise
            return super().get_new_connection({**conn_params, "password": retry})
