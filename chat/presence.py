"""Presence: who is online, away or offline, kept off the database.

The rules are chat.presence_rules. The state lives in Redis (one Lua script per change:
atomic, on Redis's clock, every key with an expiry) when the channel layer is Redis, and
in this process's memory on the embedded default. No database write per heartbeat: the
Connections table keeps its seed shape and its own ttl.

A change is reported once, by the process whose update (or sweep) made it, and goes to
the room groups of the user's live sockets as a presence event: every process hands it to
its local sockets in those rooms (chat.fanout), each socket once per change of that user
(chat.ephemeral). A process renews its expiry every CHAT_PRESENCE_TTL_SECONDS / 3; one
that dies without closing its sockets stops counting after CHAT_PRESENCE_TTL_SECONDS, and
the next sweep of any live process reports its users' changes (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterable
from typing import Any, Final, Protocol

from django.conf import settings

from chat import broadcast, layer_backends, protocol
from chat.presence_rules import (
    ACTIVE,
    CLOSED,
    IDLE,
    OFFLINE,
    Change,
    PresenceBook,
    UserPresence,
    from_ms,
    idle_after,
    presence_frame,
)

__all__ = ["UserPresence", "presence_of", "presence_payload"]

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS: Final = 0.5
# After a failed call, presence is left alone this long: a Redis outage costs one timeout,
# not one per connect, join and close (chat goes on; presence catches up on the next change).
RETRY_AFTER_SECONDS: Final = 5.0
KEY_PREFIX: Final = "chatsite:presence:"
# How long a user's last-seen time is kept after their last socket closed.
LAST_SEEN_KEEP_MS: Final = 30 * 86_400 * 1000

# One script, three operations, so they share the rules (chat.presence_rules, in Lua):
#   update <user> <connection> <instance> <state> <rooms>: one socket's state; one change
#   beat <instance>: renew the instance, sweep expired ones; the changes they made
#   read <user>...: (status, last seen) of each user, changing nothing
#   room <room> <limit>: the same of every user with a live socket in the room (none past limit)
_SCRIPT: Final = """
local op, p, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = {}
local function live(inst)
  local v = alive[inst]
  if v == nil then
    local e = redis.call('ZSCORE', p .. 'i', inst)
    v = (e ~= false and e ~= nil and tonumber(e) >= now)
    alive[inst] = v
  end
  return v
end
-- the user's hash: stored status and seen, live sockets' states and rooms, dead fields
local function scan(key)
  local h = redis.call('HGETALL', key)
  local s = {status = 'offline', seen = '', any = false, active = false, rooms = {}, dead = {}, all = {}}
  for i = 1, #h, 2 do
    local f, v = h[i], h[i + 1]
    if f == 'status' then s.status = v
    elseif f == 'seen' then s.seen = v
    else
      local inst, state, rooms = string.match(v, '^([^|]*)|([^|]*)|(.*)$')
      for r in string.gmatch(rooms, '[^,]+') do s.all[r] = true end
      if live(inst) then
        s.any = true
        if state == 'active' then s.active = true end
        for r in string.gmatch(rooms, '[^,]+') do s.rooms[r] = true end
      else
        table.insert(s.dead, f)
      end
    end
  end
  s.now = 'offline'
  if s.any then s.now = s.active and 'online' or 'away' end
  return s
end
local function keys(set)
  local out = {}
  for k in pairs(set) do table.insert(out, k) end
  table.sort(out)
  return table.concat(out, ',')
end
-- apply the user's status now; the change as {user, before, after, seen, rooms, new rooms}
local function settle(uid, before_rooms)
  local key = p .. 'u:' .. uid
  local s = scan(key)
  for _, f in ipairs(s.dead) do redis.call('HDEL', key, f) end
  local seen = s.seen
  if s.now ~= s.status then
    if s.status == 'online' or s.now == 'online' then
      seen = tostring(now)
      redis.call('HSET', key, 'seen', seen)
    end
    redis.call('HSET', key, 'status', s.now)
  end
  redis.call('PEXPIRE', key, keep)
  local all, fresh = {}, {}
  for r in pairs(before_rooms) do
    all[r] = true
    if not s.rooms[r] then redis.call('SREM', p .. 'r:' .. r, uid) end
  end
  for r in pairs(s.rooms) do
    all[r] = true
    if not before_rooms[r] then
      fresh[r] = true
      redis.call('SADD', p .. 'r:' .. r, uid)
      redis.call('PEXPIRE', p .. 'r:' .. r, keep)
    end
  end
  return {uid, s.status, s.now, seen, keys(all), keys(fresh)}
