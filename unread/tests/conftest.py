"""unread's tests reuse chat's fixtures: the storage backend and signed-in sockets."""

from chat.tests.conftest import session_sockets, storage_backend  # noqa: F401
