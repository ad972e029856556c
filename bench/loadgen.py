"""The load generator: a separate process that opens N WebSockets and measures delivery.

It reads a plan (JSON: the server under test and a list of loads) and prints one JSON row
per load on stdout; progress goes to stderr. The runner (bench/run.py) writes plans; a plan
can also be written by hand:

    python -m bench.loadgen --plan plan.json

Clients are `websockets`' sans-I/O ClientProtocol on plain asyncio.Protocol transports
(uvloop when installed): no task and no future per frame, so one load-generator process
receives several times more frames per second than one built on the asyncio client, and
the server, not the generator, runs out of CPU first. When the generator does run out
(its own CPU near one core), the row says so: `loadgen_saturated`.

Each sent message carries its load tag, a unique key and the sender's clock in its text:
"L<load> k<key> t<monotonic ns>". CLOCK_MONOTONIC is one clock for every process on the
machine, so latency is receive time minus send time with no clock skew. Receivers dedupe
per socket (Chatsite by messageId, the peers by key); what arrives after the drain
timeout, or never, is lost. Sends are open-loop at a fixed total rate: the generator
never waits for a reply before the next send, so a slow server cannot slow the load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit

import psutil
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

# A ramp step passes when its p99 is under this and nothing is lost (the target).
P99_TARGET_MS = 250.0
# Above this share of one core the generator, not the server, may be the bottleneck.
SATURATED_CPU_PCT = 90.0
CONNECT_TIMEOUT_S = 30.0
# Time kept back, under a budget, for each load still to come: this share of the budget,
# at most this many seconds.
RESERVE_PER_LOAD = 0.12
RESERVE_PER_LOAD_MAX_S = 8.0


def room_names(rooms: int, members: int) -> list[str]:
    """Room ids of a connection group; valid Chatsite room ids. The runner creates them."""
    return [f"b{rooms}x{members}-{i}" for i in range(rooms)]


def log(message: str) -> None:
    print(f"loadgen: {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[int], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (ns), in ms; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1] / 1e6


# --- one WebSocket ----------------------------------------------------------------------


class Conn(asyncio.Protocol):
    """One client socket. Frames are handled in data_received: no task per socket."""

    def __init__(self, gen: LoadGen, index: int, url: str, room: str, cookie: str | None, origin: str) -> None:
        self.gen = gen
        self.index = index
        self.room = room
        self.cookie = cookie
        self.ws = ClientProtocol(parse_uri(url), origin=Origin(origin), max_size=2**22)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.joined: asyncio.Future[None] = loop.create_future()
        for future in (self.opened, self.joined):
            # A socket that closes before anyone awaits these is counted elsewhere.
            future.add_done_callback(_retrieve)
        self.seen: set[str] = set()
        self.presence_frames = 0
        self.closed = False
        # Read state (Chatsite): the newest seq this socket got in its room, and the last it marked read.
        self.last_seq = 0
        self.marked_seq = 0
        self._parts: list[bytes] = []

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        request = self.ws.connect()
        if self.cookie:
            request.headers["Cookie"] = self.cookie
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                text = whole_text(event, self._parts)
                if text is not None:
                    self.gen.on_text(self, text, now)
            elif isinstance(event, Response) and not self.opened.done():
                if ws.handshake_exc is None:
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(ConnectionError(f"handshake: {ws.handshake_exc}"))
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gen.on_lost(self)
        for future in (self.opened, self.joined):
            if not future.done():
                future.set_exception(ConnectionError(f"closed {self.ws.close_code}"))

    # sending

    def _flush(self) -> None:
        write_out(self.ws, self.transport)

    def send_text(self, text: str) -> None:
        if self.closed:
            return
        self.ws.send_text(text.encode())
        self._flush()

    def close(self) -> None:
        if self.closed or self.transport is None:
            return
        with contextlib.suppress(Exception):
            self.ws.send_close(1000)
            self._flush()
        self.transport.close()


def whole_text(frame: Frame, parts: list[bytes]) -> bytes | None:
    """A text message once its last fragment is in (`parts` keeps the earlier ones), else None."""
    payload = cast(bytes, frame.data)  # the parser hands out bytes
    if frame.opcode is Opcode.TEXT:
        if frame.fin:
            return payload
        parts[:] = [payload]
    elif frame.opcode is Opcode.CONT and parts:
        parts.append(payload)
        if frame.fin:
            whole = b"".join(parts)
            parts.clear()
            return whole
    return None


def write_out(ws: ClientProtocol, transport: asyncio.Transport | None) -> None:
    """Hand the transport what the sans-I/O protocol has to send; close it when the protocol says."""
    if transport is None or transport.is_closing():
        return
    for chunk in ws.data_to_send():
        if chunk:
            transport.write(chunk)
        else:  # the protocol asks for a half-close after its close frame
            transport.close()
            return
    if ws.close_expected():
        transport.close()


# --- what the servers speak -------------------------------------------------------------


class Chatsite:
    """Chatsite's wire protocol v1 (docs/protocol.md)."""

    needs_join = True

    @staticmethod
    def path(room: str) -> str:
        return "/ws/"

    @staticmethod
    def join(room: str) -> str:
        return json.dumps({"action": "joinRoom", "roomId": room})

    @staticmethod
    def message(room: str, text: str, key: str) -> str:
        return json.dumps({"action": "sendMessage", "roomId": room, "message": text, "clientMessageId": key})

    @staticmethod
    def handle(gen: LoadGen, conn: Conn, data: bytes, now: int) -> None:
        frame = json.loads(data)
        kind = frame.get("type")
        if kind == "message":
            gen.delivery(conn, frame["messageId"], frame["message"], now)
            conn.last_seq = max(conn.last_seq, int(frame.get("seq") or 0))
        elif kind == "ack":
            gen.acks += 1
        elif kind == "joined":
            if not conn.joined.done():
                conn.joined.set_result(None)
        elif kind == "error":
            gen.on_error(frame)
        elif kind == "typing":
            gen.typing_received += 1
        elif kind == "presence":
            gen.presence_received += 1
            conn.presence_frames += 1
            users = frame.get("users")  # a window's changes in one frame (docs/protocol.md)
            gen.presence_updates += len(users) if isinstance(users, list) else 1
        elif kind == "readState":
            gen.read_states_received += 1
        elif kind == "pong":
            gen.pongs_received += 1

    @staticmethod
    def show_presence() -> str:
        """Sockets that send this receive typing and presence frames (docs/protocol.md)."""
        return json.dumps({"action": "presence", "status": "online"})

    @staticmethod
    def typing(room: str) -> str:
        return json.dumps({"action": "typing", "roomId": room})

    @staticmethod
    def mark_read(room: str, seq: int) -> str:
        return json.dumps({"action": "markRead", "roomId": room, "seq": seq})

    @staticmethod
    def ping() -> str:
        return json.dumps({"action": "ping"})