end
if op == 'update' then
  local uid, conn, inst, state, rooms = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  redis.call('ZADD', p .. 'i', now + ttl, inst)
  redis.call('SADD', p .. 'iu:' .. inst, uid)
  redis.call('PEXPIRE', p .. 'iu:' .. inst, ttl * 10)
  local key = p .. 'u:' .. uid
  local before = scan(key).rooms
  if state == 'closed' then
    redis.call('HDEL', key, 'c:' .. conn)
  else
    redis.call('HSET', key, 'c:' .. conn, inst .. '|' .. state .. '|' .. rooms)
  end
  if state == 'active' then redis.call('HSET', key, 'seen', tostring(now)) end
  return settle(uid, before)
elseif op == 'beat' then
  local inst = ARGV[5]
  redis.call('ZADD', p .. 'i', now + ttl, inst)
  redis.call('PEXPIRE', p .. 'iu:' .. inst, ttl * 10)
  local out = {}
  local dead = redis.call('ZRANGEBYSCORE', p .. 'i', '-inf', now - 1, 'LIMIT', 0, 20)
  for _, d in ipairs(dead) do
    for _, uid in ipairs(redis.call('SMEMBERS', p .. 'iu:' .. d)) do
      local c = settle(uid, scan(p .. 'u:' .. uid).all)
      if c[2] ~= c[3] then table.insert(out, c) end
    end
    redis.call('DEL', p .. 'iu:' .. d)
    redis.call('ZREM', p .. 'i', d)
  end
  return out
elseif op == 'room' then
  local out = {}
  if redis.call('SCARD', p .. 'r:' .. ARGV[5]) > tonumber(ARGV[6]) then return out end
  for _, uid in ipairs(redis.call('SMEMBERS', p .. 'r:' .. ARGV[5])) do
    local s = scan(p .. 'u:' .. uid)
    if s.rooms[ARGV[5]] then table.insert(out, {uid, s.now, s.seen}) end
  end
  return out
else
  local out = {}
  for i = 5, #ARGV do
    local s = scan(p .. 'u:' .. ARGV[i])
    table.insert(out, {ARGV[i], s.now, s.seen})
  end
  return out
end
"""


class PresenceBackend(Protocol):
    async def update(
        self, *, user_id: str, connection_id: str, instance: str, state: str, rooms: frozenset[str]
    ) -> Change | None: ...

    async def heartbeat(self, *, instance: str) -> list[Change]: ...

    async def read(self, user_ids: list[str]) -> dict[str, tuple[str, int | None]]: ...

    async def in_room(self, room_id: str) -> dict[str, tuple[str, int | None]]: ...


class MemoryPresence:
    """The embedded default: one process, so its memory is the whole truth."""

    def __init__(self, *, ttl_ms: int) -> None:
        self.book = PresenceBook(ttl_ms=ttl_ms)

    @staticmethod
    def _now() -> int:
        return int(time.time() * 1000)

    async def update(
        self, *, user_id: str, connection_id: str, instance: str, state: str, rooms: frozenset[str]
    ) -> Change | None:
        return self.book.update(
            user_id=user_id,
            connection_id=connection_id,
            instance=instance,
            state=state,
            rooms=rooms,
            now_ms=self._now(),
        )

    async def heartbeat(self, *, instance: str) -> list[Change]:
        return self.book.heartbeat(instance=instance, now_ms=self._now())

    async def read(self, user_ids: list[str]) -> dict[str, tuple[str, int | None]]:
        return self.book.read(user_ids, self._now())

    async def in_room(self, room_id: str) -> dict[str, tuple[str, int | None]]:
        found = self.book.in_room(room_id, self._now())
        return found if len(found) <= settings.CHAT_PRESENCE_ROOM_LIMIT else {}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _change(row: list[Any]) -> Change:
    user_id, before, after, seen, rooms, fresh = (_text(v) for v in row)
    return Change(
        user_id=user_id,
        before=before,
        after=after,
        last_seen_ms=int(seen) if seen else None,
        rooms=tuple(r for r in rooms.split(",") if r),
        new_rooms=tuple(r for r in fresh.split(",") if r),
    )


class RedisPresence:
    """Every process's view in one Redis, changed only by the script (atomic)."""

    def __init__(self, host: dict[str, Any], *, ttl_ms: int) -> None:
        self.host = host
        self.ttl_ms = ttl_ms
        self._script: Any = None

    async def _call(self, op: str, *args: str) -> Any:
        """One script call, bounded as a whole (a pool's wait included). The bound is this
        backend's: the in-memory one cannot wait, and an open paid for its timer twice."""
        if self._script is None:
            from redis.asyncio import Redis

            from chat.redis_pools import waiting_pool

            # Fails fast, no retries: presence is best effort, chat goes on without it.
            pool = waiting_pool(
                {
                    **self.host,
                    "socket_timeout": REDIS_TIMEOUT_SECONDS,
                    "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                    "retry": None,
                    "retry_on_error": [],
                }
            )
            self._script = Redis(connection_pool=pool).register_script(_SCRIPT)
        async with asyncio.timeout(REDIS_TIMEOUT_SECONDS * 2):
            return await self._script(args=[op, KEY_PREFIX, self.ttl_ms, LAST_SEEN_KEEP_MS, *args])

    async def update(
        self, *, user_id: str, connection_id: str, instance: str, state: str, rooms: frozenset[str]
    ) -> Change | None:
        row = await self._call("update", user_id, connection_id, instance, state, ",".join(sorted(rooms)))
        return _change(row)

    async def heartbeat(self, *, instance: str) -> list[Change]:
        return [_change(row) for row in await self._call("beat", instance)]

    async def read(self, user_ids: list[str]) -> dict[str, tuple[str, int | None]]:
        if not user_ids:
            return {}
        return self._statuses(await self._call("read", *user_ids))

    async def in_room(self, room_id: str) -> dict[str, tuple[str, int | None]]:
        return self._statuses(await self._call("room", room_id, str(settings.CHAT_PRESENCE_ROOM_LIMIT)))

    @staticmethod
    def _statuses(rows: list[Any]) -> dict[str, tuple[str, int | None]]:
        answer: dict[str, tuple[str, int | None]] = {}
        for row in rows:
            user_id, status, seen = (_text(v) for v in row)
            answer[user_id] = (status, int(seen) if seen else None)
        return answer


