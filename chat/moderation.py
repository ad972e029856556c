"""Moderation services: what a moderator does, checked, stored, audited, then broadcast.

Admin views and management commands call these keyword-only `<entity>_<action>` functions
and nothing else; so does the consumer for a user's report. Each moderator action

1. checks the moderator's rights (`accounts.users.is_moderator`: staff alone is not enough)
   and that a reason was given;
2. writes through the storage adapter (rooms, members, messages: either backend), through
   the same wrapper as chat.services (`services.store_call`: timing, storage_unavailable),
   or the ORM (bans, mutes, reports: always Django's database);
3. records who, what, when and why in the audit log, in the transaction of the write;
4. tells live sockets, on every daphne process, when that transaction commits: room
   changes through `services.room_change_sync` (the one helper for room events), control
   events (a ban, a member taken out) through `chat.broadcast`.

They are synchronous (admin and commands are); the broadcasts run through async_to_sync.
A refusal is a ModerationError, a ChatError with a code like every service's.
docs/moderation.md describes every action and what a client sees.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from accounts.identity import Identity
from accounts.refusals import Refusal
from accounts.users import is_moderator
from analytics import services as analytics
from chat import attachments as chat_attachments
from chat import broadcast, events, people, protocol, services
from chat.errors import ChatError, ErrorCode
from chat.moderation_models import AuditLog, Ban, Mute, Report
from chat.services import event_of, room_change_sync, store_call
from chat.storage import get_store
from chat.storage.base import DELETED, HIDDEN, MessageRecord, Removal, RemoveResult, Room, RoomNotFound

log = logging.getLogger(__name__)

MAX_REASON: Final = 1000
MAX_SLOW_MODE_SECONDS: Final = 6 * 3600
MAX_MUTE: Final = timedelta(days=365)
# A user's reports per hour: enough for a bad evening, not enough to flood the queue.
REPORTS_PER_HOUR: Final = 30
SEARCH_LIMIT: Final = 100
SEARCH_SCAN: Final = 1000  # how many of a room's newest messages a search looks at

ReportAction = Literal["hide", "delete", "mute", "ban"]


# Both bases declare `code` and `message`: ChatError's (an ErrorCode, the text) win, and
# ValidationError's `messages`, which admin shows, reads only the text.
class ModerationError(ChatError, ValidationError):  # type: ignore[misc]
    """A moderator's request that cannot be done as asked: a ChatError with a code, like
    every service's refusal, and a ValidationError, which the admin pages show."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.INVALID_FIELD) -> None:
        super().__init__(code, message)  # ChatError, then ValidationError(message)


# --- checks and the audit log ------------------------------------------------------------


def _require_moderator(moderator: Any) -> None:
    if moderator is None or not getattr(moderator, "is_active", False) or not is_moderator(moderator):
        raise PermissionDenied("moderator rights are needed")


def _reason(reason: str) -> str:
    cleaned = (reason or "").strip()
    if not cleaned:
        raise ModerationError("give a reason: it goes into the audit log")
    if len(cleaned) > MAX_REASON:
        raise ModerationError(f"the reason is longer than {MAX_REASON} characters")
    return cleaned


def _audit(
    *, moderator: Any, action: str, reason: str, room_id: str = "", target: str = "", **details: Any
) -> AuditLog:
    at = services.utcnow()
    analytics.moderation_action(action=action, at=at)
    return AuditLog.objects.create(
        at=at,
        actor=moderator,
        actor_username=moderator.get_username(),
        action=action,
        room_id=room_id,
        target=target,
        reason=reason,
        details=details,
    )


def _room(room_id: str) -> Room:
    room = services.room_get(room_id)
    if room is None:
        raise ModerationError(f"room {room_id!r} does not exist", ErrorCode.UNKNOWN_ROOM)
    return room


def _stored_room(room_id: str) -> Room:
    """The room for a change (the default room is stored by its first write)."""
    room = services.room_stored(room_id=room_id)
    if room is None:
        raise ModerationError(f"room {room_id!r} does not exist", ErrorCode.UNKNOWN_ROOM)
    return room


def _stamp() -> dict[str, Any]:
    """When a room event happened and how long it is kept (as long as messages)."""
    return {"now": services.utcnow(), "ttl_seconds": settings.CHAT_MESSAGE_TTL_SECONDS}


def _removed(results: list[RemoveResult]) -> list[Any]:
    return [r.event for r in results if r.event is not None]


