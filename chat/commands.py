"""What each client command does: a table from command type to handler (chat.consumers).

A handler takes the socket it came from (`CommandSocket`: the little of the consumer it
uses) and the parsed command (chat.protocol), calls a service with the socket's identity
(never the frame's), and answers with frames. Every `ChatError` a handler raises is named
with its action (and room, and clientMessageId where the command has one) and becomes the
answer's error frame in one place, the consumer's `receive`; so does any other exception,
as `internal_error` (`internal_error_for`). No business rules here: the services decide.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from channels.db import database_sync_to_async

from chat import message_changes, metrics, moderation, people, people_protocol, protocol, reactions, services
from chat.delivery import SocketDelivery
from chat.errors import ChatError, ErrorCode
from chat.fanout import RoomMember
from chat.signin import TokenSocket, on_token
from unread import services as unread

log = logging.getLogger(__name__)


class CommandSocket(TokenSocket, RoomMember, Protocol):
    """What the command handlers need of a socket (chat.consumers.ChatConsumer)."""

    core: SocketDelivery
    tail_check: asyncio.Task[None] | None

    def delivering(self) -> AbstractAsyncContextManager[Any]:
        """Hold the socket's delivery (chat.socket_delivery): room events wait behind a join."""
        ...

    async def send_joined(self, room_id: str, result: services.JoinResult) -> None: ...

    async def catch_up(self, *, fresh: bool) -> None: ...

    async def presence_rooms_changed(self, joined: str | None = None) -> None: ...

    async def on_typing(self, command: protocol.Typing) -> None: ...

    async def on_presence(self, command: protocol.SetPresence) -> None: ...

    def answer_apart(self, command: protocol.Command, answer: Awaitable[None]) -> None:
        """Answer `command` in a task of its own, off the socket's frame loop."""
        ...


def internal_error_for(command: protocol.Command | None) -> ChatError:
    """The answer to a frame whose handler failed unexpectedly: `internal_error`, naming the
    command's action, room and clientMessageId so a client can fail (and retry) that very send."""
    internal = ChatError(ErrorCode.INTERNAL_ERROR, "internal error, retry shortly")
    if command is not None:
        internal.action = protocol.action_of(command)
        internal.client_message_id = getattr(command, "client_message_id", None)
        internal.room_id = getattr(command, "room_id", None)
    return internal


# Messages and rooms (chat.services) -------------------------------------------------------


async def send(socket: CommandSocket, command: protocol.SendMessage) -> None:
    assert socket.identity is not None and socket.connection_id is not None
    if command.legacy and not socket.core.joined(command.room_id):
        # A client of the AWS original never joins: join it to the default room so it
        # receives the room's messages from now on, as it would there.
        await join_room(socket, command.room_id, last_seq=None, reply=False)
    try:
        if command.reply_to is not None:
            message = await message_changes.message_reply(
                identity=socket.identity,
                connection_id=socket.connection_id,
                room_id=command.room_id,
                text=command.message,
                client_message_id=command.client_message_id,
                reply_to=command.reply_to,
                attachments=command.attachments,
            )
        else:
            message = await services.message_send(
                identity=socket.identity,
                connection_id=socket.connection_id,
                room_id=command.room_id,
                text=command.message,
                client_message_id=command.client_message_id,
                attachments=command.attachments,
            )
    except ChatError as error:
        error.action = error.action or protocol.action_of(command)
        error.client_message_id = command.client_message_id
        raise
    await socket.send_frame(protocol.ack_frame(message))


async def join(socket: CommandSocket, command: protocol.JoinRoom) -> None:
    await join_room(socket, command.room_id, last_seq=command.last_seq, reply=True)
    await socket.presence_rooms_changed(joined=command.room_id)


async def join_room(socket: CommandSocket, room_id: str, *, last_seq: int | None, reply: bool) -> None:
    """Join (or re-join, resuming after `last_seq`) holding the socket's delivery, so the
    room's live events wait behind the replay and the cursor starts where the join read."""
    assert socket.identity is not None
    async with socket.delivering():
        try:
            result = await services.room_join(
                room_id=room_id,
                member=socket,
                last_seq=last_seq,
                identity=socket.identity,
                already_joined=socket.core.joined(room_id),
            )
        except ChatError as error:
            error.action = error.action or "joinRoom"
            error.room_id = room_id
            raise
        socket.core.join(room_id, result.last_seq)
        metrics.record_join(last_seq=last_seq, recovered=result.recovered)
        if reply:
            await socket.send_joined(room_id, result)


