"""This daphne process's open sockets, and the one task that looks after them.

Per process (per event loop) one `LocalSockets` registry knows every open chat socket and
runs one background task while any is open:

- Heartbeat: every CHAT_CONNECTION_HEARTBEAT_SECONDS (and, awaited by the opening socket,
  when the first socket opens) it records in the store that this process is alive for
  CHAT_INSTANCE_TTL_SECONDS: one write for the process, not one per socket. The same write
  lists the processes that stopped beating (died without cleaning up); their connection rows
  are deleted then, by whichever live process sees them first, so they stop counting within
  the instance ttl and one heartbeat. A connection row's own ttl is long
  (CHAT_CONNECTION_TTL_SECONDS, two hours) and pushed forward only once less than half of it
  is left: one write per socket an hour where a write per socket a minute used to keep a
  three-minute ttl (issue 22.4). A process that finds its own entry gone or expired (it
  stalled past its ttl, and another process may have swept its rows) writes its sockets'
  rows again, as does the first heartbeat after a first socket found it so.
- Sweep: before the first socket of a process is registered, rows that carry this
  process's CHAT_INSTANCE_ID but belong to no open socket here (a previous life of the
  process, killed before it could clean up) are deleted.
- Redis watchdog: every CHAT_LAYER_WATCHDOG_SECONDS it reads Redis's run_id. A new run_id
  (Redis restarted or failed over and lost every group membership) or an outage that has
  ended makes every local socket rejoin its rooms' groups and catch up from the store, so no
  socket stays joined but deaf and nothing lost in the outage stays missing.
- Session re-check: every CHAT_SESSION_RECHECK_SECONDS the sessions of every local socket
  signed in by cookie are read again, in one pass for the process (not a timer per socket);
  a socket whose session has ended (flushed, expired, stale after a password change) is
  closed with 4401.
- Going away: when a drain begins (chatsite.ops.drain: SIGUSR1, ECS stopping the task, or
  SIGTERM) the open sockets are closed with 1001 one at a time, spread over the drain window,
  and their rows deleted; sockets that arrive during the drain are closed with 1001 at once.

A single lost message with no later one (the tail) is caught by `LiveSocket.catch_up`,
which the consumer also runs on every client ping, against a room seq cached here for a
second so a process reads each room at most once a second however many sockets ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from accounts.identity import live_sessions
from accounts.revocation import SESSION_ENDED
from chat import layer_backends, services
from chat.errors import ChatError
from chat.fanout import room_fanout
from chat.storage.base import ConnectionRecord
from chatsite.ops import drain

log = logging.getLogger(__name__)

# How long a socket closed with 1001 at shutdown gets to answer the close frame before the
# process goes on stopping (daphne drops every TCP connection right after).
GOING_AWAY_WAIT_SECONDS = 1.0
# After an outage ends, catch up on this many watchdog ticks: the pub/sub layer
# re-subscribes on its own schedule (within about a second), and a message published
# before it has re-subscribed is only in the store.
CATCH_UP_TICKS_AFTER_OUTAGE = 2
# A room's last seq read for a ping's tail check is reused for this long.
ROOM_SEQ_MAX_AGE_SECONDS = 1.0


class LiveSocket(Protocol):
    """What the registry needs of a consumer."""

    connection_id: str | None

    def joined_rooms(self) -> list[str]: ...

    async def go_away(self) -> None:
        """Close with 1001; the socket's own disconnect handling cleans up and discards it."""
        ...

    async def release(self) -> None:
        """Clean up as a disconnect does (rooms left, connection row deleted, discarded),
        without waiting for the client: a drain ends before a silent client answers."""
        ...

    async def catch_up(self, *, fresh: bool) -> None:
        """Send whatever the store has past this socket's cursors, in order, once."""
        ...

    def session_key(self) -> str | None:
        """The session a cookie-authenticated socket lives on; None for a token."""
        ...

    async def end_access(self, close_code: int) -> None:
        """Close because the socket's access ended (4401, 4403)."""
        ...


_draining = False


def draining() -> bool:
    """True once a drain or daphne's shutdown has begun: new sockets are turned away with 1001."""
    return _draining or drain.draining()