class Tutorial:
    """The Channels tutorial's protocol, which the bare peer speaks too."""

    needs_join = False

    @staticmethod
    def path(room: str) -> str:
        return f"/ws/chat/{room}/"

    @staticmethod
    def join(room: str) -> str:
        raise NotImplementedError

    @staticmethod
    def message(room: str, text: str, key: str) -> str:
        return json.dumps({"message": text})

    @staticmethod
    def handle(gen: LoadGen, conn: Conn, data: bytes, now: int) -> None:
        text = json.loads(data)["message"]
        gen.delivery(conn, None, text, now)


PROTOCOLS: dict[str, type[Chatsite] | type[Tutorial]] = {"chatsite": Chatsite, "tutorial": Tutorial}


# --- process measurements ---------------------------------------------------------------


def _procs(pids: Iterable[int]) -> list[psutil.Process]:
    found: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def rss_bytes(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


class DbBackendsCpu:
    """CPU seconds of the PostgreSQL backends serving one database (the server runs on this
    machine: /proc), summed over backends that come and go: each `poll` adds every backend's
    growth since it was last seen (a new one's whole CPU). Chatsite's connections live
    CONN_MAX_AGE (60 s) and are then replaced; what a backend spends after its last poll
    before it ends is missed, so the load polls every DB_POLL_S."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.seen: dict[int, float] = {}
        self.total = 0.0
        self.poll(first=True)

    def poll(self, *, first: bool = False) -> float:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        for proc in _procs(row[0] for row in rows):
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                cpu = times.user + times.system
                last = self.seen.get(proc.pid, cpu if first else 0.0)
                self.total += cpu - last
                self.seen[proc.pid] = cpu
        return self.total


DB_POLL_S: Final = 0.2


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot: the noise from other work shows here."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class Snapshot:
    wall: float
    server: float
    redis: float
    me: float
    machine: float
    db: float = 0.0  # the PostgreSQL backends serving the server's database (plan's db_url)


# --- the generator ----------------------------------------------------------------------


@dataclass
class Group:
    """The sockets of one load shape: `rooms` rooms of `members` sockets each."""

    rooms: int
    members: int
    conns: list[list[Conn]] = field(default_factory=list)
    connected: int = 0
    failures: int = 0
    connect_per_s: float | None = None
    rss_per_conn_kb: float | None = None
    connect_cpu_s: float = 0.0
    unopened: int = 0  # not tried, or given up, when the time budget ran out


class LoadGen:
    def __init__(self, plan: dict[str, Any]) -> None:
        server = plan["server"]
        self.name: str = server["name"]
        self.proto = PROTOCOLS[server["protocol"]]
        self.urls: list[str] = server["urls"]
        # A browser's Origin is the site it loaded, the Host its socket goes to. The generator
        # reaches each process directly (no balancer in front), so each socket's origin is its
        # own process's: one origin for all would be cross-site to the second process, which
        # refuses a handshake with cookies from another origin (docs/auth.md).
        self.origin: str | None = server.get("origin")
        self.cookies: list[str] = server.get("cookies") or []
        self.server_procs = _procs(server.get("pids", []))
        self.redis_procs = _procs(server.get("redis_pids", []))
        # With a PostgreSQL store the server's work is partly its database backends' (the
        # search index's tsvector and GIN writes): counted when the plan names the database.
        self.db = DbBackendsCpu(server["db_url"]) if server.get("db_url") else None
        self.me = psutil.Process()
        self.concurrency: int = plan.get("connect_concurrency", 50)
        self.settle_max_s: float = plan.get("settle_max_s", 10.0)
        self.group: Group | None = None
        # Sockets opened while this is set send `presence` once joined, as the UIs do: they
        # then receive presence frames (`--presence`, issue 22 goal 5).
        self.show_presence = False
        self.presence_received = 0
        self.presence_updates = 0  # the users' changes those frames told
        self.connect_errors = 0
        self.budget_s: float | None = plan.get("budget_s")
        self.deadline: float | None = None
        # The current load's deadline: the budget less a reserve for the loads after it, so
        # a slow connect or a long ramp cannot starve them.
        self.load_deadline: float | None = None
        self.prev_tag = ""
        self.load_tag = ""
        self.load_seq = 0
        self.next_conn = 0
        self._reset()

    # counters of the current load

    def _reset(self) -> None:
        self.typing_received = 0
        self.read_states_received = 0
        self.pongs_received = 0
        self.received = 0
        self.duplicates = 0
        self.stale = 0
        self.acks = 0
        self.send_errors = 0
        self.other_errors: dict[str, int] = {}
        self.disconnects = 0
        self.latencies: list[int] = []
        self.last_recv_ns = 0
        self.late = 0
        self.in_load = False

    def on_text(self, conn: Conn, data: bytes, now: int) -> None:
        try:
            self.proto.handle(self, conn, data, now)
        except (ValueError, KeyError, TypeError):
            self.other_errors["unparsable_frame"] = self.other_errors.get("unparsable_frame", 0) + 1

    def delivery(self, conn: Conn, message_id: str | None, text: str, now: int) -> None:
        parts = text.split(" ", 3)
        key = message_id or (parts[1] if len(parts) > 1 else "")
        seen = conn.seen
        if len(parts) < 3 or parts[0] != self.load_tag:
            if parts[0] == self.prev_tag and key not in seen:
                seen.add(key)
                self.late += 1  # after its load's drain ended: counted lost there, and late here
            else:
                self.stale += 1  # an earlier load's, or someone else's message
            return
        if key in seen:
            self.duplicates += 1
            return
        seen.add(key)
        self.received += 1
        self.latencies.append(now - int(parts[2][1:]))
        self.last_recv_ns = now

    def on_error(self, frame: dict[str, Any]) -> None:
        cmid = frame.get("clientMessageId") or ""
        if frame.get("action") == "sendMessage" and cmid.startswith(self.load_tag + "-"):
            self.send_errors += 1
        code = str(frame.get("code"))
        self.other_errors[code] = self.other_errors.get(code, 0) + 1

    def on_lost(self, conn: Conn) -> None:
        if self.in_load:
            self.disconnects += 1

    def snapshot(self) -> Snapshot:
        return Snapshot(
            wall=time.monotonic(),
            server=cpu_seconds(self.server_procs),
            redis=cpu_seconds(self.redis_procs),
            me=cpu_seconds([self.me]),
            machine=machine_busy_seconds(),
            db=self.db.poll() if self.db is not None else 0.0,
        )

    # connections

    async def _open(self, room: str, sem: asyncio.Semaphore) -> Conn | None:
        index = self.next_conn
        self.next_conn += 1
        url = self.urls[index % len(self.urls)]
        parts = urlsplit(url)
        cookie = self.cookies[index % len(self.cookies)] if self.cookies else None
        origin = self.origin or f"http://{parts.netloc}"
        conn = Conn(self, index, f"ws://{parts.netloc}{self.proto.path(room)}", room, cookie, origin)
        async with sem:
            try:
                if self.load_deadline is not None and time.monotonic() > self.load_deadline:
                    return None
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    loop = asyncio.get_running_loop()
                    await loop.create_connection(lambda: conn, parts.hostname or "127.0.0.1", parts.port or 80)
                    await conn.opened
                    if self.proto.needs_join:
                        conn.send_text(self.proto.join(room))
                        await conn.joined
                    if self.show_presence:
                        conn.send_text(self.proto.show_presence())  # type: ignore[union-attr]
            except (OSError, TimeoutError, ConnectionError) as exc:
                self.connect_errors += 1
                if self.connect_errors <= 5:
                    log(f"connect failed ({type(exc).__name__}: {exc})")
                conn.close()
                return None
            except asyncio.CancelledError:
                conn.close()
                raise
        return conn

    async def _open_many(
        self, rooms: list[str], members: int, deadline: float | None = None
    ) -> list[list[Conn | None]]:
        """Open rooms x members sockets; those not open by the deadline are given up."""
        sem = asyncio.Semaphore(self.concurrency)
        # Interleave rooms so every room fills at the same pace.
        tasks = [[asyncio.ensure_future(self._open(room, sem)) for room in rooms] for _ in range(members)]
        flat = [t for row in tasks for t in row]
        timeout = None if deadline is None else max(0.1, deadline - time.monotonic())
        _, pending = await asyncio.wait(flat, timeout=timeout)
        if pending:
            log(f"{self.name}: {len(pending)} sockets not open within the time budget; going on without them")
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        def result(task: asyncio.Task[Conn | None]) -> Conn | None:
            return None if task.cancelled() or task.exception() else task.result()

        return [[result(tasks[m][r]) for m in range(members)] for r in range(len(rooms))]

    async def close_group(self) -> None:
        group, self.group = self.group, None
        if group is None:
            return
        conns = [c for room in group.conns for c in room]
        for conn in conns:
            conn.close()
        deadline = time.monotonic() + 5
        # Bounded poll: closes arrive in transport callbacks, one per socket.
        while time.monotonic() < deadline and any(not c.closed for c in conns):  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def ensure_group(
        self, rooms: int, members: int, connect_max_s: float | None = None, profile: dict[str, Any] | None = None
    ) -> Group:
        if self.group and (self.group.rooms, self.group.members) == (rooms, members):
            return self.group
        await self.close_group()
        await self.settle()
        names = room_names(rooms, members)
        # Warm up: the first sockets pay for imports and caches, not for being sockets.
        warm = [c for room in await self._open_many(names[:1], min(10, members)) for c in room if c]
        for conn in warm:
            conn.close()
        await asyncio.sleep(0.5)
        rss0 = rss_bytes(self.server_procs)
        log(f"{self.name}: opening {rooms} x {members} sockets")
        started = time.monotonic()
        deadline = self.load_deadline
        if connect_max_s is not None:
            deadline = min(deadline or math.inf, started + connect_max_s)
        profiler = self._start_profiler(profile)
        errors0 = self.connect_errors
        cpu0 = cpu_seconds(self.server_procs)
        opened = await self._open_many(names, members, deadline)
        elapsed = time.monotonic() - started
        connect_cpu_s = cpu_seconds(self.server_procs) - cpu0
        self._stop_profiler(profiler)
        group = Group(rooms=rooms, members=members)
        group.conns = [[c for c in room if c is not None] for room in opened]
        group.connected = sum(len(room) for room in group.conns)
        group.failures = self.connect_errors - errors0
        group.unopened = rooms * members - group.connected - group.failures
        group.connect_per_s = group.connected / elapsed if elapsed > 0 else None
        group.connect_cpu_s = connect_cpu_s
        await asyncio.sleep(1.0)  # let the server finish its per-socket work before reading RSS
        if group.connected:
            group.rss_per_conn_kb = (rss_bytes(self.server_procs) - rss0) / group.connected / 1024
        log(
            f"{self.name}: {group.connected} open ({group.failures} failed, {group.unopened} not tried) "
            f"at {group.connect_per_s or 0:.0f}/s, {group.rss_per_conn_kb or 0:.1f} KiB each"
        )
        self.group = group
        return group

    async def settle(self) -> bool:
        """Wait (bounded) until the server has worked off any backlog of the previous load."""
        deadline = time.monotonic() + self.settle_max_s
        while time.monotonic() < deadline:
            before = cpu_seconds(self.server_procs)
            await asyncio.sleep(0.3)
            if (cpu_seconds(self.server_procs) - before) / 0.3 < 0.10:
                return True
        log(f"{self.name}: server still busy after {self.settle_max_s}s")
        return False

    # loads

    async def run(self, loads: list[dict[str, Any]], emit: Callable[[dict[str, Any]], None]) -> None:
        if self.budget_s is not None:
            self.deadline = time.monotonic() + self.budget_s
        try:
            for index, spec in enumerate(loads):
                kind = spec["kind"]
                if self.deadline is not None and self.budget_s is not None:
                    reserve = min(RESERVE_PER_LOAD * self.budget_s, RESERVE_PER_LOAD_MAX_S)
                    self.load_deadline = self.deadline - reserve * (len(loads) - index - 1)
                if self.deadline is not None and time.monotonic() > self.deadline - 2:
                    log(f"{self.name}: time budget spent; {kind} {spec['rooms']}x{spec['members']} skipped")
                    row = self._row(self._load(spec, "skipped", float(spec.get("rate", 0))), Group(0, 0))
                    row["skipped"] = kind
                    emit(row)
                    continue
                if kind == "idle":
                    emit(await self.idle(spec))
                elif kind == "ramp":
                    for row in await self.ramp(spec):
                        emit(row)
                else:
                    emit(await self.fixed(spec))
        finally:
            await self.close_group()

    def _load(self, spec: dict[str, Any], kind: str, rate: float) -> dict[str, Any]:
        return {
            "kind": kind,
            "rooms": spec["rooms"],
            "members_per_room": spec["members"],
            "senders": spec.get("senders", 0),
            "target_rate": rate,
        }

    def _row(self, load: dict[str, Any], group: Group) -> dict[str, Any]:
        return {
            "server": self.name,
            "load": load,
            "deliveries_per_s": None,
            "p50_ms": None,
            "p95_ms": None,
            "p99_ms": None,
            "lost": None,
            "connect_per_s": round(group.connect_per_s, 1) if group.connect_per_s else None,
            "rss_per_idle_conn_kb": None,
            "server_cpu_pct": None,
            "loadgen_cpu_pct": None,
            "connections": group.connected,
            "connect_failures": group.failures,
            "connect_unopened": group.unopened,
        }

    async def idle(self, spec: dict[str, Any]) -> dict[str, Any]:
        await self.close_group()  # the idle figure needs a fresh group
        await self.settle()  # the closed group's presence changes are not this load's
        self.show_presence = bool(spec.get("presence"))
        presence0, updates0 = self.presence_received, self.presence_updates
        try:
            group = await self.ensure_group(
                spec["rooms"], spec["members"], spec.get("connect_max_s"), spec.get("profile")
            )
        finally:
            self.show_presence = False
        row = self._row(self._load(spec, "idle_presence" if spec.get("presence") else "idle", 0.0), group)
        row["server_cpu_s"] = round(group.connect_cpu_s, 3)
        if group.connected:
            # Handshake, authentication and join, in server CPU per socket.
            row["server_cpu_us_per_connect"] = round(1e6 * group.connect_cpu_s / group.connected)
        row["rss_per_idle_conn_kb"] = round(group.rss_per_conn_kb, 1) if group.rss_per_conn_kb is not None else None
        row["server_rss_mb"] = round(rss_bytes(self.server_procs) / 2**20, 1)
        hold = float(spec.get("hold_s", 0))
        if hold:  # idle sockets must stay open: count those the server drops
            snap = self.snapshot()
            await asyncio.sleep(hold)
            end = self.snapshot()
            row["server_cpu_pct"] = round(100 * (end.server - snap.server) / (end.wall - snap.wall), 1)
        row["still_open"] = sum(1 for room in group.conns for c in room if not c.closed)
        if spec.get("presence"):
            # Every presence frame the group received from its first open to the hold's end:
            # a watcher gets one per co-member who came online (and the snapshot of those
            # already there), none from a room past CHAT_PRESENCE_ROOM_LIMIT sockets.
            await self.settle()
            per_socket = [c.presence_frames for room in group.conns for c in room]
            row["presence_frames"] = self.presence_received - presence0
            row["presence_updates"] = self.presence_updates - updates0
            row["presence_frames_per_socket"] = round(row["presence_frames"] / max(1, len(per_socket)), 1)
            row["presence_frames_max_socket"] = max(per_socket, default=0)
        if not spec.get("keep"):
            await self.close_group()
        return row

    async def ramp(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """Raise the rate until steps fail; report the highest rate held.

        A step holds when its p99 is under P99_TARGET_MS and nothing is lost. Rates go up
        in the plan's steps and stop after `fail_streak` failures in a row (noise from
        other work on the machine can fail one step) or when the generator saturates; then
        `refine` bisection steps between the best rate held and the lowest failed rate above
        it narrow the answer. Bounded by `max_s` and the plan's time budget.
        """
        rows: list[dict[str, Any]] = []
        held: list[float] = []
        failed: list[float] = []
        deadline = min(time.monotonic() + float(spec.get("max_s", 120)), self.load_deadline or math.inf)
        fail_streak = int(spec.get("fail_streak", 2))

        async def step(rate: float) -> dict[str, Any]:
            duration = max(spec["duration"], spec.get("min_messages", 3) / rate)
            step_spec = {**spec, "rate": rate, "duration": duration, "cut_on_fail": True}
            row = await self.fixed(step_spec, kind="ramp_step")
            rows.append(row)
            (held if row["held"] else failed).append(rate)
            return row

        in_a_row = 0
        for rate in spec["rates"]:
            if time.monotonic() > deadline:
                break
            row = await step(float(rate))
            in_a_row = 0 if row["held"] else in_a_row + 1
            if in_a_row >= fail_streak or row["loadgen_saturated"]:
                break  # past a saturated step the figures would be the generator's
        for _ in range(int(spec.get("refine", 0))):
            if not held or time.monotonic() > deadline or rows[-1]["loadgen_saturated"]:
                break
            above = [r for r in failed if r > max(held)]
            if not above:
                break
            await step(round((max(held) + min(above)) / 2, 2))
        best_rate = max(held) if held else 0.0
        best = next((r for r in rows if r["held"] and r["load"]["target_rate"] == best_rate), None)
        summary = dict(best) if best else self._row(self._load(spec, "ramp_max", 0.0), self.group or Group(0, 0))
        summary["load"] = self._load(spec, "ramp_max", best_rate)
        summary["failed_rates"] = sorted(failed)
        summary["bound_by_loadgen"] = any(r["loadgen_saturated"] for r in rows)
        # Every step held up to the plan's top rate: the best rate is only a lower bound.
        summary["top_rate_held"] = bool(held) and not failed and max(held) == float(spec["rates"][-1])
        rows.append(summary)
        return rows

    async def fixed(self, spec: dict[str, Any], kind: str = "fixed") -> dict[str, Any]:
        rooms, members = spec["rooms"], spec["members"]
        rate = float(spec["rate"])
        group = await self.ensure_group(rooms, members, spec.get("connect_max_s"))
        settled = await self.settle()
        self.load_seq += 1
        self._reset()
        self.load_tag = f"L{self.load_seq}"
        for room in group.conns:
            for conn in room:
                conn.seen.clear()
        # Senders: spread over the rooms, then over members; each is a member of its room.
        senders: list[Conn] = []
        for j in range(spec["senders"]):
            room = group.conns[j % rooms]
            if room:
                senders.append(room[(j // rooms) % len(room)])
        if not senders:
            out_of_time = self.load_deadline is not None and time.monotonic() > self.load_deadline
            why = "time budget" if out_of_time else "no socket open"
            log(f"{self.name}: no socket of the {rooms} x {members} group is open ({why}); {kind} skipped")
            row = self._row(self._load(spec, "skipped", rate), group)
            row["skipped"] = f"{kind}: {why}"
            row["held"] = False
            row["loadgen_saturated"] = False
            return row
        count = max(1, round(rate * spec["duration"]))
        room_size = {id(c): len(room) for room in group.conns for c in room}
        expected_per_msg = [room_size[id(senders[i % len(senders)])] for i in range(count)] if senders else []
        drain_s = float(spec.get("drain_s", 5.0))
        profiler = self._start_profiler(spec.get("profile"))
        log(f"{self.name}: {kind} {rooms}x{members} {len(senders)} senders {rate:g} msg/s for {count} messages")

        typing_every = float(spec.get("typing_every_s") or 0)
        typists = [c for room in group.conns for c in room] if typing_every else []
        if typists:
            kind = "fixed_typing"
            for conn in typists:
                conn.send_text(self.proto.show_presence())  # type: ignore[union-attr]
            await self.settle()
        typing_sent = [0]
        read_every = float(spec.get("mark_read_every_s") or 0)
        readers = [c for room in group.conns for c in room] if read_every else []
        # A ping where the markRead would go: what any client frame costs, the floor under markRead.
        read_as_ping = bool(spec.get("read_as_ping"))
        if readers:
            kind = "fixed_ping" if read_as_ping else "fixed_read"
        reads_sent = [0]

        self.in_load = True
        lags: list[float] = []
        send_lags: list[float] = []
        monitor = asyncio.ensure_future(self._lag_monitor(lags))
        db_poller = asyncio.ensure_future(self._db_poller())
        start = self.snapshot()
        t0 = start.wall
        typing_task = (
            asyncio.ensure_future(
                self._each_in_turn(typists, typing_every, t0, t0 + count / rate, typing_sent, self._typing_frame)
            )
            if typists
            else None
        )
        read_task = (
            asyncio.ensure_future(
                self._each_in_turn(
                    readers,
                    read_every,
                    t0,
                    t0 + count / rate,
                    reads_sent,
                    self._ping_frame if read_as_ping else self._read_frame,
                )
            )
            if readers
            else None
        )
        sent = 0
        tag = self.load_tag
        for i in range(count):
            target = t0 + i / rate
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            send_lags.append(now - target)
            sender = senders[i % len(senders)]
            key = f"k{i}"
            text = f"{tag} {key} t{time.monotonic_ns()} bench"
            sender.send_text(self.proto.message(sender.room, text, f"{tag}-{key}"))
            sent += 1
        last_send = time.monotonic()
        if typing_task is not None:
            typing_task.cancel()
        if read_task is not None:
            read_task.cancel()
        # Drain: until everything expected arrived, or the bounded wait ran out. A ramp step
        # stops early once it has certainly failed: past P99_TARGET_MS after the last send,
        # every delivery still missing is later than the target, and more than 1 % missing
        # puts p99 over it.
        cut_early = bool(spec.get("cut_on_fail"))
        drain_cut = False
        while time.monotonic() < last_send + drain_s:
            expected = sum(expected_per_msg) - self._refused_deliveries(expected_per_msg)
            if self.received >= expected:
                break
            if cut_early and time.monotonic() > last_send + P99_TARGET_MS / 1000 + 0.05:
                if expected - self.received > 0.01 * expected:
                    drain_cut = True
                    break
            await asyncio.sleep(0.01)
        end = self.snapshot()
        self.in_load = False
        monitor.cancel()
        db_poller.cancel()
        self._stop_profiler(profiler)

        expected = sum(expected_per_msg) - self._refused_deliveries(expected_per_msg)
        latencies = sorted(self.latencies)
        window = end.wall - t0
        deliver_window = (self.last_recv_ns / 1e9 - t0) if self.last_recv_ns else window
        server_cpu_s = end.server - start.server
        row = self._row(self._load(spec, kind, rate), group)
        loadgen_cpu = 100 * (end.me - start.me) / window
        row.update(
            {
                "deliveries_per_s": round(self.received / max(deliver_window, 1e-6), 1),
                "p50_ms": _r(percentile(latencies, 0.50)),
                "p95_ms": _r(percentile(latencies, 0.95)),
                "p99_ms": _r(percentile(latencies, 0.99)),
                "max_ms": _r(latencies[-1] / 1e6 if latencies else None),
                "lost": max(0, expected - self.received),
                "server_cpu_pct": round(100 * server_cpu_s / window, 1),
                "loadgen_cpu_pct": round(loadgen_cpu, 1),
                "redis_cpu_pct": round(100 * (end.redis - start.redis) / window, 1) if self.redis_procs else None,
                # Everything else on the machine (other engineers' tests): the noise of this row.
                "others_cpu_pct": round(
                    100
                    * (
                        (end.machine - start.machine)
                        - (end.server - start.server)
                        - (end.me - start.me)
                        - (end.redis - start.redis)
                        - (end.db - start.db)
                    )
                    / window,
                    1,
                ),
                # Per delivery only over enough deliveries to mean something.
                # psutil counts CPU in 10 ms ticks: below 50 ms a per-delivery figure is noise.
                "server_cpu_us_per_delivery": round(1e6 * server_cpu_s / self.received, 1)
                if self.received >= 100 and server_cpu_s >= 0.05
                else None,
                "server_cpu_s": round(server_cpu_s, 3),
                # The database backends' CPU (a PostgreSQL store on this machine), apart.
                "db_cpu_s": round(end.db - start.db, 3) if self.db is not None else None,
                "db_cpu_us_per_delivery": round(1e6 * (end.db - start.db) / self.received, 1)
                if self.db is not None and self.received >= 100
                else None,
                "window_s": round(window, 3),
                "messages_sent": sent,
                "expected": expected,
                "received": self.received,
                "duplicates": self.duplicates,
                "send_errors": self.send_errors,
                "errors": self.other_errors or None,
                "disconnects": self.disconnects,
                "send_lag_p99_ms": _r(1000 * _pct_float(send_lags, 0.99)),
                "loop_lag_p99_ms": _r(1000 * _pct_float(lags, 0.99)),
                "loadgen_saturated": loadgen_cpu >= SATURATED_CPU_PCT,
                "settled_before": settled,
                "drain_cut": drain_cut,
            }
        )
        if typists:
            row["load"]["typing_every_s"] = typing_every
            row["typing_sent"] = typing_sent[0]
            row["typing_received"] = self.typing_received
        if readers:
            row["load"]["mark_read_every_s"] = read_every
            row["mark_read_sent"] = reads_sent[0]
            row["read_states_received"] = self.read_states_received
            if read_as_ping:
                row["load"]["read_as_ping"] = True
                row["pongs_received"] = self.pongs_received
        # Work off the backlog before the next load; deliveries still arriving are late.
        self.prev_tag, self.load_tag = self.load_tag, "-"
        self.late = 0
        row["settled_after"] = await self.settle()
        row["late"] = self.late
        p99 = row["p99_ms"]
        row["held"] = bool(
            row["lost"] == 0 and self.send_errors == 0 and self.received > 0 and p99 is not None and p99 < P99_TARGET_MS
        )
        log(
            f"{self.name}: {kind} {rate:g}/s -> {row['deliveries_per_s']}/s p99 {p99} ms lost {row['lost']} "
            f"server {row['server_cpu_pct']}% loadgen {row['loadgen_cpu_pct']}%"
        )
        return row

    async def _each_in_turn(
        self,
        conns: list[Conn],
        every: float,
        t0: float,
        until: float,
        sent: list[int],
        frame: Callable[[Conn], str | None],
    ) -> None:
        """Each socket sends `frame(conn)` (none when it is None) once per `every` seconds, spread
        evenly over the interval, while the messages flow: typing, markRead (issue 22, goal 5)."""
        step = every / len(conns)
        i = 0
        while True:
            target = t0 + i * step
            if target >= until:
                return
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            conn = conns[i % len(conns)]
            text = None if conn.closed else frame(conn)
            if text is not None:
                conn.send_text(text)
                sent[0] += 1
            i += 1

    def _typing_frame(self, conn: Conn) -> str:
        return self.proto.typing(conn.room)  # type: ignore[union-attr]

    def _read_frame(self, conn: Conn) -> str | None:
        """markRead up to the newest seq the socket got, when that moved since its last mark:
        what a client showing the room does (docs/protocol.md "Read state")."""
        if conn.last_seq <= conn.marked_seq:
            return None
        conn.marked_seq = conn.last_seq
        return self.proto.mark_read(conn.room, conn.last_seq)  # type: ignore[union-attr]

    def _ping_frame(self, conn: Conn) -> str | None:
        """A ping where `_read_frame` would send a markRead (the same sockets, the same times)."""
        if conn.last_seq <= conn.marked_seq:
            return None
        conn.marked_seq = conn.last_seq
        return self.proto.ping()  # type: ignore[union-attr]

    def _refused_deliveries(self, expected_per_msg: list[int]) -> int:
        # A send the server refused with an error frame was never accepted: its deliveries
        # are not expected (it is counted in send_errors instead).
        if not self.send_errors or not expected_per_msg:
            return 0
        return self.send_errors * round(sum(expected_per_msg) / len(expected_per_msg))

    async def _db_poller(self) -> None:
        """Keep the database backends' CPU count up to date (DbBackendsCpu) during a load."""
        if self.db is None:
            return
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(DB_POLL_S)
                self.db.poll()

    async def _lag_monitor(self, lags: list[float]) -> None:
        """How late the event loop wakes: a busy generator shows here before anywhere else."""
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.01)
                lags.append(time.monotonic() - before - 0.01)

    def _start_profiler(self, profile: dict[str, Any] | None) -> subprocess.Popen[bytes] | None:
        if not profile:
            return None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        cmd = [py_spy, "record", "-p", str(profile["pid"]), "-r", str(profile.get("rate_hz", 100))]
        cmd += ["-f", "raw", "-o", profile["out"], "-d", "600"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attach before the first send
        return proc

    def _stop_profiler(self, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _pct_float(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def _main(plan: dict[str, Any]) -> None:
    gen = LoadGen(plan)

    def emit(row: dict[str, Any]) -> None:
        print(json.dumps(row), flush=True)

    async with asyncio.timeout(float(plan.get("max_s", 900))):
        await gen.run(plan["loads"], emit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", type=Path, required=True, help="JSON plan: {server: {...}, loads: [...]}")
    args = parser.parse_args()
    plan = json.loads(args.plan.read_text())
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(plan))
    else:
        uvloop.run(_main(plan))


if __name__ == "__main__":
    main()
