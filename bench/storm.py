"""The reconnect storm (issue 22, goal 1): signed-in sockets on two daphne processes behind
HAProxy, one process restarted while messages flow, its sockets reconnecting and resuming.

    python -m bench.storm                      # 5,000 sockets, 50 rooms of 100, PostgreSQL + Redis
    python -m bench.storm --sockets 1000 --store sqlite
    python -m bench.storm --commit main        # the servers from a commit (git archive)
    python -m bench.storm --deregister-first   # out of the balancer before the SIGTERM, as ECS does

What it does, bounded in time at every step, everything on 127.0.0.1:
1. Two Chatsite daphne processes (the store: PostgreSQL or one SQLite file; the channel
   layer: Redis) behind an HAProxy that checks /healthz, as tests/e2e/test_load_balancer.py
   and an ALB do. Every socket goes through HAProxy.
2. Every socket opens, signs in with its user's session cookie and joins its room.
3. Messages flow into the rooms (`--rate`, spread over the rooms, each sent by a live member
   and resent with the same clientMessageId after a reconnect until acked, as the real
   client's outbox does).
4. One process gets SIGTERM (`systemctl restart`: it closes its sockets with 1001 over
   CHAT_STOP_DRAIN_SECONDS) and is started again on the same port once it has exited.
   Each closed socket reconnects as static/chat/core/client.js does: full-jitter backoff
   below a ceiling that doubles from 0.5 s to 10 s (reset when a socket opens), then
   `joinRoom` with `lastSeq` = its cursor.
5. The flow stops; every socket must reach its room's last seq.

Each socket keeps its room's cursor by the protocol's one rule (docs/protocol.md, "Delivery
guarantees"): a seq above cursor + 1 is a gap (counted, and repaired by rejoining as the
client does). The report: time from the SIGTERM until every closed socket was back (its
resume answered) and caught up, per-socket time back, handshakes refused (HTTP status,
refused, timed out), error frames by code, close codes, gaps, resumes that were not
`recovered`, sockets behind at the end, messages stored twice, server and generator CPU, and
the load average. One JSON object on stdout, and bench/results/storm-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psutil
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Origin
from websockets.uri import parse_uri

from bench import run as bench_run
from bench.loadgen import cpu_seconds, room_names, whole_text, write_out

HAPROXY = shutil.which("haproxy") or next(
    (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
)
# The client's reconnect policy (static/chat/core/client.js, DEFAULT_TIMING).
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 10.0
TOO_MANY_REQUESTS_FLOOR_S = 5.0
# systemd's TimeoutStopSec in deploy/ (docs/operations.md): past it the process is killed.
STOP_WAIT_S = 40.0
# A browser gives a handshake far longer; this only bounds a socket that hangs.
HANDSHAKE_TIMEOUT_S = 30.0
# The balancer as tests/e2e/test_load_balancer.py runs it, with room for the sockets, and the
# target check of deploy/cloudformation/fleet.yaml's ALB (every 5 s, a 4 s timeout, two
# failures out, two passes in; HAProxy connects a check within min(timeout connect, inter)).
# A 1 s check took both processes out in a 5,000-socket storm: their accept queues were full.
HAPROXY_CONFIG = """\
global
    maxconn {maxconn}
    stats socket {admin} mode 600 level admin
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    timeout connect 4s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout client-fin 5s
    retries 3
    option redispatch

frontend chat
    bind 127.0.0.1:{port}
    maxconn {maxconn}
    http-request del-header X-Forwarded-For
    http-request del-header Forwarded
    option forwardfor
    default_backend daphne

backend daphne
    balance roundrobin
    option httpchk GET /healthz
    timeout check 4s
{servers}
"""


def log(message: str) -> None:
    print(f"storm: {message}", file=sys.stderr, flush=True)


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """The client's full jitter: uniform in [0, min(cap, base * 2^attempt))."""
    return rng.random() * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** min(max(attempt, 0), 30))


