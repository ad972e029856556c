"""The fault suite's model client, its set-up script and the invariant check.

`FaultClient` is tests/e2e/client.py's ChatClient (per-room seq, dedupe by messageId, resume
with lastSeq) plus what a real client does when things break: reconnect with backoff (through
a balancer, to whichever process answers), resume every joined room, and retry an unacked
send with the same clientMessageId until it is acked. It remembers every ack per
clientMessageId, and any two acks for one id that differ.

`check_invariants` is run after every scenario:
1. a probe message reaches every open socket joined to the room (none is open but deaf);
2. every acknowledged message is stored exactly once, with the seq and id of its ack;
3. the room's stored seqs are 1..N with no hole, and every client's view is the room's
   history in order: a contiguous run ending at N, message for message the stored ones,
   with no duplicate, gap or reordering ever shown.

Every wait and loop here is bounded in time and count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Origin

from tests.e2e.client import ChatClient, Frame, new_client_message_id, timeout
from tests.fixtures.servers import manage_shell

# What a socket may be closed with while a fault is on, for a client that then resumes.
RESUME_CODES = frozenset({1001, 1006, 1011, 1012, 1013})
_RECONNECT_ERRORS = (OSError, ConnectionError, ConnectionClosed, InvalidHandshake, TimeoutError, EOFError)


async def _backoff(attempt: int, deadline: float) -> None:
    """Exponential backoff with jitter, as chat.js does: a storm spreads out (never past `deadline`)."""
    backoff = 0.05 * 2 ** min(attempt, 5) * random.uniform(0.5, 1.5)
    await asyncio.sleep(max(0.0, min(deadline - asyncio.get_running_loop().time(), backoff)))


class Retry(Exception):
    """The server answered, but not yet what we need: try again shortly."""


class FaultClient(ChatClient):
    """A ChatClient that survives faults the way docs/protocol.md asks a client to."""

    def __init__(
        self, url: str, *, cookie: str | None, origin: str | None, name: str = "", local_host: str | None = None
    ) -> None:
        super().__init__(url, cookie=cookie, origin=origin)
        self.name = name
        self.local_host = local_host  # connect from this loopback address (127.x.y.z)
        self.acks: dict[str, Frame] = {}  # clientMessageId -> the first ack
        self.ack_mismatches: list[tuple[Frame, Frame]] = []  # a later ack that differs from the first
        self.close_codes: list[int | None] = []  # codes of every socket the server closed under us
        self.reconnects = 0
        self._we_closed = False  # the current socket was closed by this client, not the server

    @classmethod
    async def open(
        cls, url: str, *, cookie: str | None, origin: str | None, name: str = "", local_host: str | None = None
    ) -> FaultClient:
        """Connect (retrying, as after a fault) and return the client; join rooms next."""
        client = cls(url, cookie=cookie, origin=origin, name=name, local_host=local_host)
        await client.recover(wait=timeout(20), resume=False)
        return client

    async def _open(self, *, max_size: int | None = 4 * 1024 * 1024) -> None:
        extra: dict[str, Any] = {"local_addr": (self.local_host, 0)} if self.local_host else {}
        ws = await websockets.connect(
            self.url,
            additional_headers={"Cookie": self.cookie} if self.cookie else {},
            origin=Origin(self.origin) if self.origin else None,
            max_size=max_size,
            open_timeout=timeout(10),
            close_timeout=timeout(2),
            ping_interval=None,
            **extra,
        )
        self._ws = ws
        self._we_closed = False
        self.frames = []
        self.close_code = None
        self._reader = asyncio.create_task(self._read(ws))

    async def close(self) -> None:
        if not self.closed:
            self._we_closed = True
        await super().close()

    def _accept(self, frame: Frame) -> None:
        super()._accept(frame)
        if frame.get("type") == "ack" and frame.get("clientMessageId"):
            first = self.acks.setdefault(frame["clientMessageId"], frame)
            if first != frame:
                self.ack_mismatches.append((first, frame))

    async def recover(self, *, wait: float = timeout(30), resume: bool = True) -> None:
        """(Re)open the socket and resume every joined room, with backoff, within `wait` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        if self._ws is not None:
            self.reconnects += 1
            if self.closed and not self._we_closed:
                self.close_codes.append(self.close_code)
        for attempt in range(200):
            with contextlib.suppress(*_RECONNECT_ERRORS):
                await asyncio.wait_for(self.close(), timeout(3))
            try:
                await self._open()
                if resume:
                    for room_id in sorted(self.joined):
                        await self._rejoin(room_id)
                return
            except (*_RECONNECT_ERRORS, Retry):
                if loop.time() >= deadline:
                    raise
            await _backoff(attempt, deadline)
        raise TimeoutError(f"{self.name}: could not reconnect")

    async def join(self, room_id: str, *, last_seq: int | None = None, wait: float = timeout(10)) -> Frame:
        """Join, retrying on this socket after a retryable error's retryAfter (a busy store in a
        storm: storage_unavailable), as docs/protocol.md asks of a client, within `wait`."""
        frame: Frame = {"action": "joinRoom", "roomId": room_id}
        if last_seq is not None:
            frame["lastSeq"] = last_seq
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        for _attempt in range(50):  # bounded; a retryAfter of 1 s fills a 40 s wait
            reply = await self.request(frame, expect="joined", wait=max(0.1, deadline - loop.time()))
            if reply["type"] == "joined":
                self.joined.add(room_id)
                return reply
            pause = float(reply.get("retryAfter") or 0.2)
            if not reply.get("retryable") or loop.time() + pause >= deadline:
                break
            await asyncio.sleep(pause)
        raise Retry(f"{self.name}: join {room_id}: {reply}")

    async def open_and_join(self, room_id: str, *, wait: float = timeout(40)) -> Frame:
        """Open a socket and join `room_id`, within `wait` seconds. A server that closes the
        socket before the join is answered (1011 from a process whose store queue is past its
        bound, in a storm) is met as chat.js meets it: a new socket after a backoff."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        for attempt in range(50):  # bounded: each round waits for a socket or a join
            await self.recover(wait=max(0.1, deadline - loop.time()), resume=False)
            try:
                return await self.join(room_id, wait=max(0.1, deadline - loop.time()))
            except (*_RECONNECT_ERRORS, Retry):
                if loop.time() >= deadline:
                    raise
            await _backoff(attempt, deadline)
        raise TimeoutError(f"{self.name}: could not open and join {room_id}")

    async def _rejoin(self, room_id: str) -> None:
        # A slow answer is better than a new socket: reconnecting on a timeout would feed a storm.
        await self.join(room_id, last_seq=self.room(room_id).last_seq, wait=timeout(30))

    async def ensure_open(self, *, wait: float = timeout(30)) -> None:
        if self.closed:
            await self.recover(wait=wait)

    async def send_reliably(
        self, room_id: str, text: str, *, client_message_id: str | None = None, wait: float = timeout(30)
    ) -> Frame:
        """Send until acked: retryable errors after retryAfter, a lost socket by reconnecting;
        every attempt carries the same clientMessageId. Returns the ack."""
        cmid = client_message_id or new_client_message_id()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        for _attempt in range(100):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await self.ensure_open(wait=remaining)
                reply = await self.send_message(room_id, text, client_message_id=cmid, wait=min(remaining, timeout(6)))
            except (*_RECONNECT_ERRORS, Retry):
                # No answer: the socket (or the process behind it) is gone or stuck. A new
                # socket, then the same clientMessageId again.
                with contextlib.suppress(*_RECONNECT_ERRORS):
                    await asyncio.wait_for(self.close(), timeout(3))
                continue
            if reply["type"] == "ack":
                return reply
            if not reply.get("retryable"):
                raise AssertionError(f"{self.name}: send refused for good: {reply}")
            await asyncio.sleep(min(float(reply.get("retryAfter") or 0.2), max(0.0, deadline - loop.time())))
        raise TimeoutError(f"{self.name}: {text!r} not acked within {wait:.0f} s")


async def talk(client: FaultClient, room_id: str, prefix: str, count: int, *, pause: float = 0.02) -> list[Frame]:
    """Send `count` messages one after the other, each until acked; return the acks."""
    acks = []
    for n in range(count):
        acks.append(await client.send_reliably(room_id, f"{prefix}{n}"))
        await asyncio.sleep(pause)
    return acks


# --- what the store holds -------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    seq: int
    message_id: str
    client_message_id: str | None
    user_id: str
    text: str


StoreReader = Callable[[str], list[Stored]]


def sqlite_reader(db_path: Path) -> StoreReader:
    """Read a room's messages straight from a local-backend SQLite file."""

    def read(room_id: str) -> list[Stored]:
        with contextlib.closing(sqlite3.connect(db_path, timeout=20)) as db:
            rows = db.execute(
                "SELECT seq, message_id, client_message_id, user_id, text FROM chat_message"
                " WHERE room_id = ? ORDER BY seq",
                (room_id,),
            ).fetchall()
        return [Stored(*row) for row in rows]

    return read