def _drain_local_sockets(window: float) -> None:
    """A drain began (chatsite.ops.drain): close this process's sockets over `window`."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no event loop, so no socket either
    registry = _registries.get(loop)
    if registry is not None and registry.sockets:
        registry.drain(window)


drain.on_begin(_drain_local_sockets)


def begin_drain() -> asyncio.Task[None] | None:
    """Twisted's "before shutdown" trigger (installed by chat.daphne_adapt): close every local
    socket with 1001, over CHAT_STOP_DRAIN_SECONDS (sooner if a drain already under way ends
    sooner), and wait until each has cleaned up before daphne drops them."""
    global _draining
    _draining = True
    window = settings.CHAT_STOP_DRAIN_SECONDS
    drain.begin("SIGTERM", window=window)  # nothing new if a drain began before the stop
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None or not (registry.sockets or registry.opening_now):
        return None
    log.info("shutting down: closing %d sockets with 1001", len(registry.sockets))
    return registry.drain(window)


class LocalSockets:
    """The open sockets of one event loop (one daphne process) and their keeper task."""

    def __init__(self) -> None:
        self.sockets: dict[int, LiveSocket] = {}  # by id()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._swept = False
        self._start_lock = asyncio.Lock()
        self._room_seqs: dict[str, tuple[float, int | None]] = {}
        self.watchdog = RedisWatchdog.from_settings()
        self._drain_task: asyncio.Task[None] | None = None
        self._drain_deadline = 0.0
        self._drain_hurried = asyncio.Event()
        self._sent_away: set[int] = set()
        self._opening = 0  # sockets between their row's write and add(): a stop waits for them too
        # Each local row as written (its ttl as last pushed): the heartbeat refreshes only the
        # rows past half their ttl, and writes them all again if this process was swept.
        self._rows: dict[str, ConnectionRecord] = {}
        # Rows written again by the last beat, with the ttl written: a socket that closed
        # while they were written may have had its row put back after its close deleted it;
        # the next heartbeat deletes such a row again (only at that ttl).
        self._rewritten: dict[str, int] = {}
        self._rewrite_due = False

    # Sockets ----------------------------------------------------------------------------

    async def add(self, socket: LiveSocket, record: ConnectionRecord) -> None:
        """Register an open socket whose connection row (`record`) is written; start the keeper.
        The record is required: the heartbeat refreshes a row by the ttl it holds (once past
        half of it), and writes it again from the record if this process was swept."""
        self.sockets[id(socket)] = socket
        self._rows[record.connection_id] = record
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._keep(), name="chat-connections-keeper")
            # The process's entry must be live while it has rows, so the keeper's first beat
            # is not a heartbeat away: it is this socket's, awaited (a write in the background
            # would race whatever the opener does next). Nothing is swept here; the heartbeat
            # does that.
            try:
                beat = await services.instance_beat(now=time.time())
            except ChatError:
                log.warning("recording this process as alive failed; the heartbeat retries")
                self._rewrite_due = True
            else:
                # Entry gone or expired: a sweep of this process may have been under way as
                # this row was written. The first heartbeat writes the rows again.
                self._rewrite_due = self._rewrite_due or not beat.kept

    @contextlib.asynccontextmanager
    async def opening(self) -> AsyncIterator[None]:
        """Around the write of a socket's connection row, up to add(): a stop that begins
        meanwhile waits (bounded) until the row is either owned by a registered socket or
        deleted again (services.connection_open deletes it when cancelled)."""
        self._opening += 1
        try:
            yield
        finally:
            self._opening -= 1
            if not self._opening and not self.sockets:
                self._empty.set()

    def discard(self, socket: LiveSocket) -> None:
        self._sent_away.discard(id(socket))
        if socket.connection_id is not None:
            self._rows.pop(socket.connection_id, None)
        if self.sockets.pop(id(socket), None) is not None and not self.sockets:
            self._wake.set()  # the keeper ends with the last socket
            self._empty.set()

    @property
    def opening_now(self) -> bool:
        return self._opening > 0

    def drain(self, window: float) -> asyncio.Task[None]:
        """Close every socket with 1001, evenly over `window` seconds, then wait (bounded)
        until all have cleaned up. A second call with a shorter window (SIGTERM during a
        drain) hurries the drain under way instead of starting another."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window
        if self._drain_task is None or self._drain_task.done():
            self._drain_deadline = deadline
            self._drain_task = loop.create_task(self._drain(), name="chat-connections-drain")
        elif deadline < self._drain_deadline:
            self._drain_deadline = deadline
            self._drain_hurried.set()
        return self._drain_task

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        # A pass over the sockets as they were, then another for any that opened meanwhile.
        # (A fresh list for every close made a stop quadratic: with 2,500 sockets the stopping
        # process spent seconds of its CPU building it, in a reconnect storm; bench.storm.)
        while batch := [s for s in self.sockets.values() if id(s) not in self._sent_away]:
            for n, socket in enumerate(batch):
                if id(socket) in self._sent_away or self.sockets.get(id(socket)) is not socket:
                    continue  # closed on its own meanwhile
                self._sent_away.add(id(socket))
                with contextlib.suppress(Exception):
                    await socket.go_away()
                delay = drain.next_close_delay(left=len(batch) - n - 1, time_left=self._drain_deadline - loop.time())
                self._drain_hurried.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drain_hurried.wait(), delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GOING_AWAY_WAIT_SECONDS):
                while self.sockets or self._opening:
                    self._empty.clear()
                    await self._empty.wait()
        # A client that has not answered its close frame by now (gone quiet, on a dead link, or
        # simply busy) is dropped by autobahn only after CHAT_CLOSE_HANDSHAKE_TIMEOUT, later than
        # daphne stops: its cleanup used to run in a process already exiting, and its row
        # outlived the process, counted as an open socket until its ttl (three minutes of
        # ghosts on the dashboard after every restart without a stable CHAT_INSTANCE_ID). So
        # the process cleans up after such sockets itself; their late disconnect finds nothing
        # left to do.
        # Bounded like the wait above (the stop timeouts leave room for both); a row not
        # deleted in time still stops counting at its ttl.
        if silent := list(self.sockets.values()):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GOING_AWAY_WAIT_SECONDS):
                    await asyncio.gather(*(s.release() for s in silent), return_exceptions=True)

    async def prepare(self) -> None:
        """Before the first socket's row is written: sweep a previous life, take Redis's run_id."""
        if self._swept:
            return
        async with self._start_lock:
            if self._swept:
                return
            if settings.CHAT_INSTANCE_ID:
                keep = {s.connection_id for s in self.sockets.values() if s.connection_id}
                try:
                    swept = await services.connections_sweep(keep=keep)
                except ChatError:
                    log.warning("could not sweep connection rows of a previous life; they expire by ttl")
                else:
                    if swept:
                        log.info(
                            "swept %d connection rows left by a previous life of %s", swept, services.instance_id()
                        )
            if self.watchdog is not None:
                await self.watchdog.check()  # the baseline run_id
            self._swept = True

    # Room seqs for the tail check --------------------------------------------------------

    async def room_last_seq(self, room_id: str, *, fresh: bool = False) -> int | None:
        now = time.monotonic()
        cached = self._room_seqs.get(room_id)
        if not fresh and cached is not None and now - cached[0] < ROOM_SEQ_MAX_AGE_SECONDS:
            return cached[1]
        seq = await services.room_last_seq(room_id=room_id)
        self._room_seqs[room_id] = (now, seq)
        if len(self._room_seqs) > 10_000:
            self._room_seqs.clear()
        return seq

    # The keeper ---------------------------------------------------------------------------

    async def _keep(self) -> None:
        heartbeat = settings.CHAT_CONNECTION_HEARTBEAT_SECONDS
        watch = settings.CHAT_LAYER_WATCHDOG_SECONDS if self.watchdog is not None else None
        recheck = settings.CHAT_SESSION_RECHECK_SECONDS
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + heartbeat
        next_watch = loop.time() + watch if watch else None
        next_recheck = loop.time() + recheck
        while self.sockets:
            due = min(next_heartbeat, next_recheck, next_watch or next_heartbeat)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, due - loop.time()))
            if not self.sockets:
                break
            try:
                if loop.time() >= next_heartbeat:
                    next_heartbeat = loop.time() + heartbeat
                    await self.tick()
                if watch and next_watch is not None and loop.time() >= next_watch:
                    next_watch = loop.time() + watch
                    await self._watch()
                if loop.time() >= next_recheck:
                    next_recheck = loop.time() + recheck
                    await self.recheck_sessions()
            except Exception:
                log.exception("connection keeper tick failed; trying again next tick")
        with contextlib.suppress(Exception):
            await self._forget_closed_rewrites()
        if self.watchdog is not None:
            await self.watchdog.close()

    async def tick(self, *, now: float | None = None) -> None:
        """One heartbeat. `now`: wall-clock epoch seconds (bench.dynamo_cost drives it)."""
        now = time.time() if now is None else now
        # The process's room subscriptions are renewed too, so none outlives the channel
        # layer's group_expiry however long its room stays busy.
        try:
            await room_fanout().resubscribe()
        except Exception:
            log.warning("renewing room subscriptions failed; retrying next tick", exc_info=True)
        await self._forget_closed_rewrites()
        await self._beat(now)
        open_ids = [s.connection_id for s in list(self.sockets.values()) if s.connection_id]
        half = settings.CHAT_CONNECTION_TTL_SECONDS / 2
        due = [cid for cid in open_ids if cid not in self._rows or self._rows[cid].ttl - now < half]
        if not due:
            return
        try:
            ttl = await services.connections_heartbeat(
                connection_ids=due, ttl=int(now) + settings.CHAT_CONNECTION_TTL_SECONDS
            )
        except ChatError:
            log.warning("heartbeat of %d connection rows failed; retrying next tick", len(due))
            return
        for cid in due:
            if cid in self._rows:
                self._rows[cid] = replace(self._rows[cid], ttl=ttl)

    async def _forget_closed_rewrites(self) -> None:
        """Delete again the rows the last beat wrote for sockets that have closed since."""
        closed = {cid: ttl for cid, ttl in self._rewritten.items() if cid not in self._rows}
        self._rewritten = {}
        for connection_id, ttl in closed.items():
            try:
                await services.connection_forget(connection_id=connection_id, ttl=ttl)
            except ChatError:
                log.warning("connection row %s of a closed socket left to expire", connection_id)

    async def _beat(self, now: float) -> None:
        """This process is alive; sweep the rows of processes that are not."""
        try:
            beat = await services.instance_beat(now=now)
        except ChatError:
            log.warning("recording this process as alive failed; retrying next tick")
            return
        rewrite, self._rewrite_due = not beat.kept or self._rewrite_due, False
        if rewrite and self._rows:
            ttl = int(now) + settings.CHAT_CONNECTION_TTL_SECONDS
            rows = [replace(row, ttl=ttl) for row in self._rows.values()]
            self._rewritten.update((row.connection_id, ttl) for row in rows)
            try:
                await services.connections_rewrite(records=rows)
            except ChatError:
                log.warning("writing %d connection rows again failed", len(rows))
            else:
                for row in rows:
                    if row.connection_id in self._rows:  # not closed meanwhile
                        self._rows[row.connection_id] = row
        for instance, ttl in beat.dead.items():
            try:
                swept = await services.instance_sweep(instance_id=instance, ttl=ttl, now=now)
            except ChatError:
                log.warning("sweeping the rows of dead process %s failed; retrying next tick", instance)
            else:
                log.info("swept %d connection rows of %s, which stopped beating", swept, instance)

    async def recheck_sessions(self) -> int:
        """Close with 4401 every local socket whose session has ended; how many it closed.
        One read of each distinct session, in one thread hop for the whole process."""
        by_session: dict[str, list[LiveSocket]] = {}
        for socket in list(self.sockets.values()):
            key = socket.session_key()
            if key is not None:
                by_session.setdefault(key, []).append(socket)
        if not by_session:
            return 0
        alive = await database_sync_to_async(live_sessions)(list(by_session))
        ended = [socket for key, sockets in by_session.items() if key not in alive for socket in sockets]
        for socket in ended:
            with contextlib.suppress(Exception):
                await socket.end_access(SESSION_ENDED)
        if ended:
            log.info("session re-check: %d sockets closed with 4401", len(ended))
        return len(ended)

    async def _watch(self) -> None:
        assert self.watchdog is not None
        if not await self.watchdog.check():
            return
        log.warning("Redis restarted or came back: %d local sockets rejoin and catch up", len(self.sockets))
        try:
            await room_fanout().resubscribe()
            for socket in list(self.sockets.values()):
                await socket.catch_up(fresh=True)
        except Exception:
            log.warning("rejoin after a Redis outage failed; retrying next tick", exc_info=True)
            self.watchdog.rejoin_failed()


