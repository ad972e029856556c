"""Django's database sessions, with the read every signed-in page and socket makes written out.

Every socket a signed-in page opens reads its session first (accounts.identity), and a
reconnect burst opens thousands at once. Django's `Session.objects.get(...)` spent longer
being built by the ORM than the database spent answering it (docs/performance.md, "A
session's reads written out"); here the same statement (the key, not expired) is built once
(chatsite.db.rows) and its row read through the fields' own converters. Everything else,
the table, the data's encoding and signing, saving, cycling and flushing, is Django's
`db.SessionStore`: sessions written before this engine read the same, and the engine can be
switched back without signing anyone out.
"""

from __future__ import annotations

from typing import Any, Final

from django.contrib.sessions.backends import db
from django.db import connection
from django.utils import timezone

from chatsite.db import rows

_FIELDS: Final = ("session_key", "session_data", "expire_date")


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Any:
        """Django's read (the row of this key that has not expired, else None and no key),
        as one statement written out."""
        model = self.model
        where = f"{rows.column(model, 'session_key')} = %s AND {rows.column(model, 'expire_date')} > %s"
        found = rows.select(
            model,
            _FIELDS,
            where=where,
            params=[self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
        )
        if not found:
            self._session_key = None
            return None
        return model(**found[0])