def _user_by_id(user_id: str) -> Any:
    """The Django user a chat user id (str(pk)) names, or None."""
    return get_user_model().objects.filter(pk=int(user_id)).first() if user_id.isdigit() else None


def _target_user(user: Any) -> str:
    return f"user:{user.pk} ({user.get_username()})"


# --- rooms -----------------------------------------------------------------------------------


def _slow_mode(seconds: int | None) -> int | None:
    if seconds is not None and not 0 <= seconds <= MAX_SLOW_MODE_SECONDS:
        raise ModerationError(f"slow mode is 0 (off) to {MAX_SLOW_MODE_SECONDS} seconds")
    return seconds


def room_create(
    *,
    moderator: Any,
    room_id: str,
    name: str,
    reason: str,
    private: bool = False,
    read_only: bool = False,
    slow_mode_seconds: int = 0,
) -> Room:
    """Create a room with its settings; the moderator becomes a member of a private one."""
    _require_moderator(moderator)
    why = _reason(reason)
    _slow_mode(slow_mode_seconds)
    try:
        protocol.validate_room_id(room_id)
    except ChatError as error:
        raise ModerationError(error.message) from None
    if store_call(get_store().get_room, room_id=room_id) is not None:
        raise ModerationError(f"room {room_id!r} exists already")
    services.room_create(room_id=room_id, name=name.strip() or room_id, created_by=str(moderator.pk))
    store = get_store()
    if private:
        # A member first: the room is never private without its creator in it.
        store_call(store.add_member, room_id=room_id, user_id=str(moderator.pk))
    update = room_change_sync(
        store.update_room,
        stored=event_of,
        room_id=room_id,
        private=private,
        read_only=read_only,
        slow_mode_seconds=slow_mode_seconds,
        **_stamp(),
    )
    room = update.room
    _audit(
        moderator=moderator,
        action="room_create",
        reason=why,
        room_id=room_id,
        target=f"room:{room_id}",
        name=room.name,
        private=private,
        read_only=read_only,
        slow_mode_seconds=slow_mode_seconds,
    )
    return room


def room_update(
    *,
    moderator: Any,
    room_id: str,
    reason: str,
    name: str | None = None,
    private: bool | None = None,
    read_only: bool | None = None,
    slow_mode_seconds: int | None = None,
    archived: bool | None = None,
    action: str = "room_update",
) -> Room:
    """Change a room's settings; joined sockets see them at once, and when the room turns
    private the sockets of non-members leave it."""
    _require_moderator(moderator)
    why = _reason(reason)
    _slow_mode(slow_mode_seconds)
    if name is not None:
        name = name.strip()[:100] or None
    before = _stored_room(room_id)
    wanted = {
        "name": name,
        "private": private,
        "read_only": read_only,
        "slow_mode_seconds": slow_mode_seconds,
        "archived": archived,
    }
    changes: dict[str, Any] = {k: v for k, v in wanted.items() if v is not None and getattr(before, k) != v}
    if not changes:
        return before
    with transaction.atomic():
        update = room_change_sync(get_store().update_room, stored=event_of, room_id=room_id, **changes, **_stamp())
        _audit(
            moderator=moderator,
            action=action,
            reason=why,
            room_id=room_id,
            target=f"room:{room_id}",
            changes={k: [getattr(before, k), v] for k, v in changes.items()},
        )
    if update.room.private and not before.private:
        # After the roomUpdated event (sent on commit, above): sockets of non-members leave.
        async_to_sync(broadcast.room_access)(room_id)
    return update.room


def room_archive(*, moderator: Any, room_id: str, reason: str) -> Room:
    """Archive a room: readable, but it takes no posts and leaves the room list."""
    return room_update(moderator=moderator, room_id=room_id, reason=reason, archived=True, action="room_archive")


def room_unarchive(*, moderator: Any, room_id: str, reason: str) -> Room:
    return room_update(moderator=moderator, room_id=room_id, reason=reason, archived=False, action="room_unarchive")


def room_list_all(*, moderator: Any) -> list[Room]:
    """Every room, archived and private ones included."""
    _require_moderator(moderator)
    return services.room_list(identity=Identity(user_id=str(moderator.pk), username="", is_moderator=True))