# --- one client ---------------------------------------------------------------------------


class Wire(asyncio.Protocol):
    """One WebSocket connection of a client (a new one per reconnect)."""

    def __init__(self, client: Client, url: str, origin: str) -> None:
        self.client = client
        self.ws = ClientProtocol(parse_uri(url), origin=Origin(origin), max_size=2**22)
        self.transport: asyncio.Transport | None = None
        self.opened = False
        self.lost = False
        self._parts: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        request = self.ws.connect()
        request.headers["Cookie"] = self.client.cookie
        self.ws.send_request(request)
        self.flush()

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                text = whole_text(event, self._parts)
                if text is not None:
                    self.client.on_text(self, text)
            elif isinstance(event, Response) and not self.opened:
                if ws.handshake_exc is None:
                    self.opened = True
                    self.client.on_open(self)
                else:
                    self.client.on_handshake_refused(self, event.status_code)
        self.flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        # The close frame the server sent, if any (the sans-I/O close_code is set only once
        # the TCP end was seen too).
        rcvd = self.ws.close_rcvd
        self.client.on_lost(self, rcvd.code if rcvd is not None else None)

    def flush(self) -> None:
        write_out(self.ws, self.transport)

    def send(self, frame: dict[str, Any]) -> None:
        if self.lost or not self.opened or self.ws.state is not State.OPEN:
            return
        self.ws.send_text(json.dumps(frame).encode())
        self.flush()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