def _ttl_ms() -> int:
    return int(settings.CHAT_PRESENCE_TTL_SECONDS * 1000)


def _make_backend() -> PresenceBackend:
    layer: dict[str, Any] = settings.CHANNEL_LAYERS.get("default", {})
    if layer_backends.redis_backed(layer):
        return RedisPresence(dict(layer["CONFIG"]["hosts"][0]), ttl_ms=_ttl_ms())
    return MemoryPresence(ttl_ms=_ttl_ms())


# Selectors --------------------------------------------------------------------------------


async def presence_of(user_ids: Iterable[str]) -> dict[str, UserPresence]:
    """Each user's presence now (offline, no last seen, for one never seen or when the
    presence store cannot be read: a member list still answers)."""
    wanted = list(dict.fromkeys(user_ids))
    local = local_presence()
    read: dict[str, tuple[str, int | None]] = {}
    if local.available():
        try:
            read = await local.backend.read(wanted)
        except Exception:
            local.failed("read")
    answer = {}
    for user_id in wanted:
        status, seen = read.get(user_id, ("offline", None))
        answer[user_id] = UserPresence(status=status, last_seen_at=from_ms(seen))
    return answer


async def present_in(room_id: str) -> dict[str, UserPresence]:
    """Every user with a live socket in the room, and their presence (empty when the store
    cannot be read, or past CHAT_PRESENCE_ROOM_LIMIT users: see chat.ephemeral)."""
    local = local_presence()
    if not local.available():
        return {}
    try:
        read = await local.backend.in_room(room_id)
    except Exception:
        local.failed("read")
        return {}
    return {user_id: UserPresence(status, from_ms(seen)) for user_id, (status, seen) in read.items()}


def presence_payload(presence: UserPresence) -> dict[str, Any]:
    """The fields a member list entry carries: {"status", "lastSeenAt"}."""
    frame = presence_frame("", presence)
    return {"status": frame["status"], "lastSeenAt": frame["lastSeenAt"]}


# Sockets ----------------------------------------------------------------------------------


class PresenceSocket(Protocol):
    """What the process's presence needs of a socket (chat.ephemeral.EphemeralSocket)."""

    connection_id: str | None
    presence_state: str
    presence_hidden: bool
    last_active: float

    def presence_user(self) -> str | None: ...

    def joined_rooms(self) -> list[str]: ...