def room_members(*, moderator: Any, room_id: str) -> list[tuple[str, str]]:
    """A room's members as (user id, username), for moderators only."""
    _require_moderator(moderator)
    ids = store_call(get_store().room_members, room_id=room_id)
    names = dict(
        get_user_model().objects.filter(pk__in=[int(i) for i in ids if i.isdigit()]).values_list("pk", "username")
    )
    return [(user_id, names.get(int(user_id), "?") if user_id.isdigit() else "?") for user_id in ids]


def room_member_add(*, moderator: Any, room_id: str, user: Any, reason: str) -> None:
    _require_moderator(moderator)
    why = _reason(reason)
    try:
        people.member_added(room=_stored_room(room_id), user_id=str(user.pk), username=user.username)
    except RoomNotFound:
        raise ModerationError(f"room {room_id!r} does not exist", ErrorCode.UNKNOWN_ROOM) from None
    _audit(moderator=moderator, action="member_add", reason=why, room_id=room_id, target=_target_user(user))


def room_member_remove(*, moderator: Any, room_id: str, user: Any, reason: str) -> bool:
    """Take a user out of a room's members, as an owner would (chat.people.member_removed):
    their sockets there leave it at once, and the others' member lists and presence drop
    them at once (memberRemoved on the room's sequence)."""
    _require_moderator(moderator)
    why = _reason(reason)
    _room(room_id)
    if not people.member_removed(room_id=room_id, user_id=str(user.pk), username=user.username):
        return False
    _audit(moderator=moderator, action="member_remove", reason=why, room_id=room_id, target=_target_user(user))
    return True


# --- users: bans and mutes -----------------------------------------------------------------


def user_ban(
    *,
    moderator: Any,
    user: Any,
    reason: str,
    duration: timedelta | None = None,
    room_id: str = "",
    **where: str,
) -> Ban:
    """Ban a user: every socket they have open closes with 4403 within a second, on every
    process (after a `banned` frame with the reason), and new ones are refused (a
    still-valid Cognito token included). `room_id` and `where` (a message, say) record in
    the audit log where a ban from the chat was given."""
    _require_moderator(moderator)
    why = _reason(reason)
    if user.pk == moderator.pk:
        raise ModerationError("you cannot ban yourself")
    if is_moderator(user) and not moderator.is_superuser:
        raise ModerationError("only a superuser can ban a moderator")
    now = services.utcnow()
    with transaction.atomic():
        ban = Ban.active(now).filter(user=user).first()
        if ban is None:
            ban = Ban.objects.create(
                user=user,
                reason=why,
                created_at=now,
                created_by=moderator,
                expires_at=now + duration if duration else None,
            )
        _audit(
            moderator=moderator,
            action="user_ban",
            reason=why,
            room_id=room_id,
            target=_target_user(user),
            until=ban.expires_at.isoformat() if ban.expires_at else None,
            **where,
        )
    notice = protocol.banned_frame(reason=ban.reason, until=ban.expires_at)
    async_to_sync(broadcast.user_banned)(str(user.pk), notice=notice)
    return ban


def user_ban_refusal(user: Any) -> Refusal | None:
    """Why a banned user is refused everything (accounts.refusals): the ban that lasts longest."""
    ban = services.ban_longest(str(user.pk))
    if ban is None:
        return None
    until = f"until {ban.expires_at.isoformat()}" if ban.expires_at is not None else "until a moderator lifts the ban"
    return Refusal(code="banned", message=f"you are banned {until}", until=ban.expires_at, reason=ban.reason)


def user_unban(*, moderator: Any, user: Any, reason: str) -> int:
    """Lift the user's bans; they may connect again. Returns how many were lifted."""
    _require_moderator(moderator)
    why = _reason(reason)
    now = services.utcnow()
    with transaction.atomic():
        lifted = Ban.active(now).filter(user=user).update(lifted_at=now, lifted_by=moderator)
        if lifted:
            _audit(moderator=moderator, action="user_unban", reason=why, target=_target_user(user))
    return lifted


def user_mute(*, moderator: Any, user: Any, reason: str, duration: timedelta, room_id: str | None = None) -> Mute:
    """Mute a user in one room or everywhere for `duration`: their sends are refused with
    `muted` (and retryAfter) from the next one, on every process."""
    _require_moderator(moderator)
    why = _reason(reason)
    if not timedelta(seconds=1) <= duration <= MAX_MUTE:
        raise ModerationError("a mute lasts from a second to a year")
    if room_id:
        _room(room_id)
    now = services.utcnow()
    with transaction.atomic():
        mute = Mute.objects.create(
            user=user,
            room_id=room_id or "",
            reason=why,
            created_at=now,
            created_by=moderator,
            expires_at=now + duration,
        )
        _audit(
            moderator=moderator,
            action="user_mute",
            reason=why,
            room_id=room_id or "",
            target=_target_user(user),
            until=mute.expires_at.isoformat(),
        )
    return mute


