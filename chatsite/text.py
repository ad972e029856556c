"""Text every store can keep: the one check shared by the HTTP API, the forms and the protocol.

PostgreSQL's text type cannot hold NUL (psycopg refuses it: a server error), and a lone
surrogate (JSON can carry "\\ud800") cannot be encoded as UTF-8 for any store or for the
wire. SQLite and DynamoDB would take some of these; refusing them at the edge gives one
answer on every database and backend (docs/protocol.md, `invalid_field`).
"""

from __future__ import annotations

import re
from typing import Final

_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> bool:
    """True when every database and storage backend Chatsite runs on can store `value`."""
    return _UNSTORABLE.search(value) is None