@dataclass(eq=False)
class Client:
    """A signed-in page with one room open: the cursor rule, the outbox, the reconnect policy."""

    storm: Storm
    index: int
    cookie: str
    room: str
    wire: Wire | None = None
    cursor: int | None = None
    joined: bool = False
    attempt: int = 0
    stopped: bool = False
    # Measurements
    dropped_at: float | None = None  # when the server closed it during the storm
    back_at: float | None = None  # when its resume was answered after that
    reconnects: int = 0
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    _timer: asyncio.TimerHandle | None = None
    trace: list[tuple[float, str]] = field(default_factory=list)

    def note(self, what: str) -> None:
        if self.storm.phase == "storm":
            self.trace.append((round(time.monotonic() - (self.storm.restart_at or 0), 3), what))

    # connection lifecycle

    def connect(self) -> None:
        if self.stopped or self.wire is not None:
            return
        wire = Wire(self, self.storm.ws_url, self.storm.origin)
        self.wire = wire
        self.storm.handshakes += 1
        self.storm.loop.create_task(self._connect(wire))

    async def _connect(self, wire: Wire) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                await self.storm.loop.create_connection(lambda: wire, "127.0.0.1", self.storm.port)
        except TimeoutError:
            self.storm.refused["timeout"] += 1
            wire.abort()
            self._gone(wire, None)
        except OSError as exc:
            self.storm.refused[f"connect: {type(exc).__name__}"] += 1
            self._gone(wire, None)

    def on_open(self, wire: Wire) -> None:
        if wire is not self.wire:
            return
        self.note("open")
        if self.storm.args.backoff_reset == "open":
            self.attempt = 0  # the client's rule before d51b0d0: the backoff started over once a socket opened
        frame: dict[str, Any] = {"action": "joinRoom", "roomId": self.room}
        if self.cursor is not None:
            frame["lastSeq"] = self.cursor
        wire.send(frame)

    def on_handshake_refused(self, wire: Wire, status: int) -> None:
        self.storm.refused[f"HTTP {status}"] += 1
        wire.abort()

    def on_lost(self, wire: Wire, code: int | None) -> None:
        self.note(f"lost {code}")
        if wire.opened:
            self.storm.close_codes[str(code if code is not None else 1006)] += 1
        elif code is None:
            # A TCP connection that closed before any handshake answer (a process going away).
            self.storm.refused["closed before the handshake answer"] += 1
        self._gone(wire, code)

    def _gone(self, wire: Wire, code: int | None) -> None:
        if wire is not self.wire:
            return
        self.wire = None
        self.joined = False
        storm = self.storm
        if storm.phase == "storm":
            if self.dropped_at is None:
                self.dropped_at = time.monotonic()
            self.back_at = None  # back only once a resume is answered on a socket that stays
        if self.stopped:
            return
        if code in (4401, 4403):
            storm.fatal[str(code)] += 1
            self.stopped = True
            return
        delay = backoff_delay(self.attempt, storm.rng)
        if code == 4429:
            delay = max(delay, TOO_MANY_REQUESTS_FLOOR_S)
        self.attempt += 1
        self.reconnects += 1
        self.note(f"retry in {delay:.2f}")
        self._timer = storm.loop.call_later(delay, self.connect)

    def stop(self) -> None:
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self.wire is not None and not self.wire.lost:
            with contextlib.suppress(Exception):
                self.wire.ws.send_close(1000)
                self.wire.flush()
            if self.wire.transport is not None:
                self.wire.transport.close()

    # frames

    def on_text(self, wire: Wire, data: bytes) -> None:
        if wire is not self.wire:
            return
        try:
            frame = json.loads(data)
        except ValueError:
            self.storm.errors["unparsable"] += 1
            return
        kind = frame.get("type")
        storm = self.storm
        if kind == "joined" and frame.get("roomId") == self.room:
            self._on_joined(frame)
        elif kind == "ack":
            sent = self.outbox.pop(frame.get("clientMessageId", ""), None)
            if sent is not None:
                storm.acked += 1
                storm.note_seq(self.room, int(frame["seq"]), frame["clientMessageId"])
        elif kind == "error":
            code = str(frame.get("code"))
            storm.errors[code] += 1
            if frame.get("action") == "joinRoom" and frame.get("retryable"):
                delay = max(float(frame.get("retryAfter") or 0), backoff_delay(1, storm.rng))
                storm.loop.call_later(delay, self._rejoin, wire)
            elif frame.get("action") == "sendMessage" and frame.get("retryable"):
                cmid = frame.get("clientMessageId", "")
                if cmid in self.outbox:
                    storm.loop.call_later(float(frame.get("retryAfter") or 1.0), self._resend, cmid)
        elif isinstance(frame.get("seq"), int) and frame.get("roomId") == self.room and kind != "history":
            self._on_event(frame)

    def _on_joined(self, frame: dict[str, Any]) -> None:
        storm = self.storm
        last = int(frame.get("lastSeq") or 0)
        if self.cursor is None:
            self.cursor = last
        elif frame.get("recovered"):
            for event in frame.get("events") or []:
                self._apply(event, replay=True)
            if self.cursor < last:
                # The replay stopped short of the lastSeq it announced: a hole.
                storm.gaps += 1
                storm.missing_seqs += last - self.cursor
                self.cursor = last
        else:
            storm.not_recovered += 1
            self.cursor = max(self.cursor, last)
        was_joined, self.joined = self.joined, True
        if self.storm.args.backoff_reset == "joined":
            self.attempt = 0
        self.note(f"joined {frame.get('recovered')}")
        if not was_joined and self.dropped_at is not None and self.back_at is None:
            self.back_at = time.monotonic()
        for cmid in list(self.outbox):
            self._resend(cmid)

    def _rejoin(self, wire: Wire) -> None:
        if wire is self.wire and not self.joined:
            wire.send({"action": "joinRoom", "roomId": self.room, "lastSeq": self.cursor or 0})

    def _on_event(self, frame: dict[str, Any]) -> None:
        if not self.joined or self.cursor is None:
            return  # before the join's answer: the join brings it (or it is older)
        self._apply(frame, replay=False)

    def _apply(self, frame: dict[str, Any], *, replay: bool) -> None:
        storm = self.storm
        seq = int(frame["seq"])
        assert self.cursor is not None
        if seq <= self.cursor:
            storm.duplicates_dropped += 1
            return
        if seq > self.cursor + 1:
            # The cursor rule's gap. The client rejoins with lastSeq; so does this one.
            storm.gaps += 1
            if self.wire is not None:
                self.joined = False
                self.wire.send({"action": "joinRoom", "roomId": self.room, "lastSeq": self.cursor})
            return
        self.cursor = seq
        storm.applied += 1
        if frame.get("type") == "message" and frame.get("clientMessageId"):
            storm.note_seq(self.room, seq, frame["clientMessageId"])

    # sending

    def send_message(self, cmid: str, text: str) -> None:
        self.outbox[cmid] = {"action": "sendMessage", "roomId": self.room, "message": text, "clientMessageId": cmid}
        self._resend(cmid)

    def _resend(self, cmid: str) -> None:
        frame = self.outbox.get(cmid)
        if frame is not None and self.wire is not None and self.joined:
            self.wire.send(frame)