def user_unmute(*, moderator: Any, user: Any, reason: str, room_id: str | None = None) -> int:
    """Lift the user's mutes (those of one room, or all of them). Returns how many."""
    _require_moderator(moderator)
    why = _reason(reason)
    now = services.utcnow()
    with transaction.atomic():
        mutes = Mute.active(now).filter(user=user)
        if room_id:
            mutes = mutes.filter(room_id=room_id)
        lifted = mutes.update(lifted_at=now, lifted_by=moderator)
        if lifted:
            _audit(
                moderator=moderator, action="user_unmute", reason=why, room_id=room_id or "", target=_target_user(user)
            )
    return lifted


# --- messages --------------------------------------------------------------------------------


def message_search(
    *, moderator: Any, room_id: str, text: str | None = None, author: Any = None, limit: int = SEARCH_LIMIT
) -> list[MessageRecord]:
    """A room's recent messages, newest first, matching text and/or author. Moderators see
    a hidden message's text (marked hidden); a deleted one's is gone."""
    _require_moderator(moderator)
    return store_call(
        get_store().search_messages,
        room_id=_room(room_id).room_id,
        now=services.utcnow(),
        text=(text or "").strip() or None,
        user_id=str(author.pk) if author is not None else None,
        limit=limit,
        scan=SEARCH_SCAN,
    )


def message_get(*, moderator: Any, room_id: str, message_id: str) -> MessageRecord | None:
    """A message as the store has it now (a hidden one with its text), or None."""
    _require_moderator(moderator)
    return store_call(get_store().get_message, room_id=room_id, message_id=message_id, now=services.utcnow())


def _remove(*, moderator: Any, room_id: str, message_id: str, reason: str, removal: Removal) -> MessageRecord:
    _require_moderator(moderator)
    why = _reason(reason)
    with transaction.atomic():
        result = room_change_sync(
            get_store().remove_message,
            stored=event_of,
            room_id=_room(room_id).room_id,
            message_id=message_id,
            removal=removal,
            removed_by=events.BY_MODERATOR,
            **_stamp(),
        )
        if result is None:
            raise ModerationError("no such message in this room", ErrorCode.UNKNOWN_MESSAGE)
        message = result.message
        _audit(
            moderator=moderator,
            action=f"message_{'delete' if removal == DELETED else 'hide'}",
            reason=why,
            room_id=room_id,
            target=f"message:{message_id}",
            seq=message.seq,
            author=f"user:{message.user_id} ({message.username})",
        )
        if removal == DELETED:
            chat_attachments.messages_deleted([message])  # its files go with its text (issue 18)
    return message


def message_hide(*, moderator: Any, room_id: str, message_id: str, reason: str) -> MessageRecord:
    """Hide a message: every client replaces it with a tombstone now, and history and
    resumes return the tombstone; moderators can still read what it said."""
    return _remove(moderator=moderator, room_id=room_id, message_id=message_id, reason=reason, removal=HIDDEN)


def message_delete(*, moderator: Any, room_id: str, message_id: str, reason: str) -> MessageRecord:
    """Delete a message: as hiding, and its text is erased from the store for good."""
    return _remove(moderator=moderator, room_id=room_id, message_id=message_id, reason=reason, removal=DELETED)


def user_messages_purge(*, moderator: Any, user: Any, reason: str, room_id: str | None = None) -> list[MessageRecord]:
    """Delete every live message of a user, in one room or everywhere; clients drop them live."""
    _require_moderator(moderator)
    why = _reason(reason)
    if room_id:
        _room(room_id)
    with transaction.atomic():
        results = room_change_sync(
            get_store().remove_user_messages,
            stored=_removed,
            user_id=str(user.pk),
            room_id=room_id or None,
            removal=DELETED,
            **_stamp(),
        )
        _audit(
            moderator=moderator,
            action="user_purge",
            reason=why,
            room_id=room_id or "",
            target=_target_user(user),
            messages=len(results),
        )
        chat_attachments.messages_deleted(r.message for r in results)  # and their files (issue 18)
    return [r.message for r in results]


# --- reports ---------------------------------------------------------------------------------