def sqlite_connection_rows(
    db_path: Path, usernames: Iterable[str], *, since: datetime | None = None
) -> list[tuple[str, str]]:
    """(connection_id, username) of these users' connection rows (opened after `since`, if given)."""
    names = list(usernames)
    with contextlib.closing(sqlite3.connect(db_path, timeout=20)) as db:
        rows: list[tuple[str, str, str]] = db.execute(
            "SELECT connection_id, username, connected_at FROM chat_connection"
            f" WHERE username IN ({','.join('?' * len(names))})",
            names,
        ).fetchall()
    return [
        (connection_id, username)
        for connection_id, username, connected_at in rows
        if since is None or datetime.fromisoformat(connected_at).replace(tzinfo=UTC) >= since
    ]


# --- the invariant check ----------------------------------------------------------------------


@dataclass
class Report:
    """What the check saw, for docs/reliability.md's observed column."""

    stored: int = 0
    acked: int = 0
    clients: int = 0
    reconnects: int = 0
    close_codes: dict[int | None, int] = field(default_factory=dict)

    def __str__(self) -> str:
        codes = ", ".join(f"{code}x{n}" for code, n in sorted(self.close_codes.items(), key=str)) or "none"
        return (
            f"{self.stored} stored, {self.acked} acked, {self.clients} clients, "
            f"{self.reconnects} reconnects, closes: {codes}"
        )