class RedisWatchdog:
    """Notices a Redis restart (new run_id), a Redis that lost its data, or an outage that has ended."""

    def __init__(self, host: dict[str, Any]) -> None:
        self.host = host
        self.run_id: str | None = None
        self.catch_ups_due = 0
        self._client: Any = None
        # A key of this process's own: gone while the run_id stayed means Redis lost its data
        # (FLUSHALL, eviction), and with it the core layer's group memberships. It expires,
        # so a dead process leaves nothing behind; a check late past its ttl only causes a
        # harmless extra catch-up.
        self.marker = f"chatsite:watchdog:{uuid.uuid4().hex}"
        self.marker_ttl = max(60, int(10 * settings.CHAT_LAYER_WATCHDOG_SECONDS))

    @classmethod
    def from_settings(cls) -> RedisWatchdogs | None:
        """One watchdog per Redis host of the channel layer (several with REDIS_URLS)."""
        layer: dict[str, Any] = settings.CHANNEL_LAYERS.get("default", {})
        if not layer_backends.redis_backed(layer):
            return None
        hosts: list[dict[str, Any]] = layer["CONFIG"]["hosts"]
        return RedisWatchdogs([cls(dict(host)) for host in hosts])

    def _redis(self) -> Any:
        if self._client is None:
            from channels_redis.utils import create_pool
            from redis.asyncio import Redis

            timeout = max(0.5, min(2.0, settings.CHAT_LAYER_WATCHDOG_SECONDS))
            # A check that fails fast, with no retries: a failure is the news it reports.
            pool = create_pool(
                {
                    **self.host,
                    "max_connections": 2,
                    "socket_timeout": timeout,
                    "socket_connect_timeout": timeout,
                    "retry": None,
                    "retry_on_error": [],
                }
            )
            self._client = Redis(connection_pool=pool)
        return self._client

    async def check(self) -> bool:
        """Read the run_id; True when local sockets must rejoin and catch up now."""
        try:
            client = self._redis()
            info = await client.info("server")
            run_id = str(info["run_id"])
            async with client.pipeline(transaction=False) as pipe:
                pipe.exists(self.marker)
                pipe.set(self.marker, run_id, ex=self.marker_ttl)
                kept, _ = await pipe.execute()
        except Exception as exc:
            if self.catch_ups_due < CATCH_UP_TICKS_AFTER_OUTAGE:
                log.warning("Redis unreachable (%s); sockets rejoin and catch up when it is back", exc)
            self.catch_ups_due = CATCH_UP_TICKS_AFTER_OUTAGE
            return False
        if self.run_id is not None and run_id == self.run_id and not kept:
            log.warning("Redis lost its data (flushed or evicted) without restarting")
        if self.run_id is not None and (run_id != self.run_id or not kept):
            self.catch_ups_due = CATCH_UP_TICKS_AFTER_OUTAGE
        self.run_id = run_id
        if self.catch_ups_due:
            self.catch_ups_due -= 1
            return True
        return False

    def rejoin_failed(self) -> None:
        self.catch_ups_due = CATCH_UP_TICKS_AFTER_OUTAGE

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose(close_connection_pool=True)


