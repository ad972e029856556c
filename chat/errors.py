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
    # People and rooms (docs/protocol.md "Rooms users make")
    UNKNOWN_USER = "unknown_user"  # no user has this username
    SELF_INVITE = "self_invite"  # inviting yourself, or a DM with nobody else
    DIRECT_ROOM = "direct_room"  # a DM's members and settings are fixed
    TOO_MANY_MEMBERS = "too_many_members"  # a group DM over CHAT_MAX_DIRECT_MEMBERS
    LAST_OWNER = "last_owner"  # a room keeps an owner while it has members
    ROOM_NAME_TAKEN = "room_name_taken"  # create: a room the user can see has this name
    EMPTY_ROOM_NAME = "empty_room_name"
    NOT_OWNER = "not_owner"  # only the room's owners (and moderators) may do this
    NOT_MEMBER = "not_member"  # the user (you, or the one named) is not a member of the room
    # Changes people make to messages (docs/protocol.md "Edits, deletions, reactions, replies")
    NOT_AUTHOR = "not_author"  # edit or delete: only the author may
    MESSAGE_REMOVED = "message_removed"  # the message is a tombstone: no edit, reaction or reply
    MESSAGE_IN_OTHER_ROOM = "message_in_other_room"  # the message id is of another room
    EDIT_WINDOW_CLOSED = "edit_window_closed"  # older than CHAT_EDIT_WINDOW_SECONDS
    INVALID_EMOJI = "invalid_emoji"  # not exactly one Unicode emoji
    TOO_MANY_REACTIONS = "too_many_reactions"  # CHAT_MAX_REACTIONS_PER_MESSAGE distinct emoji already
    # Shared files (issue 18, uploads/): each refusal its own code
    TOO_MANY_ATTACHMENTS = "too_many_attachments"
    UNKNOWN_UPLOAD = "unknown_upload"  # no such upload of this user (another's is unknown too)
    UPLOAD_NOT_RECEIVED = "upload_not_received"  # the slot was never used: no file
    UPLOAD_EXPIRED = "upload_expired"
    UPLOAD_USED = "upload_used"  # a slot used twice, or an upload claimed by another message
    UPLOAD_TOO_LARGE = "upload_too_large"
    UPLOAD_TYPE_NOT_ALLOWED = "upload_type_not_allowed"
    UPLOAD_TYPE_MISMATCH = "upload_type_mismatch"  # its bytes are not what its name and type say
    UPLOAD_BAD_IMAGE = "upload_bad_image"  # undecodable, or a decompression bomb
    INVALID_FILE_NAME = "invalid_file_name"
    UPLOAD_WRONG_ROOM = "upload_wrong_room"  # sent to another room than its slot's
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