async def leave(socket: CommandSocket, command: protocol.LeaveRoom) -> None:
    if socket.core.leave(command.room_id):
        await services.room_leave(room_id=command.room_id, member=socket)
        await socket.presence_rooms_changed()
    await socket.send_frame(protocol.left_frame(command.room_id))


async def history(socket: CommandSocket, command: protocol.History) -> None:
    assert socket.identity is not None
    if command.around_seq is not None or command.after_seq is not None:
        await history_around(socket, command)
        return
    try:
        page = await services.room_history(
            room_id=command.room_id, before_seq=command.before_seq, limit=command.limit, identity=socket.identity
        )
    except ChatError as error:
        error.action = error.action or "history"
        error.room_id = command.room_id
        raise
    await socket.send_frame(protocol.history_frame(command.room_id, page.messages, has_more=page.has_more))


async def history_around(socket: CommandSocket, command: protocol.History) -> None:
    """`history` with aroundSeq (a jump far back) or afterSeq (filling up from there)."""
    assert socket.identity is not None
    try:
        if command.around_seq is not None:
            page = await message_changes.history_around(
                identity=socket.identity, room_id=command.room_id, around_seq=command.around_seq, limit=command.limit
            )
        else:
            assert command.after_seq is not None
            page = await message_changes.history_after(
                identity=socket.identity, room_id=command.room_id, after_seq=command.after_seq, limit=command.limit
            )
    except ChatError as error:
        error.action, error.room_id = "history", command.room_id
        raise
    await socket.send_frame(
        protocol.history_frame(
            command.room_id,
            page.messages,
            has_more=page.has_more,
            around_seq=command.around_seq,
            after_seq=command.after_seq,
            has_newer=page.has_newer,
        )
    )


async def ping(socket: CommandSocket, command: protocol.Ping) -> None:
    """`pong` from memory, at once; then the tail check, off the ping's path.

    The client's heartbeat doubles as the tail check: a lost broadcast of a room's
    latest message has no later seq to reveal it, so compare cursors with the store.
    It used to run before the pong, so a stalled store made every client's heartbeat
    time out and reconnect (issue 24); the store's health is not the socket's.
    """
    await socket.send_frame(protocol.pong_frame())
    if socket.tail_check is None or socket.tail_check.done():  # one at a time per socket
        socket.tail_check = asyncio.create_task(tail_check(socket))


async def tail_check(socket: CommandSocket) -> None:
    try:
        await socket.catch_up(fresh=False)
    except ChatError:
        log.warning("tail check skipped: storage unavailable, connection=%s", socket.connection_id)
    except Exception:
        log.exception("tail check failed on connection=%s", socket.connection_id)


# Moderation (chat.moderation, docs/moderation.md) ----------------------------------------


async def report(socket: CommandSocket, command: protocol.ReportMessage) -> None:
    assert socket.identity is not None
    try:
        await moderation.report_create(
            identity=socket.identity, room_id=command.room_id, message_id=command.message_id, reason=command.reason
        )
    except ChatError as error:
        error.action = "reportMessage"
        error.room_id = command.room_id
        raise
    await socket.send_frame(protocol.reported_frame(command.room_id, command.message_id))


async def moderate(socket: CommandSocket, command: protocol.ModerateMessage | protocol.BanUser) -> None:
    """A moderator's message menu (docs/moderation.md): the moderation services check the
    rights (`forbidden` for anyone else), write, audit and broadcast; this answers."""
    assert socket.identity is not None
    frame: dict[str, Any]
    try:
        if isinstance(command, protocol.ModerateMessage):
            await moderation.message_moderate(
                identity=socket.identity,
                room_id=command.room_id,
                message_id=command.message_id,
                removal=command.removal,
                reason=command.reason,
            )
            frame = protocol.moderated_frame(command.room_id, command.message_id, command.removal)
        else:
            ban, username = await moderation.user_ban_from_chat(
                identity=socket.identity,
                user_id=command.user_id,
                reason=command.reason,
                duration_seconds=command.duration_seconds,
                room_id=command.room_id,
                message_id=command.message_id,
            )
            frame = protocol.user_banned_frame(user_id=command.user_id, username=username, until=ban.expires_at)
    except ChatError as error:
        error.action = protocol.action_of(command)
        error.room_id = command.room_id
        raise
    await socket.send_frame(frame)


# People and rooms (chat.people) -----------------------------------------------------------


async def people_action(socket: CommandSocket, command: people_protocol.PeopleCommand) -> None:
    """Rooms users make, members, DMs (chat.people): one answer frame; the changes
    themselves reach sockets as room events and per-user frames."""
    assert socket.identity is not None
    frame = await database_sync_to_async(people.handle)(identity=socket.identity, command=command)
    await socket.send_frame(frame)


