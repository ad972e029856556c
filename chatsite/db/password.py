"""The PostgreSQL password from the Secrets Manager secret RDS rotates, read when a connection opens.

RDS with a managed master password rotates it (every 7 days by default). A password injected
into a task's environment at start stays the old one: after a rotation every new database
connection of every running task is refused until the task restarts, and a process that
opens connections as it goes (Django's CONN_MAX_AGE) fails requests and socket events
within a minute of the rotation. With DATABASE_PASSWORD_SECRET the password is read from the
secret itself: once, then again when a new connection is refused (the rotation happened).
Connections already open are not affected: PostgreSQL checks a password only at login.

A refused login re-reads the secret at most once per REREAD_SECONDS per process, so a
database that refuses for another reason (wrong user, pg_hba, an outage) does not turn every
connection attempt into a Secrets Manager call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Final

from django.core.exceptions import ImproperlyConfigured

from chatsite.aws_secrets import secret_text

REREAD_SECONDS: Final = 5.0


def password_in(secret_text: str, *, secret_id: str) -> str:
    """The password in a secret's text: RDS's JSON (`{"username": ..., "password": ...}`) or plain text."""
    text = secret_text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text).get("password")
        except (ValueError, AttributeError):
            value = None
        if not isinstance(value, str) or not value:
            raise ImproperlyConfigured(
                f'DATABASE_PASSWORD_SECRET {secret_id}: a JSON secret needs a non-empty "password" key'
            )
        return value
    if not text:
        raise ImproperlyConfigured(f"DATABASE_PASSWORD_SECRET {secret_id} is empty")
    return text


class RotatingPassword:
    """One secret's password for every connection of this process (threads share it)."""

    def __init__(
        self,
        secret_id: str,
        *,
        read: Callable[[str], str] = secret_text,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_id = secret_id
        self._read = read
        self._clock = clock
        self._lock = threading.Lock()
        self._password: str | None = None
        self._read_at = float("-inf")

    def current(self) -> str:
        """The password to log in with: read from the secret on first use."""
        with self._lock:
            if self._password is None:
                self._password = self._fetch()
            return self._password

    def after_refusal(self, tried: str) -> str | None:
        """A password to try again with after `tried` was refused, or None: the refusal stands.

        Another thread may have read the new password already; otherwise the secret is read
        again, unless it was read less than REREAD_SECONDS ago.
        """
        with self._lock:
            if self._password is not None and self._password != tried:
                return self._password
            if self._clock() - self._read_at < REREAD_SECONDS:
                return None
            self._password = self._fetch()
            return self._password if self._password != tried else None

    def _fetch(self) -> str:
        self._read_at = self._clock()
        return password_in(self._read(self.secret_id), secret_id=self.secret_id)


_passwords: dict[str, RotatingPassword] = {}
_passwords_lock = threading.Lock()


def rotating_password(secret_id: str) -> RotatingPassword:
    """This process's reader of `secret_id` (one per secret, shared by every connection)."""
    with _passwords_lock:
        if secret_id not in _passwords:
            _passwords[secret_id] = RotatingPassword(secret_id)
        return _passwords[secret_id]
