"""Domain errors with machine-readable codes.

Services and the protocol parser raise `ChatError`; one layer (the consumer's error
handler, via `chat.protocol.error_frame`) turns them into error frames. The codes are part
of the wire protocol: never rename one.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # The frame itself
    INVALID_JSON = "invalid_json"
    BINARY_FRAME = "binary_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    INVALID_FRAME = "invalid_frame"
    UNKNOWN_ACTION = "unknown_action"
    INVALID_FIELD = "invalid_field"
    # The request
    EMPTY_MESSAGE = "empty_message"
    MESSAGE_TOO_LONG = "message_too_long"
    INVALID_ROOM = "invalid_room"
    UNKNOWN_ROOM = "unknown_room"  # also a private room, to a non-member (docs/auth.md)
    ROOM_UNAVAILABLE = "room_unavailable"  # create: the id is taken by a room the user may not see
    NOT_JOINED = "not_joined"
    FORBIDDEN = "forbidden"
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - a token on an open socket was refused
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"  # a per-user quota (docs/auth.md "Quotas"); retryAfter says when
    # Moderation (docs/moderation.md)
    ROOM_ARCHIVED = "room_archived"  # the room takes no posts
    READ_ONLY = "read_only"  # only moderators post in this room
    SLOW_MODE = "slow_mode"  # one post per retryAfter seconds in this room
    MUTED = "muted"  # the user may not post (here) until retryAfter seconds from now
    UNKNOWN_MESSAGE = "unknown_message"
    # Search (docs/protocol.md "Search")
    INVALID_QUERY = "invalid_query"  # a search query that cannot be read; the message says why
    # The server
    STORAGE_UNAVAILABLE = "storage_unavailable"
    INTERNAL_ERROR = "internal_error"


class ChatError(Exception):
    """An error a client can act on. `retryable` errors may be retried unchanged."""

    retryable_codes = frozenset(
        {ErrorCode.STORAGE_UNAVAILABLE, ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL_ERROR, ErrorCode.SLOW_MODE}
    )

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        action: str | None = None,
        client_message_id: str | None = None,
        room_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.action = action
        self.client_message_id = client_message_id
        self.room_id = room_id
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.code in self.retryable_codes

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r})"


class StorageUnavailable(ChatError):
    """The store could not be reached or refused the write. Nothing was written."""

    def __init__(self, message: str = "storage is unavailable, retry shortly") -> None:
        super().__init__(ErrorCode.STORAGE_UNAVAILABLE, message, retry_after=1.0)
