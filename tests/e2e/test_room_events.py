"""Room events across two daphne processes on Redis: what a client applies is what history shows.

The bounded multi-process variant of chat/tests/test_room_events_property.py: a moderator
posts from both processes and hides, deletes and changes settings in Django admin (real
HTTP, on process one), while two observers read some frames, drop the rest with their
connection and resume by lastSeq, each time on the other process. Every observer is the
model client (tests/fixtures/room_model.py) and must end with exactly `history`'s state.
The steps come from a seeded generator: the same on every run.
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.client import ChatClient, timeout
from tests.e2e.test_moderation import Admin
from tests.e2e.test_multiprocess import Cluster, start_cluster
from tests.fixtures import warm
from tests.fixtures.room_model import Frame, ModelClient
from tests.fixtures.servers import ROOT, DaphneServer, base_env

pytestmark = pytest.mark.timeout(240)

STEPS = 45
SEEDS = [14, 2026]


class Observer:
    """A ChatClient whose frames the model applies only when the test says it has read them."""

    def __init__(self, cookie: str, room_id: str) -> None:
        self.cookie = cookie
        self.model = ModelClient(room_id)
        self.client: ChatClient | None = None
        self.read_to = 0  # frames of the current socket applied so far

    async def connect(self, server: DaphneServer) -> None:
        self.client = await ChatClient.connect(server.ws_url, cookie=self.cookie, origin=server.origin)
        self.read_to = 0
        fresh = not self.model.cursor and not self.model.messages
        await self.client.join(self.model.room_id, last_seq=None if fresh else self.model.cursor)
        await self.read()

    async def read(self) -> None:
        """Apply every frame received so far, in order (a gap: resume from the cursor)."""
        assert self.client is not None
        while self.read_to < len(self.client.frames):
            frame = self.client.frames[self.read_to]
            self.read_to += 1
            if frame["type"] == "joined" and frame["roomId"] == self.model.room_id:
                self.model.apply_joined(frame)
            elif not self.model.apply(frame):
                await self.client.join(self.model.room_id, last_seq=self.model.cursor)

    async def drop(self) -> None:
        """Close the socket: what arrived but was not read is lost with it."""
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def read_up_to(self, last_seq: int) -> None:
        async with asyncio.timeout(timeout(20)):
            while self.model.cursor < last_seq:
                await self.read()
                await asyncio.sleep(0.02)


def make_moderator(cluster: Cluster, username: str) -> None:
    """Staff with moderator rights, in the cluster's database (through Django, as an operator would)."""
    code = (
        "from django.contrib.auth import get_user_model; from django.contrib.auth.models import Group; "
        f"u = get_user_model().objects.get(username={username!r}); u.is_staff = True; u.save(); "
        "u.groups.add(Group.objects.get_or_create(name='moderators')[0])"
    )
    warm.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=base_env(cluster.shared_dir),
        capture_output=True,
        timeout=120,
        check=True,
    )


@pytest.mark.parametrize("seed", SEEDS)
async def test_clients_on_two_processes_end_with_what_history_shows(
    daphne_factory: Callable[..., DaphneServer], redis_url: str, tmp_path: Path, seed: int
) -> None:
    """Posts, removals and settings changes on two processes; observers drop and resume on both: state == history."""
    cluster = start_cluster(daphne_factory, tmp_path, REDIS_URL=redis_url, CHAT_REPLAY_CAP="8")
    one, two = cluster.servers
    moderator = f"carol-{uuid.uuid4().hex[:6]}"
    mod_cookie = one.signup(moderator)
    await asyncio.to_thread(make_moderator, cluster, moderator)
    admin = Admin(one.base_url, mod_cookie)
    room = admin.new_room()
    senders = [await ChatClient.connect(s.ws_url, cookie=mod_cookie, origin=s.origin) for s in (one, two)]
    observers = [Observer(s.signup(f"bob-{uuid.uuid4().hex[:6]}"), room) for s in (one, two)]
    where = [0, 1]  # the process each observer is on (it moves on every resume)
    for observer, index in zip(observers, where, strict=True):
        await observer.connect(cluster.servers[index])
    draw = random.Random(seed)
    sent: list[str] = []
    page = f"/admin/moderation/rooms/{room}/"
    try:
        for n in range(STEPS):
            kind = draw.choices(["send", "remove", "settings", "read", "drop", "resume"], [6, 2, 1, 3, 1, 1])[0]
            who = draw.randrange(2)
            if kind == "send":
                ack = await senders[who].send_message(room, f"m{n}")
                assert ack["type"] == "ack", ack
                sent.append(ack["messageId"])
            elif kind == "remove" and sent:
                removal = draw.choice(["hide", "delete"])
                message_id = draw.choice(sent)
                await asyncio.to_thread(
                    admin.act, page, op="messages", removal=removal, message_id=message_id, reason="prop"
                )
            elif kind == "settings":
                fields = {"name": f"Room {n}", "slow_mode_seconds": draw.randrange(3), "reason": "prop"}
                if draw.random() < 0.5:
                    fields["read_only"] = "on"
                await asyncio.to_thread(admin.act, page, op="settings", **fields)
            elif kind == "read":
                if observers[who].client is not None:
                    await observers[who].read()
            elif kind == "drop":
                await observers[who].drop()
            elif kind == "resume" and observers[who].client is None:
                where[who] = 1 - where[who]
                await observers[who].connect(cluster.servers[where[who]])
        probe = await ChatClient.connect(one.ws_url, cookie=mod_cookie, origin=one.origin)
        last_seq = (await probe.join(room))["lastSeq"]
        history: Frame = await probe.history(room, limit=200)
        await probe.close()
        shown = {m["messageId"]: (m["seq"], m["message"], bool(m.get("removed"))) for m in history["messages"]}
        for observer, index in zip(observers, where, strict=True):
            if observer.client is None:
                await observer.connect(cluster.servers[index])
            await observer.read_up_to(last_seq)
            assert observer.model.messages == shown
            assert observer.model.gaps == 0
        assert len(shown) == len(sent)
    finally:
        for client in [*senders, *(o.client for o in observers if o.client is not None)]:
            await client.close()