async def check_invariants(
    room_id: str,
    clients: list[FaultClient],
    read_store: StoreReader,
    *,
    prober: FaultClient | None = None,
    recover: bool = True,
    wait: float = timeout(30),
) -> Report:
    """The three invariants of this suite (module docstring). Returns what it saw."""
    # Closed sockets are the client's to reopen, as a browser would; open ones must hear.
    if recover:
        await asyncio.gather(*(c.recover(wait=wait) for c in clients if c.closed))
    prober = prober or clients[0]
    probe = await prober.send_reliably(room_id, f"probe {uuid.uuid4().hex[:8]}", wait=wait)
    deaf = []
    for client in clients:
        if client.closed or room_id not in client.joined:
            continue
        try:
            await client.wait_for_seq(room_id, probe["seq"], wait=timeout(10))
        except (TimeoutError, ConnectionError):
            deaf.append(client.name)
    assert not deaf, f"open but deaf after the fault: {deaf}"

    stored = read_store(room_id)
    seqs = [m.seq for m in stored]
    assert seqs == list(range(1, len(stored) + 1)), f"stored seqs have holes or repeats: {seqs}"
    by_seq = {m.seq: m for m in stored}
    ids = [m.message_id for m in stored]
    assert len(set(ids)) == len(ids), "a message id is stored twice"
    keys = [(m.user_id, m.client_message_id) for m in stored if m.client_message_id]
    assert len(set(keys)) == len(keys), "a clientMessageId is stored twice"

    acked = 0
    report = Report(stored=len(stored), clients=len(clients))
    for client in clients:
        assert client.ack_mismatches == [], f"{client.name}: a retry got another ack: {client.ack_mismatches[:1]}"
        for cmid, ack in client.acks.items():
            if ack["roomId"] != room_id:
                continue
            acked += 1
            held = by_seq.get(ack["seq"])
            assert held is not None, f"acked seq {ack['seq']} is not stored"
            assert (held.message_id, held.client_message_id) == (ack["messageId"], cmid), f"ack {ack} vs {held}"
        log = client.room(room_id)
        if client.closed or room_id not in client.joined:
            continue
        assert (log.duplicates, log.gaps, log.out_of_order) == ([], [], []), (
            f"{client.name} was shown duplicates {log.duplicates[:2]}, gaps {log.gaps[:3]}, "
            f"reordering {log.out_of_order[:3]}"
        )
        shown = log.seqs
        assert shown == list(range(shown[0], len(stored) + 1)), (
            f"{client.name} shows {shown}, store has 1..{len(stored)}"
        )
        assert [m["messageId"] for m in log.messages] == ids[shown[0] - 1 :], f"{client.name} shows other messages"
        report.reconnects += client.reconnects
        for code in client.close_codes:
            report.close_codes[code] = report.close_codes.get(code, 0) + 1
    report.acked = acked
    return report


# --- set-up: users, sessions and rooms in one Django process ----------------------------------

_SETUP = """
import json
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from chat import services
from chat.storage import get_store
spec = json.loads({spec!r})
cookies = {{}}
for name, groups in spec["users"].items():
    user, created = get_user_model().objects.get_or_create(username=name)
    if created:
        user.set_unusable_password()
        user.save()
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    cookies[name] = settings.SESSION_COOKIE_NAME + "=" + session.session_key
for room in spec["rooms"]:
    services.room_create(room_id=room)
for room, members in spec["private"].items():
    services.room_create(room_id=room)
    get_store().update_room(
        room_id=room, private=True, now=services.utcnow(), ttl_seconds=settings.CHAT_MESSAGE_TTL_SECONDS
    )
    for name in members:
        get_store().add_member(room_id=room, user_id=str(get_user_model().objects.get(username=name).pk))
print("COOKIES" + json.dumps(cookies))
"""


def set_up(
    env: dict[str, str],
    *,
    users: dict[str, list[str]],
    rooms: Iterable[str] = (),
    private: dict[str, list[str]] | None = None,
) -> dict[str, str]:
    """Create users (in the given groups), a session for each, rooms, and private rooms with
    their members, in the database and store `env` points at: one process, no password
    hashing. Returns each user's Cookie header."""
    code = _SETUP.format(spec=json.dumps({"users": users, "rooms": list(rooms), "private": private or {}}))
    done = manage_shell(env, code)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("COOKIES"))
    cookies: dict[str, str] = json.loads(line.removeprefix("COOKIES"))
    return cookies


def new_room(prefix: str = "f") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def any_frame_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("type") == kind]
