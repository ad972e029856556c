"""Property: a client that applies what it receives ends with exactly the state `history` shows.

Random interleavings of sends, removals (hide, delete, of any message, again or not) and
room-settings changes, while an observer's socket reads some of its frames, drops the rest
with the connection, and resumes with joinRoom lastSeq (sometimes past the replay cap).
Everything runs through the real routing, consumer, fan-out, services and store, on both
backends (the local ORM; DynamoDB on a moto server). The observer is a model client that
applies the one cursor rule of docs/protocol.md and nothing else.

Examples are derandomised (the same ones on every run, so CI never flakes on a new draw)
and bounded: a few dozen steps each, a few seconds per backend.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat import moderation, services
from chat.storage import schema
from chat.storage.dynamodb import ensure_tables, make_client
from chatsite.asgi import application
from tests.fixtures.room_model import Frame, ModelClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

ORIGIN = b"http://127.0.0.1"
WAIT = 5.0
CAP = 6  # CHAT_REPLAY_CAP here: long absences resume past it


class Observer:
    """A socket that reads some frames, loses the rest when it drops, and resumes."""

    def __init__(self, cookie: bytes, room_id: str) -> None:
        self.cookie = cookie
        self.model = ModelClient(room_id)
        self.comm: WebsocketCommunicator | None = None

    async def connect(self) -> None:
        comm = WebsocketCommunicator(
            application, "/ws/", headers=[(b"host", b"127.0.0.1"), (b"origin", ORIGIN), (b"cookie", self.cookie)]
        )
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        self.comm = comm
        fresh = not self.model.cursor and not self.model.messages
        await self.join(last_seq=None if fresh else self.model.cursor)

    async def join(self, *, last_seq: int | None) -> None:
        frame: Frame = {"action": "joinRoom", "roomId": self.model.room_id}
        if last_seq is not None:
            frame["lastSeq"] = last_seq
        self.model.apply_joined(await self.request(frame, "joined"))

    async def request(self, frame: Frame, reply: str) -> Frame:
        """Send a frame; apply the room events that arrive before its reply."""
        assert self.comm is not None
        await self.comm.send_json_to(frame)
        while True:
            got = await self.comm.receive_json_from(timeout=WAIT)
            if got["type"] == reply:
                return dict(got)
            assert got["type"] != "error", got
            await self.take(got)

    async def take(self, frame: Frame) -> None:
        if not self.model.apply(frame):
            await self.join(last_seq=self.model.cursor)  # a gap: resume from the cursor

    async def read_some(self) -> None:
        """Apply the frames that have arrived by now."""
        while self.comm is not None and not await self.comm.receive_nothing(timeout=0.01):
            await self.take(await self.comm.receive_json_from(timeout=WAIT))

    async def drop(self) -> None:
        """Lose the connection, and every frame not read yet with it."""
        if self.comm is not None:
            await self.comm.disconnect(timeout=WAIT)
            self.comm = None

    async def read_up_to(self, last_seq: int) -> None:
        while self.model.cursor < last_seq:
            assert self.comm is not None
            await self.take(await self.comm.receive_json_from(timeout=WAIT))


# --- the scenario ------------------------------------------------------------------------------

Step = tuple[str, int]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 9)),
        st.tuples(st.sampled_from(["hide", "delete"]), st.integers(0, 30)),
        st.tuples(st.just("settings"), st.integers(0, 3)),
        st.tuples(st.sampled_from(["read", "drop", "resume"]), st.just(0)),
    ),
    min_size=8,
    max_size=30,
)


def settings_change(variant: int, step: int) -> dict[str, Any]:
    """A change the sender (a moderator) can still post under: name, slow mode, read-only."""
    return [
        {"name": f"Room {step}"},
        {"slow_mode_seconds": step % 7},
        {"read_only": bool(step % 2)},
        {"name": f"Renamed {step}", "read_only": False},
    ][variant]


async def run_scenario(steps: list[Step], *, mod: Any, mod_cookie: bytes, user_cookie: bytes) -> None:
    room_id = f"prop-{uuid.uuid4().hex[:10]}"
    await sync_to_async(services.room_create)(room_id=room_id, name="Prop")
    sender = WebsocketCommunicator(
        application, "/ws/", headers=[(b"host", b"127.0.0.1"), (b"origin", ORIGIN), (b"cookie", mod_cookie)]
    )
    assert (await sender.connect(timeout=WAIT))[0]
    observer = Observer(user_cookie, room_id)
    await observer.connect()
    sent: list[str] = []
    act = sync_to_async
    try:
        for n, (kind, value) in enumerate(steps):
            if kind == "send":
                await sender.send_json_to(
                    {"action": "sendMessage", "roomId": room_id, "message": f"m{n}-{value}", "clientMessageId": f"c{n}"}
                )
                ack = await sender.receive_json_from(timeout=WAIT)
                assert ack["type"] == "ack", ack
                sent.append(ack["messageId"])
            elif kind in ("hide", "delete") and sent:
                remove = moderation.message_hide if kind == "hide" else moderation.message_delete
                await act(remove)(moderator=mod, room_id=room_id, message_id=sent[value % len(sent)], reason="prop")
            elif kind == "settings":
                await act(moderation.room_update)(
                    moderator=mod, room_id=room_id, reason="prop", **settings_change(value, n)
                )
            elif kind == "read":
                await observer.read_some()
            elif kind == "drop":
                await observer.drop()
            elif kind == "resume" and observer.comm is None:
                await observer.connect()
        if observer.comm is None:
            await observer.connect()
        room = await act(services.room_get)(room_id)
        assert room is not None
        await observer.read_up_to(room.last_seq)
        history = await observer.request({"action": "history", "roomId": room_id, "limit": 200}, "history")
        shown = {m["messageId"]: (m["seq"], m["message"], bool(m.get("removed"))) for m in history["messages"]}
        assert observer.model.messages == shown
        assert observer.model.gaps == 0  # the server never sent a socket a hole
        if observer.model.settings is not None:
            # The client's settings are the room's: a roomUpdated event or a join told it.
            assert observer.model.settings == {
                "name": room.name,
                "private": room.private,
                "readOnly": room.read_only,
                "archived": room.archived,
                "slowModeSeconds": room.slow_mode_seconds,
            }
        else:
            assert not (room.private or room.read_only or room.archived or room.slow_mode_seconds)
    finally:
        # (No layer flush between examples: they share one event loop, and the process's
        # fan-out keeps its channel; each example has a room of its own.)
        await observer.drop()
        await sender.disconnect(timeout=WAIT)


# --- fixtures and the tests ---------------------------------------------------------------------


def cookie_of(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
def people(db: None) -> dict[str, Any]:
    """A moderator who posts (exempt from slow mode and read-only) and a user who watches."""
    users = get_user_model().objects
    mod = users.create_user(username=f"mod-{uuid.uuid4().hex[:6]}", is_staff=True)
    group, _ = Group.objects.get_or_create(name=settings.AUTH_MODERATOR_GROUP)
    mod.groups.add(group)
    watcher = users.create_user(username=f"watcher-{uuid.uuid4().hex[:6]}")
    return {"mod": mod, "mod_cookie": cookie_of(mod), "user_cookie": cookie_of(watcher)}


@pytest.fixture
def dynamodb_backend(aws_env: dict[str, str]) -> Iterator[None]:
    """The DynamoDB store (moto server) for the services, on tables of this test's own."""
    client = make_client(region=aws_env["AWS_REGION"])
    names = schema.TableNames.with_prefix(f"prop-{uuid.uuid4().hex[:10]}-")
    ensure_tables(client, names, poll_seconds=0.05)
    with override_settings(
        CHAT_STORAGE_BACKEND="dynamodb",
        DYNAMODB_CONNECTIONS_TABLE=names.connections,
        DYNAMODB_MESSAGES_TABLE=names.messages,
        DYNAMODB_ROOMS_TABLE=names.rooms,
    ):
        yield
    for table in schema.TABLES:
        client.delete_table(TableName=names.of(table))


@pytest.fixture(params=["local", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "dynamodb":
        request.getfixturevalue("dynamodb_backend")
    with override_settings(CHAT_REPLAY_CAP=CAP):
        yield request.param


@pytest.fixture
async def scenario(people: dict[str, Any], backend: str) -> AsyncIterator[Callable[[list[Step]], Any]]:
    async def run(steps: list[Step]) -> None:
        await run_scenario(steps, **people)

    yield run
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()  # type: ignore[attr-defined]


@hypothesis_settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
async def test_a_client_applying_room_events_ends_with_what_history_shows(
    scenario: Callable[[list[Step]], Any], steps: list[Step]
) -> None:
    """Whatever the order of sends, removals, settings changes, drops and resumes, the client's state is history's."""
    await scenario(steps)


async def test_a_resume_past_a_removal_and_new_settings_delivers_them_as_events(
    scenario: Callable[[list[Step]], Any],
) -> None:
    """The worked case: away while a message is hidden and the room renamed, a resume applies both."""
    await scenario([("send", 1), ("send", 2), ("read", 0), ("drop", 0), ("hide", 0), ("settings", 0), ("resume", 0)])