def _save_report(*, identity: Identity, message: MessageRecord, reason: str, now: datetime) -> Report:
    reporter = _user_by_id(identity.user_id)
    if reporter is None:
        raise ChatError(ErrorCode.FORBIDDEN, "only signed-in users report messages")
    existing = Report.objects.filter(reporter=reporter, message_id=message.message_id).first()
    if existing is not None:
        return existing  # reporting twice changes nothing
    if Report.objects.filter(reporter=reporter, created_at__gt=now - timedelta(hours=1)).count() >= REPORTS_PER_HOUR:
        raise ChatError(ErrorCode.RATE_LIMITED, "too many reports: try again later", retry_after=600)
    try:
        with transaction.atomic():
            report = Report.objects.create(
                room_id=message.room_id,
                message_id=message.message_id,
                seq=message.seq,
                author_id=message.user_id,
                author_username=message.username,
                text=message.text,
                reporter=reporter,
                reason=reason,
                created_at=now,
            )
            analytics.report_opened(room_id=message.room_id, at=now)
            return report
    except IntegrityError:
        return Report.objects.get(reporter=reporter, message_id=message.message_id)


async def report_create(*, identity: Identity, room_id: str, message_id: str, reason: str) -> Report:
    """A user reports a message of a room they may read; it joins the moderators' queue."""
    message = await services.message_get(room_id=room_id, message_id=message_id, identity=identity)
    if message.removed is not None:
        raise ChatError(ErrorCode.UNKNOWN_MESSAGE, "this message was removed already", room_id=room_id)
    report: Report = await database_sync_to_async(_save_report)(
        identity=identity, message=message, reason=reason[: protocol.MAX_REPORT_REASON], now=services.utcnow()
    )
    return report


class ReportHandled(ModerationError):
    """The report was closed already (by this moderator or another): nothing is applied again."""


def _handled(report: Report) -> ReportHandled:
    report.refresh_from_db()
    by = report.resolved_by.get_username() if report.resolved_by is not None else "a moderator"
    when = f"{report.resolved_at:%Y-%m-%d %H:%M} UTC" if report.resolved_at else "earlier"
    return ReportHandled(
        f"Report {report.pk} was handled already ({report.status} by {by} at {when}): nothing was done."
    )


def _close_reports(*, moderator: Any, report: Report, status: str, why: str, now: datetime) -> list[datetime]:
    """Close this report and every other open one of the same message; return when each was
    opened. The conditional UPDATE is the check: of two moderators acting on one report at
    once, one closes it and the other gets ReportHandled, so no action runs twice."""
    with transaction.atomic():
        closed = {"status": status, "resolved_at": now, "resolved_by": moderator, "resolution": why}
        if not Report.objects.filter(pk=report.pk, status=Report.OPEN).update(**closed):
            raise _handled(report)
        others = Report.objects.select_for_update().filter(message_id=report.message_id, status=Report.OPEN)
        opened = [report.created_at, *others.values_list("created_at", flat=True)]
        others.update(**closed)
    return opened


def _reopen(*, report: Report, moderator: Any, now: datetime) -> None:
    """Undo `_close_reports` for an action that failed: the reports wait in the queue again."""
    Report.objects.filter(message_id=report.message_id, resolved_at=now, resolved_by=moderator).update(
        status=Report.OPEN, resolved_at=None, resolved_by=None, resolution=""
    )


def report_resolve(*, moderator: Any, report: Report, reason: str, dismiss: bool = False) -> Report:
    """Close a report: resolved (handled) or dismissed (nothing wrong). A report closed
    already raises ReportHandled, saying by whom and when."""
    _require_moderator(moderator)
    why = _reason(reason)
    status = Report.DISMISSED if dismiss else Report.RESOLVED
    now = services.utcnow()
    with transaction.atomic():
        opened = _close_reports(moderator=moderator, report=report, status=status, why=why, now=now)
        _record_closed(
            moderator=moderator,
            report=report,
            action="report_dismiss" if dismiss else "report_resolve",
            why=why,
            opened=opened,
            now=now,
        )
    report.refresh_from_db()
    return report


# --- from the chat itself: a moderator's message menu (moderateMessage, banUser) -----------