class RedisWatchdogs:
    """The watchdogs of every Redis host: any host's restart, data loss or returning outage
    makes every local socket rejoin and catch up (a room's channel lives on one host, which
    one a socket cannot know)."""

    def __init__(self, watchdogs: list[RedisWatchdog]) -> None:
        self.watchdogs = watchdogs

    async def check(self) -> bool:
        results = [await watchdog.check() for watchdog in self.watchdogs]
        return any(results)

    def rejoin_failed(self) -> None:
        for watchdog in self.watchdogs:
            watchdog.rejoin_failed()

    async def close(self) -> None:
        for watchdog in self.watchdogs:
            await watchdog.close()


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LocalSockets] = weakref.WeakKeyDictionary()


async def at_start() -> None:
    """When the process starts, not at its first socket: a process killed and started again
    with the same CHAT_INSTANCE_ID sweeps its previous life's rows, which would otherwise count
    as open sockets (the dashboard, users online) until a socket arrived or their ttl passed."""
    await local_sockets().prepare()


def local_sockets() -> LocalSockets:
    """The registry of the running event loop (one per daphne process)."""
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        registry = _registries[loop] = LocalSockets()
    return registry


async def going_away(
    *,
    close: Callable[[int], Awaitable[None]],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    cleanup: Callable[[], Awaitable[None]],
) -> None:
    """The socket's application was cancelled while it was open: daphne is stopping.

    Close with 1001 so the client resumes elsewhere, give the close frame time to reach it
    (during a shutdown), and delete the connection row. Never raises.
    """
    from chat.protocol import CloseCode

    with contextlib.suppress(Exception):
        await close(CloseCode.GOING_AWAY)
    if _draining:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(GOING_AWAY_WAIT_SECONDS):
                while (await receive()).get("type") != "websocket.disconnect":
                    pass
    with contextlib.suppress(Exception):
        async with asyncio.timeout(GOING_AWAY_WAIT_SECONDS):
            await cleanup()