class LocalPresence:
    """This process's sockets' presence: reports changes, marks idle sockets, renews the
    process's expiry and sweeps the expired ones'."""

    def __init__(self, backend: PresenceBackend) -> None:
        self.backend = backend
        self.sockets: dict[int, PresenceSocket] = {}
        self._task: asyncio.Task[None] | None = None
        self.down_until = 0.0
        self.resync = False

    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def failed(self, what: str) -> None:
        # Calls already in flight when Redis stopped answering fail one after another: 1,957
        # in one process's stop during a reconnect storm, each formatting a traceback on a loop
        # already behind. The first failure of an outage says why; the rest are not news.
        if self.available():
            log.warning(
                "presence %s failed; presence is left alone for %.0f s", what, RETRY_AFTER_SECONDS, exc_info=True
            )
        else:
            log.debug("presence %s failed again while left alone", what)
        self.down_until = time.monotonic() + RETRY_AFTER_SECONDS
        self.resync = True  # once it answers again: every local socket's state, afresh

    def instance(self) -> str:
        from chat import services  # the process's instance id, shared with its connection rows

        return services.instance_id()

    async def report(self, socket: PresenceSocket, state: str | None = None) -> None:
        """Store this socket's state (its own, or CLOSED) and rooms, and announce any change."""
        user_id = socket.presence_user()
        if user_id is None or socket.connection_id is None:
            return
        if state != CLOSED:
            self.sockets[id(socket)] = socket
            self._start()
        else:
            self.sockets.pop(id(socket), None)
        if not self.available():
            return
        try:
            change = await self.backend.update(
                user_id=user_id,
                connection_id=socket.connection_id,
                instance=self.instance(),
                state=state or socket.presence_state,
                rooms=frozenset(socket.joined_rooms()) if state != CLOSED else frozenset(),
            )
        except Exception:
            self.failed("update")
            return
        if change is not None:
            await announce(change)

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._keep(), name="chat-presence")

    async def _keep(self) -> None:
        away_after = float(settings.CHAT_AWAY_AFTER_SECONDS)
        renew = settings.CHAT_PRESENCE_TTL_SECONDS / 3
        tick = max(0.05, min(renew, away_after / 4, 5.0))
        next_beat = 0.0
        while self.sockets:
            await asyncio.sleep(tick)
            try:
                now = time.monotonic()
                for socket in list(self.sockets.values()):
                    if socket.presence_state == ACTIVE and idle_after(
                        last_active=socket.last_active, now=now, away_after=away_after
                    ):
                        socket.presence_state = IDLE
                        await self.report(socket)
                if now >= next_beat:
                    next_beat = now + renew
                    changes = await self.backend.heartbeat(instance=self.instance())
                    for change in changes:
                        await announce(change)
                    if self.resync:  # back after a failure (a restarted Redis knows nothing)
                        self.resync = False
                        self.down_until = 0.0
                        for socket in list(self.sockets.values()):
                            await self.report(socket)
            except Exception:
                self.failed("tick")


async def announce(change: Change) -> None:
    """Who hears of a user's presence: everyone who shares a room with them.

    Sharing a room is membership (a private room, a DM, or a public room joined as a
    member): a changed status goes to every fellow member's sockets, whether or not they
    have that room open (one publish, chat.broadcast.member_presence). A public room is
    also shared by whoever has it open without being a member (the default room is read
    by all): a changed status goes to the rooms of the user's sockets too, and an
    unchanged one to the rooms they have just entered (those there learn it). A socket
    gets each change once, however many ways it comes (chat.ephemeral).
    """
    rooms = change.rooms if change.changed else change.new_rooms
    if not rooms and not change.changed:
        return
    presence = UserPresence(change.after, from_ms(change.last_seen_ms))
    key = presence_key(presence)
    text = protocol.encode(presence_frame(change.user_id, presence))
    for room_id in rooms:
        with contextlib.suppress(Exception):
            await broadcast.presence(room_id, change.user_id, key=key, text=text)
    if change.changed:
        try:
            fellows = await _fellows(change.user_id)
            if fellows:
                await broadcast.member_presence(change.user_id, fellows, key=key, text=text)
        except Exception:
            log.warning("presence of %s not told to fellow members", change.user_id, exc_info=True)


async def _fellows(user_id: str) -> list[str]:
    from chat import services  # services -> fanout; presence stays below them

    return await services.room_fellows(user_id=user_id)


async def fellows_present(user_id: str) -> dict[str, UserPresence]:
    """The presence of each user who shares a room membership with `user_id` and is not
    offline (a socket's first picture of them; the changes follow)."""
    try:
        found = await presence_of(await _fellows(user_id))
    except Exception:
        log.warning("presence of %s's fellow members not read", user_id, exc_info=True)
        return {}
    return {other: p for other, p in found.items() if p.status != OFFLINE}


def presence_key(presence: UserPresence) -> str:
    """Tells one change of a user's presence from another (a socket gets each once): every
    change is a change of status."""
    return presence.status


_local: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LocalPresence] = weakref.WeakKeyDictionary()


def local_presence() -> LocalPresence:
    """The presence of the running event loop (one per daphne process)."""
    loop = asyncio.get_running_loop()
    found = _local.get(loop)
    if found is None:
        found = _local[loop] = LocalPresence(_make_backend())
    return found