# --- the run --------------------------------------------------------------------------------


@dataclass
class Daphne:
    index: int
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)  # every process that served this slot

    def start(self) -> None:
        cmd = [str(bench_run.BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), *bench_run.DAPHNE_FLAGS]
        cmd.append("chatsite.asgi:application")
        self.proc = subprocess.Popen(
            cmd, cwd=bench_run.SERVER_ROOT, env=self.env, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT
        )
        self.pids.append(self.proc.pid)
        bench_run.wait_for_port(self.port, self.proc, timeout=60)


class Storm:
    def __init__(self, args: argparse.Namespace, port: int, cookies: list[str], rooms: list[str]) -> None:
        self.args = args
        self.port = port
        self.ws_url = f"ws://127.0.0.1:{port}/ws/"
        self.origin = f"http://127.0.0.1:{port}"
        self.loop = asyncio.get_running_loop()
        self.rng = random.Random(args.seed)
        self.phase = "open"
        self.restart_at: float | None = None
        self.handshakes = 0
        self.refused: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.close_codes: Counter[str] = Counter()
        self.fatal: Counter[str] = Counter()
        self.gaps = 0
        self.missing_seqs = 0
        self.not_recovered = 0
        self.duplicates_dropped = 0
        self.applied = 0
        self.acked = 0
        self.sent = 0
        # Per room: seq -> clientMessageId and clientMessageId -> seq, to find a message stored twice.
        self.seq_cmid: dict[str, dict[int, str]] = {r: {} for r in rooms}
        self.cmid_seq: dict[str, dict[str, int]] = {r: {} for r in rooms}
        self.stored_twice = 0
        self.last_seq: dict[str, int] = dict.fromkeys(rooms, 0)
        members = len(cookies) // len(rooms)
        self.clients = [Client(self, i, cookies[i], rooms[i % len(rooms)]) for i in range(members * len(rooms))]

    def note_seq(self, room: str, seq: int, cmid: str) -> None:
        self.last_seq[room] = max(self.last_seq[room], seq)
        known = self.cmid_seq[room].get(cmid)
        if known is None:
            self.cmid_seq[room][cmid] = seq
            self.seq_cmid[room][seq] = cmid
        elif known != seq:
            self.stored_twice += 1
            self.cmid_seq[room][cmid] = min(known, seq)

    def live(self) -> int:
        return sum(1 for c in self.clients if c.joined)

    async def open_all(self, deadline: float) -> None:
        """Open every socket, `concurrency` handshakes in flight (as bench.run does)."""
        pending = list(self.clients)
        in_flight: set[Client] = set()
        next_note = time.monotonic() + 15.0
        while (pending or in_flight) and time.monotonic() < deadline:
            while pending and len(in_flight) < self.args.concurrency:
                client = pending.pop(0)
                client.connect()
                in_flight.add(client)
            await asyncio.sleep(0.01)
            in_flight = {c for c in in_flight if not c.joined}
            if time.monotonic() >= next_note:
                next_note += 15.0
                log(f"opening: {self.live()} joined")
        log(f"{self.live()} of {len(self.clients)} sockets open and joined")
        # Those not open in time take no part in the storm: it measures sockets that were open.
        for client in self.clients:
            if not client.joined:
                client.stop()
        self.clients = [c for c in self.clients if c.joined]

    async def flow(self, until: asyncio.Event) -> None:
        """Messages at `--rate` over the rooms, each from a live member, until told to stop."""
        rate = self.args.rate
        if rate <= 0:
            await until.wait()
            return
        by_room: dict[str, list[Client]] = {}
        for c in self.clients:
            by_room.setdefault(c.room, []).append(c)
        rooms = list(by_room)
        t0 = time.monotonic()
        i = 0
        while not until.is_set():
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(until.wait(), delay)
                continue
            room = rooms[i % len(rooms)]
            members = by_room[room]
            for _ in range(len(members)):
                sender = members[self.rng.randrange(len(members))]
                if sender.joined:
                    sender.send_message(f"s{i}", f"storm {i}")
                    self.sent += 1
                    break
            i += 1

    def behind(self) -> tuple[int, int]:
        """Sockets not at their room's last seq, and the seqs they lack in all."""
        sockets = seqs = 0
        for c in self.clients:
            last = self.last_seq[c.room]
            if c.stopped or c.cursor is None or c.cursor < last:
                sockets += 1
                seqs += last - (c.cursor or 0)
        return sockets, seqs