# Changes people make to messages (chat.message_changes, chat.reactions) -------------------


Change = protocol.EditMessage | protocol.DeleteMessage | protocol.ChangeReaction


async def change(socket: CommandSocket, command: Change) -> None:
    """Edit, delete, react: the service writes and sends the room event; this answers."""
    assert socket.identity is not None
    try:
        if isinstance(command, protocol.EditMessage):
            changed = await message_changes.message_edit(
                identity=socket.identity,
                room_id=command.room_id,
                message_id=command.message_id,
                text=command.message,
                client_message_id=command.client_message_id,
            )
        elif isinstance(command, protocol.DeleteMessage):
            changed = await message_changes.message_delete(
                identity=socket.identity, room_id=command.room_id, message_id=command.message_id
            )
        else:
            changed = await reactions.reaction_change(
                identity=socket.identity,
                room_id=command.room_id,
                message_id=command.message_id,
                emoji=command.emoji,
                add=command.add,
            )
    except ChatError as error:
        error.action = protocol.action_of(command)
        error.room_id = command.room_id
        error.client_message_id = command.client_message_id
        raise
    await socket.send_frame(
        protocol.changed_frame(
            protocol.action_of(command),
            command.room_id,
            command.message_id,
            seq=changed.seq,
            client_message_id=command.client_message_id,
        )
    )


async def thread(socket: CommandSocket, command: protocol.ReadThread) -> None:
    assert socket.identity is not None
    try:
        found = await message_changes.thread_read(
            identity=socket.identity, room_id=command.room_id, message_id=command.message_id
        )
    except ChatError as error:
        error.action, error.room_id = "thread", command.room_id
        raise
    await socket.send_frame(protocol.thread_frame(command.room_id, found.root, found.replies))


# Read state, mentions and receipts (unread/, docs/protocol.md "Read state") ----------------


async def mark_read(socket: CommandSocket, command: protocol.MarkRead) -> None:
    """Answered apart (`answer_apart`): the mark waits for its batch, the socket's next
    frames (a reply, a typing frame) do not."""
    socket.answer_apart(command, _mark_read(socket, command))


async def _mark_read(socket: CommandSocket, command: protocol.MarkRead) -> None:
    assert socket.identity is not None
    try:
        frame = await unread.read_mark(
            identity=socket.identity, room_id=command.room_id, seq=command.seq, origin=socket.connection_id
        )
    except ChatError as error:
        error.action, error.room_id = "markRead", command.room_id
        raise
    await socket.send_frame(frame)


async def read_states(socket: CommandSocket, command: protocol.ReadStates) -> None:
    assert socket.identity is not None
    states = await unread.read_states(identity=socket.identity, room_ids=command.room_ids)
    await socket.send_frame({"type": "readStates", "rooms": states})


async def mentions(socket: CommandSocket, command: protocol.Mentions) -> None:
    assert socket.identity is not None
    await socket.send_frame(await unread.mentions_list(identity=socket.identity))


async def receipts(socket: CommandSocket, command: protocol.Receipts) -> None:
    assert socket.identity is not None
    try:
        frame = await unread.receipts(identity=socket.identity, room_id=command.room_id)
    except ChatError as error:
        error.action, error.room_id = "receipts", command.room_id
        raise
    await socket.send_frame(frame)


# Presence and typing (chat.ephemeral: the socket's own state) -----------------------------


async def typing(socket: CommandSocket, command: protocol.Typing) -> None:
    await socket.on_typing(command)


async def presence(socket: CommandSocket, command: protocol.SetPresence) -> None:
    await socket.on_presence(command)


Handler = Callable[[CommandSocket, Any], Awaitable[None]]

# command type -> its handler; every command chat.protocol parses has one (chat/tests/test_commands.py)
COMMANDS: dict[type, Handler] = {
    **dict.fromkeys(people_protocol.COMMANDS, people_action),
    protocol.SendMessage: send,
    protocol.JoinRoom: join,
    protocol.LeaveRoom: leave,
    protocol.History: history,
    protocol.Ping: ping,
    protocol.Authenticate: on_token,
    protocol.RefreshToken: on_token,
    protocol.ReportMessage: report,
    protocol.ModerateMessage: moderate,
    protocol.BanUser: moderate,
    protocol.Typing: typing,
    protocol.SetPresence: presence,
    protocol.EditMessage: change,
    protocol.DeleteMessage: change,
    protocol.ChangeReaction: change,
    protocol.ReadThread: thread,
    protocol.MarkRead: mark_read,
    protocol.ReadStates: read_states,
    protocol.Mentions: mentions,
    protocol.Receipts: receipts,
}