def _chat_moderator(identity: Identity) -> Any:
    """The Django user behind a socket, if they are a moderator now: rights are read again
    here, not taken from the socket's identity, so a moderator removed from the group an
    hour ago cannot act from a socket opened before. Anyone else: `forbidden`."""
    user = _user_by_id(identity.user_id)
    try:
        _require_moderator(user)
    except PermissionDenied:
        raise ChatError(ErrorCode.FORBIDDEN, "only moderators may do this") from None
    return user


def _message_moderate_sync(*, identity: Identity, room_id: str, message_id: str, removal: str, reason: str) -> None:
    moderator = _chat_moderator(identity)
    remove = message_delete if removal == DELETED else message_hide
    remove(moderator=moderator, room_id=room_id, message_id=message_id, reason=reason)


async def message_moderate(*, identity: Identity, room_id: str, message_id: str, removal: str, reason: str) -> None:
    """Hide or delete a message from the chat (a moderator's message menu): message_hide or
    message_delete, with their audit entry and their messageRemoved to every joined socket."""
    await database_sync_to_async(_message_moderate_sync)(
        identity=identity, room_id=room_id, message_id=message_id, removal=removal, reason=reason
    )


def _user_ban_from_chat_sync(
    *,
    identity: Identity,
    user_id: str,
    reason: str,
    duration_seconds: int | None,
    room_id: str | None,
    message_id: str | None,
) -> tuple[Ban, str]:
    moderator = _chat_moderator(identity)
    user = _user_by_id(user_id)
    if user is None:
        raise ModerationError("no such user", ErrorCode.UNKNOWN_USER)
    where = {"message": f"message:{message_id}"} if message_id else {}
    ban = user_ban(
        moderator=moderator,
        user=user,
        reason=reason,
        duration=timedelta(seconds=duration_seconds) if duration_seconds else None,
        room_id=room_id or "",
        via="chat",
        **where,
    )
    return ban, user.get_username()


async def user_ban_from_chat(
    *,
    identity: Identity,
    user_id: str,
    reason: str,
    duration_seconds: int | None = None,
    room_id: str | None = None,
    message_id: str | None = None,
) -> tuple[Ban, str]:
    """Ban a message's author from the chat (a moderator's "Ban user…"): user_ban, with its
    audit entry (noting the room and message) and the 4403 of every socket of theirs.
    Returns the ban and the banned user's name."""
    result: tuple[Ban, str] = await database_sync_to_async(_user_ban_from_chat_sync)(
        identity=identity,
        user_id=user_id,
        reason=reason,
        duration_seconds=duration_seconds,
        room_id=room_id,
        message_id=message_id,
    )
    return result


def _record_closed(
    *, moderator: Any, report: Report, action: str, why: str, opened: list[datetime], now: datetime
) -> None:
    """Audit a report's closing and count it (with the other reports of its message it closed)."""
    _audit(moderator=moderator, action=action, reason=why, room_id=report.room_id, target=f"report:{report.pk}")
    analytics.reports_resolved(opened=opened, at=now)


def report_act(
    *, moderator: Any, report: Report, action: ReportAction, reason: str, mute_for: timedelta | None = None
) -> Report:
    """Act on a report (hide or delete the message, mute or ban its author), then resolve it.

    The report is closed first, so a report handled already (a second click, a second
    moderator) raises ReportHandled before anything is applied or broadcast again; an
    action that fails reopens it.
    """
    _require_moderator(moderator)
    why = _reason(reason)
    if action not in ("hide", "delete", "mute", "ban"):
        raise ModerationError(f"unknown action {action!r}")
    author = None
    if action in ("mute", "ban"):
        author = _user_by_id(report.author_id)
        if author is None:
            raise ModerationError("the author's account no longer exists", ErrorCode.UNKNOWN_MESSAGE)
    now = services.utcnow()
    resolution = f"{action}: {why}"
    opened = _close_reports(moderator=moderator, report=report, status=Report.RESOLVED, why=resolution, now=now)
    try:
        if action in ("hide", "delete"):
            remove = message_hide if action == "hide" else message_delete
            remove(moderator=moderator, room_id=report.room_id, message_id=report.message_id, reason=why)
        elif action == "mute":
            user_mute(moderator=moderator, user=author, reason=why, duration=mute_for or timedelta(hours=1))
        else:
            user_ban(moderator=moderator, user=author, reason=why)
    except Exception:
        _reopen(report=report, moderator=moderator, now=now)
        raise
    with transaction.atomic():
        _record_closed(
            moderator=moderator, report=report, action="report_resolve", why=resolution, opened=opened, now=now
        )
    report.refresh_from_db()
    return report