async def run_storm(args: argparse.Namespace, servers: list[Daphne], port: int, cookies: list[str]) -> dict[str, Any]:
    rooms = room_names(args.rooms, args.sockets // args.rooms)
    storm = Storm(args, port, cookies, rooms)
    meter = CpuMeter([s.proc.pid for s in servers if s.proc])
    sampler = asyncio.ensure_future(meter.run())
    me = psutil.Process()
    result: dict[str, Any] = {"sockets": len(storm.clients), "rooms": len(rooms)}

    started = time.monotonic()
    cpu0 = meter.total()
    await storm.open_all(started + args.open_max_s)
    open_s = time.monotonic() - started
    opened = storm.live()
    result["open"] = {
        "joined": opened,
        "seconds": round(open_s, 1),
        "per_s": round(opened / open_s, 1),
        "server_cpu_ms_per_socket": round(1000 * (meter.total() - cpu0) / max(opened, 1), 2),
        "refused": dict(storm.refused),
        "errors": dict(storm.errors),
    }
    storm.refused.clear()
    storm.errors.clear()
    storm.close_codes.clear()

    stop_flow = asyncio.Event()
    flow = asyncio.ensure_future(storm.flow(stop_flow))
    await asyncio.sleep(args.warm_s)
    storm.phase = "storm"
    victim = servers[0]
    assert victim.proc is not None
    load0 = os.getloadavg()
    cpu_before = meter.total()
    me0 = cpu_seconds([me])
    t0 = time.monotonic()
    storm.restart_at = t0
    sent0, acked0 = storm.sent, storm.acked
    server_name = f"daphne/d{victim.index}"
    if args.deregister_first:
        # As ECS does before it stops a task (and a release before SIGUSR1): the balancer
        # stops sending the process new connections first; its open sockets stay.
        answer = await haproxy_command(args.workdir, f"disable server {server_name}")
        log(f"{server_name} taken out of the balancer{': ' + answer if answer else ''}")
    log(f"SIGTERM to process {victim.index} (pid {victim.proc.pid}); {storm.live()} sockets live")
    victim.proc.send_signal(signal.SIGTERM)
    old = victim.proc

    async def restart() -> float:
        # Bounded poll: the process exits on its own once its sockets are closed.
        while old.poll() is None and time.monotonic() < t0 + STOP_WAIT_S:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if old.poll() is None:
            log(f"process {victim.index} still running {STOP_WAIT_S:.0f} s after SIGTERM: killed")
            killed.append(True)
            old.kill()
            await asyncio.to_thread(old.wait, 10)
        exited = time.monotonic() - t0
        await asyncio.to_thread(victim.start)
        assert victim.proc is not None
        meter.add(victim.proc.pid)
        if args.deregister_first:
            await haproxy_command(args.workdir, f"enable server {server_name}")  # back once its checks pass
        log(f"process {victim.index} exited at {exited:.1f} s, up again at {time.monotonic() - t0:.1f} s")
        return exited

    killed: list[bool] = []
    restarter = asyncio.ensure_future(restart())
    # The storm: until every socket the SIGTERM closed is back and joined, bounded.
    deadline = t0 + args.storm_max_s
    await asyncio.sleep(1.0)
    while time.monotonic() < deadline:
        dropped = [c for c in storm.clients if c.dropped_at is not None]
        if restarter.done() and dropped and all(c.back_at is not None or c.stopped for c in dropped):
            if storm.live() == sum(1 for c in storm.clients if not c.stopped):
                break
        await asyncio.sleep(0.05)
    storm_s = time.monotonic() - t0
    exited_s = await restarter if restarter.done() else None
    dropped = [c for c in storm.clients if c.dropped_at is not None]
    back = sorted(c.back_at - t0 for c in dropped if c.back_at is not None)
    down = sorted(c.back_at - c.dropped_at for c in dropped if c.back_at is not None and c.dropped_at is not None)
    cpu_storm = meter.total() - cpu_before
    storm_row = {
        "seconds_until_all_back": round(back[-1], 2) if back and len(back) == len(dropped) else None,
        "bounded_at_s": args.storm_max_s,
        "sockets_closed": len(dropped),
        "sockets_back": len(back),
        "back_p50_s": _pct(back, 0.5),
        "back_p99_s": _pct(back, 0.99),
        "per_socket_offline_p50_s": _pct(down, 0.5),
        "per_socket_offline_p99_s": _pct(down, 0.99),
        "per_socket_offline_max_s": round(down[-1], 2) if down else None,
        "reconnect_attempts": sum(c.reconnects for c in dropped),
        "victim_exited_s": round(exited_s, 2) if exited_s is not None else None,
        "victim_killed": bool(killed),
        "handshakes_refused": dict(storm.refused),
        "error_frames": dict(storm.errors),
        "close_codes": dict(storm.close_codes),
        "stopped_4401_4403": dict(storm.fatal),
        "server_cpu_s": round(cpu_storm, 2),
        "server_cpu_ms_per_socket_back": round(1000 * cpu_storm / max(len(back), 1), 2),
        "loadgen_cpu_pct": round(100 * (cpu_seconds([me]) - me0) / storm_s, 1),
        "loadavg_at_restart": [round(x, 2) for x in load0],
    }
    log(f"storm: {len(back)} of {len(dropped)} back; last at {storm_row['seconds_until_all_back']} s")

    # Keep the flow a little longer, then stop it and let every socket catch up.
    await asyncio.sleep(args.after_s)
    stop_flow.set()
    await flow
    settle_deadline = time.monotonic() + args.settle_s
    while time.monotonic() < settle_deadline:
        if not any(c.outbox for c in storm.clients) and storm.behind()[0] == 0:
            break
        await asyncio.sleep(0.1)
    behind_sockets, behind_seqs = storm.behind()
    result["storm"] = storm_row
    # What the last socket back (or one never back) went through, seconds after the SIGTERM.
    slowest = max(dropped, key=lambda c: c.back_at or math.inf, default=None)
    result["slowest_socket"] = [f"{at:.2f} {what}" for at, what in slowest.trace[:60]] if slowest else []
    result["messages"] = {
        "rate": args.rate,
        "sent_during_storm": storm.sent - sent0,
        "acked_during_storm": storm.acked - acked0,
        "sent": storm.sent,
        "acked": storm.acked,
        "unacked_at_end": sum(len(c.outbox) for c in storm.clients),
        "stored_twice": storm.stored_twice,
        "applied_deliveries": storm.applied,
        "duplicates_dropped": storm.duplicates_dropped,
    }
    result["gaps"] = {
        "gaps_seen": storm.gaps,
        "missing_seqs_in_replays": storm.missing_seqs,
        "resumes_not_recovered": storm.not_recovered,
        "sockets_behind_at_end": behind_sockets,
        "seqs_behind_at_end": behind_seqs,
    }
    sampler.cancel()
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    for client in storm.clients:
        client.stop()
    await asyncio.sleep(1.0)
    return result


class CpuMeter:
    """Server CPU, counting a process that exits mid-run up to its last sample (every 0.1 s)."""

    def __init__(self, pids: list[int]) -> None:
        self.last: dict[int, float] = {}
        self.procs: dict[int, psutil.Process] = {}
        for pid in pids:
            self.add(pid)

    def add(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            self.procs[pid] = psutil.Process(pid)
            self.sample()

    def sample(self) -> None:
        for pid, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                self.last[pid] = times.user + times.system

    def total(self) -> float:
        self.sample()
        return sum(self.last.values())

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.1)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[max(0, math.ceil(q * len(values)) - 1)], 2)


