"""A small model Chatsite client for end-to-end tests, over a real WebSocket.

It behaves as docs/protocol.md asks a client to: it keeps, per room, the highest seq it
has seen, drops a message it already has (by messageId), and resumes after a reconnect
with `joinRoom` + `lastSeq`. It also records what a well-behaved server must never do to
it (a duplicate, or a seq that skips one), so tests can assert on those.

    client = await ChatClient.connect(server.ws_url, cookie=cookie, origin=server.origin)
    await client.join("general")
    ack = await client.send_message("general", "hi")
    await client.wait_for_seq("general", ack["seq"])
    await client.reconnect()  # resumes every joined room from its last seq
    await client.close()

Every wait has a timeout (scaled by CHAT_TEST_TIMEOUT_FACTOR on slow machines).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from chat import events
from tests.frames import as_read

Frame = dict[str, Any]

TIMEOUT_FACTOR = float(os.environ.get("CHAT_TEST_TIMEOUT_FACTOR", "1"))
DEFAULT_TIMEOUT = 10.0 * TIMEOUT_FACTOR


def timeout(seconds: float) -> float:
    """A timing constant scaled for slow machines."""
    return seconds * TIMEOUT_FACTOR


def new_client_message_id() -> str:
    return str(uuid.uuid4())


@dataclass
class RoomLog:
    """What a client knows about one room: its messages in the order shown, by seq."""

    last_seq: int = 0
    messages: list[Frame] = field(default_factory=list)
    message_ids: set[str] = field(default_factory=set)
    duplicates: list[Frame] = field(default_factory=list)  # a messageId delivered twice
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (had, got) with got > had + 1
    out_of_order: list[tuple[int, int]] = field(default_factory=list)  # (had, got) with got <= had
    reloads: int = 0  # joins answered recovered: false, after which the log was replaced

    @property
    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.messages]

    @property
    def texts(self) -> list[str]:
        return [m["message"] for m in self.messages]

    def add(self, message: Frame, *, live: bool) -> None:
        if message["messageId"] in self.message_ids:
            self.duplicates.append(message)
            return
        seq = message["seq"]
        if live and self.last_seq and seq > self.last_seq + 1:
            self.gaps.append((self.last_seq, seq))
        if seq <= self.last_seq:
            self.out_of_order.append((self.last_seq, seq))
        self.message_ids.add(message["messageId"])
        self.messages.append(message)
        self.last_seq = max(self.last_seq, seq)

    def advance(self, seq: int) -> None:
        """A room event other than a message took `seq`: the cursor moves past it."""
        if self.last_seq and seq > self.last_seq + 1:
            self.gaps.append((self.last_seq, seq))
        self.last_seq = max(self.last_seq, seq)

    def reload(self, messages: list[Frame], last_seq: int) -> None:
        """Start over from a page, as a client must when a resume is not recovered."""
        self.reloads += 1
        self.messages, self.message_ids = [], set()
        self.last_seq = 0
        for message in messages:
            self.add(message, live=False)
        self.last_seq = max(self.last_seq, last_seq)


class ChatClient:
    """One browser tab's socket: a cookie, an Origin, and per-room state that survives reconnects."""

    def __init__(self, url: str, *, cookie: str | None, origin: str | None) -> None:
        self.url = url
        self.cookie = cookie
        self.origin = origin
        self.rooms: dict[str, RoomLog] = {}
        self.joined: set[str] = set()
        self.frames: list[Frame] = []  # every frame of the current socket, in order
        self.close_code: int | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    # Connection ------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, url: str, *, cookie: str | None, origin: str | None, max_size: int | None = 4 * 1024 * 1024
    ) -> ChatClient:
        client = cls(url, cookie=cookie, origin=origin)
        await client._open(max_size=max_size)
        return client

    async def _open(self, *, max_size: int | None = 4 * 1024 * 1024) -> None:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        ws = await websockets.connect(
            self.url,
            additional_headers=headers,
            origin=self.origin,  # type: ignore[arg-type]
            max_size=max_size,
            open_timeout=timeout(10),
            close_timeout=timeout(2),
            ping_interval=None,
        )
        self._ws = ws
        self.frames = []
        self.close_code = None
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                assert isinstance(raw, str), "the server sent a binary frame"
                for frame in as_read(json.loads(raw)):
                    self._accept(frame)
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            async with self._changed:
                self._changed.notify_all()

    def _accept(self, frame: Frame) -> None:
        self.frames.append(frame)
        if frame.get("type") == "message":
            self.room(frame["roomId"]).add(frame, live=True)
        elif frame.get("type") in events.ROOM_EVENT_TYPES and "seq" in frame and "roomId" in frame:
            self.room(frame["roomId"]).advance(frame["seq"])  # a removal, new settings, ...
        elif frame.get("type") == "joined":
            log = self.room(frame["roomId"])
            page = [{"type": "message", **message} for message in frame["messages"]]
            if not frame["recovered"]:
                log.reload(page, frame["lastSeq"])  # a hole we cannot fill: reload the room
                return
            for message in page:
                log.add(message, live=False)
            log.last_seq = max(log.last_seq, frame["lastSeq"])

    @property
    def ws(self) -> ClientConnection:
        assert self._ws is not None, "not connected"
        return self._ws

    @property
    def closed(self) -> bool:
        return self._reader is None or self._reader.done()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._reader, timeout(5))

    async def reconnect(self, *, resume: bool = True) -> dict[str, Frame]:
        """Open a new socket (closing the old one) and resume each joined room from its last seq."""
        await self.close()
        await self._open()
        joined: dict[str, Frame] = {}
        if resume:
            for room_id in sorted(self.joined):
                joined[room_id] = await self.join(room_id, last_seq=self.room(room_id).last_seq)
        return joined

    async def wait_closed(self, wait: float = DEFAULT_TIMEOUT) -> int | None:
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), wait)
        return self.close_code

    # Frames ----------------------------------------------------------------------------

    def room(self, room_id: str) -> RoomLog:
        return self.rooms.setdefault(room_id, RoomLog())

    async def send_json(self, frame: Frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def wait_for(
        self, predicate: Callable[[Frame], bool], *, after: int = 0, wait: float = DEFAULT_TIMEOUT
    ) -> Frame:
        """The first frame at index >= `after` that matches, waiting for it to arrive."""

        def find() -> Frame | None:
            return next((f for f in self.frames[after:] if predicate(f)), None)

        async def until_found() -> Frame:
            async with self._changed:
                while True:
                    found = find()
                    if found is not None:
                        return found
                    if self.closed:
                        raise ConnectionError(f"socket closed with {self.close_code} while waiting")
                    await self._changed.wait()

        return await asyncio.wait_for(until_found(), wait)

    async def request(self, frame: Frame | str | bytes, *, expect: str, wait: float = DEFAULT_TIMEOUT) -> Frame:
        """Send one frame and return the first reply of type `expect` or `error` that follows it.

        Replies to one socket come in the order of its frames, but pushed events are not replies
        and come through the fan-out, after a reply sent straight to the socket: a `roomAdded`
        for the room a `createRoom` made arrived after its `done`, and was taken for the answer
        to the next frame (a `joinRoom`). So the answer is the first `expect` or `error` frame.
        """
        mark = len(self.frames)
        if isinstance(frame, dict):
            await self.send_json(frame)
        else:
            await self.send_raw(frame)
        reply = await self.wait_for(lambda f: f["type"] in (expect, "error"), after=mark, wait=wait)
        assert reply["type"] in (expect, "error"), f"expected {expect!r}, got {reply}"
        return reply

    async def expect_error(self, frame: Frame | str | bytes, *, wait: float = DEFAULT_TIMEOUT) -> Frame:
        reply = await self.request(frame, expect="error", wait=wait)
        assert reply["type"] == "error", f"expected an error frame, got {reply}"
        return reply

    async def ping(self) -> None:
        """Round-trip a ping: the socket is open and answering."""
        reply = await self.request({"action": "ping"}, expect="pong")
        assert reply == {"type": "pong"}, reply

    # Chat ------------------------------------------------------------------------------

    async def join(self, room_id: str, *, last_seq: int | None = None) -> Frame:
        frame: Frame = {"action": "joinRoom", "roomId": room_id}
        if last_seq is not None:
            frame["lastSeq"] = last_seq
        reply = await self.request(frame, expect="joined")
        assert reply["type"] == "joined", reply
        self.joined.add(room_id)
        return reply

    async def resume(self, room_id: str) -> Frame:
        return await self.join(room_id, last_seq=self.room(room_id).last_seq)

    async def leave(self, room_id: str) -> Frame:
        reply = await self.request({"action": "leaveRoom", "roomId": room_id}, expect="left")
        self.joined.discard(room_id)
        return reply

    async def history(self, room_id: str, *, before_seq: int | None = None, limit: int | None = None) -> Frame:
        frame: Frame = {"action": "history", "roomId": room_id}
        if before_seq is not None:
            frame["beforeSeq"] = before_seq
        if limit is not None:
            frame["limit"] = limit
        return await self.request(frame, expect="history")

    async def send_message(
        self, room_id: str, text: str, *, client_message_id: str | None = None, wait: float = DEFAULT_TIMEOUT
    ) -> Frame:
        """Send and return the ack (or the error frame) answering this clientMessageId."""
        cmid = client_message_id or new_client_message_id()
        mark = len(self.frames)
        await self.send_json({"action": "sendMessage", "roomId": room_id, "message": text, "clientMessageId": cmid})
        return await self.wait_for(
            lambda f: f["type"] in ("ack", "error") and f.get("clientMessageId") == cmid, after=mark, wait=wait
        )

    async def wait_for_seq(self, room_id: str, seq: int, *, wait: float = DEFAULT_TIMEOUT) -> RoomLog:
        """Wait until this client has seen `room_id` up to `seq`."""
        log = self.room(room_id)

        async def until() -> None:
            async with self._changed:
                while log.last_seq < seq:
                    if self.closed:
                        raise ConnectionError(f"socket closed with {self.close_code} at seq {log.last_seq}")
                    await self._changed.wait()

        await asyncio.wait_for(until(), wait)
        return log

    async def quiet(self, room_id: str | None = None) -> list[Frame]:
        """Frames that arrived before a ping's pong: anything the server had queued for us.

        A ping is answered after every event already delivered to this socket, so an empty
        list means the server sent nothing (for `room_id`, if given) up to now.
        """
        mark = len(self.frames)
        await self.ping()
        pong = max(i for i, f in enumerate(self.frames) if f["type"] == "pong")
        got = self.frames[mark:pong]
        return [f for f in got if room_id is None or f.get("roomId") == room_id]


# HTTP: rooms are created on the room list page, as a browser does. -------------------------


def page_csrf_token(base_url: str, cookie: str) -> str:
    """The CSRF token of the room list page, as the signed-in page (`cookie`) holds it."""
    request = urllib.request.Request(base_url + "/", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=timeout(10)) as r:
        page = r.read().decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "no CSRF token on the room list page (not signed in?)"
    return match.group(1)


def create_room(base_url: str, cookie: str, name: str) -> str:
    """Create a room named `name` as the pages' session does (POST /api/rooms with the page's
    CSRF token), signed in with `cookie`, and return its id (the name's slug and the random
    tail the server draws)."""
    headers = {"Cookie": cookie}
    token = page_csrf_token(base_url, cookie)
    request = urllib.request.Request(
        base_url + "/api/rooms",
        data=json.dumps({"name": name}).encode(),
        headers={
            **headers,
            "Content-Type": "application/json",
            "X-CSRFToken": token,
            "Referer": base_url + "/",
        },
    )
    with urllib.request.urlopen(request, timeout=timeout(10)) as r:
        made = json.loads(r.read())
    room_id = made["room"]["roomId"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", room_id), f"room {name!r} was not created: {made}"
    return str(room_id)