def haproxy_admin(workdir: Path) -> Path:
    """HAProxy's admin socket (its runtime API), for --deregister-first."""
    return workdir / "haproxy.sock"


async def haproxy_command(workdir: Path, command: str) -> str:
    """One command on HAProxy's runtime API, e.g. `disable server daphne/d0`; its answer."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(haproxy_admin(workdir))), 5)
    try:
        writer.write(command.encode() + b"\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.read(), 5)).decode().strip()
    finally:
        writer.close()


def start_haproxy(workdir: Path, backends: list[Daphne], maxconn: int) -> tuple[subprocess.Popen[bytes], int]:
    if HAPROXY is None:
        raise SystemExit("storm: HAProxy is not installed (Debian: apt-get install -y haproxy)")
    port = bench_run.free_port()
    servers = "\n".join(
        f"    server d{b.index} 127.0.0.1:{b.port} check inter 5s fall 2 rise 2 maxconn {maxconn}" for b in backends
    )
    config = workdir / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port, servers=servers, maxconn=maxconn, admin=haproxy_admin(workdir)))
    check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(config)], capture_output=True, text=True, timeout=30)
    if check.returncode:
        raise SystemExit(f"storm: haproxy config refused: {check.stdout}{check.stderr}")
    proc = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(config)], stdout=(workdir / "haproxy.log").open("ab"), stderr=subprocess.STDOUT
    )
    bench_run.wait_for_port(port, proc)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--rooms", type=int, default=50, help="rooms the sockets are spread over (default 50)")
    parser.add_argument("--rate", type=float, default=5.0, help="messages/s over all rooms while the storm runs")
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--commit", help="run the servers from this commit (git archive)")
    parser.add_argument("--concurrency", type=int, default=32, help="handshakes in flight while opening")
    parser.add_argument("--open-max-s", type=float, default=240.0, help="bound on opening every socket")
    parser.add_argument("--warm-s", type=float, default=3.0, help="messages flowing before the restart")
    parser.add_argument("--storm-max-s", type=float, default=120.0, help="bound on the storm")
    parser.add_argument("--after-s", type=float, default=3.0, help="messages flowing after all are back")
    parser.add_argument("--settle-s", type=float, default=20.0, help="bound on catching up once the flow stops")
    parser.add_argument(
        "--backoff-reset",
        choices=["open", "joined"],
        default="joined",
        help="when a client's backoff starts over: once a join is answered (static/chat/core/client.js since "
        "d51b0d0: a socket the server closes right after opening keeps backing off), or once its socket opens "
        "(the client's rule before)",
    )
    parser.add_argument(
        "--deregister-first",
        action="store_true",
        help="take the process out of the balancer before its SIGTERM, as ECS does (HAProxy's runtime API), "
        "and put it back once it is up again; without it, a `systemctl restart` the balancer learns of by "
        "its checks",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for both Chatsite processes (repeatable), e.g. ANALYTICS_FLUSH_SECONDS=2",
    )
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--out", type=Path, default=bench_run.RESULTS / "storm-latest.json")
    args = parser.parse_args()
    if args.sockets % args.rooms:
        parser.error("--sockets must be a multiple of --rooms")

    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    workdir = bench_run.SCRATCH / run_id
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = workdir
    meta = bench_run.machine_meta([Path(sys.argv[0]).name, *sys.argv[1:]])
    if args.commit:
        bench_run.SERVER_ROOT, meta["servers_commit"] = bench_run.export_commit(args.commit, workdir)
        meta["uncommitted_server_files"] = []
    bench_run.raise_fd_limit(args.sockets * 2)
    log(f"run {run_id}: {args.sockets} sockets in {args.rooms} rooms, {args.store}; scratch {workdir}")
    loads = [{"rooms": args.rooms, "members": args.sockets // args.rooms}]
    started = time.monotonic()
    postgres_url = bench_run.create_postgres_database(run_id) if args.store == "postgres" else ""
    redis: bench_run.Redis | None = None
    haproxy: subprocess.Popen[bytes] | None = None
    servers: list[Daphne] = []
    try:
        template, cookies = bench_run.prepare_chatsite_template(workdir, loads, database_url=postgres_url)
        log(f"prepared {len(cookies)} users in {time.monotonic() - started:.0f} s")
        # A Redis of the run's own: a shared one (other users' load, their clients) made
        # every process's Redis calls time out in the middle of a storm on a busy machine.
        redis = bench_run.start_redis(workdir)
        data_dir = workdir / "chatsite-storm"
        data_dir.mkdir(parents=True, exist_ok=True)
        if not postgres_url:
            shutil.copy(template, data_dir / "db.sqlite3")
        extra = {
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "CHATSITE_DATA_DIR": str(data_dir),
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": bench_run.BENCH_SECRET_KEY,
            "REDIS_URL": redis.url,
            **({"DATABASE_URL": postgres_url} if postgres_url else {}),
            **dict(item.partition("=")[::2] for item in args.server_env),
        }
        for i in range(2):
            env = bench_run.clean_env(**extra, CHAT_INSTANCE_ID=f"bench-storm-{i}")
            servers.append(Daphne(i, bench_run.free_port(), env, workdir / f"daphne-{i}.log"))
            servers[-1].start()
        haproxy, port = start_haproxy(workdir, servers, maxconn=args.sockets + 1000)
        log(f"haproxy on {port} in front of {', '.join(str(s.port) for s in servers)}")
        time.sleep(1.0)  # HAProxy starts with its servers up; checks take them out
        try:
            import uvloop

            result = uvloop.run(asyncio.wait_for(run_storm(args, servers, port, cookies), args.open_max_s + 600))
        except ImportError:
            result = asyncio.run(asyncio.wait_for(run_storm(args, servers, port, cookies), args.open_max_s + 600))
    finally:
        if haproxy is not None:
            bench_run.stop(haproxy)
        for server in servers:
            if server.proc is not None:
                bench_run.stop(server.proc)
        if redis is not None and redis.proc is not None:
            bench_run.stop(redis.proc)
        if postgres_url:
            bench_run.drop_postgres_database(postgres_url)
    result["store"] = args.store
    result["backoff_reset"] = args.backoff_reset
    result["deregister_first"] = args.deregister_first
    result["meta"] = {**meta, "seconds": round(time.monotonic() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("meta", "slowest_socket")}, indent=1))
    bench_run.prune_scratch(keep=5)


if __name__ == "__main__":
    main()
