"""Property-based fuzzing of the real consumer: arbitrary frames through the real routing.

chat/tests/test_protocol.py fuzzes the pure parser. Here the same kind of frames (and raw
text and bytes) go through `chatsite.asgi.application` (Origin check, session, consumer,
services, store, channel layer) on a signed-in socket, and each frame must get exactly one
answer: the answer its parsed command calls for, or an error frame (with the parser's own
code when it does not parse). Messages broadcast to the socket may come along; nothing else
may, and the socket is never closed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chat import protocol, services
from chat.errors import ChatError
from chatsite.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

WAIT = 5.0
# The answer each client action calls for, besides an error frame.
ANSWERS = {
    "sendMessage": "ack",
    "sendmessage": "ack",
    "joinRoom": "joined",
    "leaveRoom": "left",
    "history": "history",
    "ping": "pong",
    "authenticate": "authenticated",
    "refreshToken": "authenticated",
    "reportMessage": "reported",
}

# Lone surrogates too, and NUL and other characters PostgreSQL cannot store, more often than
# chance would pick them.
SERVER_FAULTS = {"storage_unavailable", "internal_error"}
any_char = (
    st.characters(codec="utf-8")
    | st.integers(0xD800, 0xDFFF).map(chr)
    | st.sampled_from(["\x00", "\ufffe", "\uffff", "\x7f", "\u2028"])
)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(any_char, max_size=30)
)
json_values = st.recursive(
    json_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
)
objects = st.fixed_dictionaries(
    {"action": st.sampled_from(sorted(ANSWERS)) | st.text(any_char, max_size=12)},
    optional={
        "roomId": st.sampled_from(["general", "fuzz", "no-such-room", "Bad", ""]) | json_values,
        "message": st.text(any_char, max_size=60) | json_values,
        "data": st.text(any_char, max_size=60) | json_values,
        "clientMessageId": st.sampled_from(["c-1", "c-2", "x" * 65]) | json_values,
        "lastSeq": st.integers(min_value=-3, max_value=2**60) | json_values,
        "beforeSeq": st.integers(min_value=-3, max_value=2**60) | json_values,
        "limit": st.integers(min_value=-3, max_value=300) | json_values,
        "token": st.text(max_size=40) | st.just("a.b.c") | json_values,
        "messageId": st.text(max_size=40) | json_values,
        "reason": st.text(any_char, max_size=40) | json_values,
        "userId": json_values,
        "username": json_values,
    },
)
text_frames = st.one_of(
    st.tuples(objects, st.booleans()).map(lambda o: json.dumps(o[0], ensure_ascii=o[1])),
    json_values.map(json.dumps),
    st.text(any_char, max_size=200),
)
frames = st.one_of(
    text_frames.map(lambda text: ("text", text)),
    st.binary(max_size=64).map(lambda data: ("bytes", data)),
)


def expected(kind: str, data: Any) -> tuple[str | None, str | None]:
    """(answer type, the parser's error code) for one frame, as the pure parser sees it."""
    limits = protocol.Limits()
    try:
        command = protocol.parse_client_frame(data if kind == "text" else None, limits, binary=kind == "bytes")
    except ChatError as error:
        return None, error.code.value
    return ANSWERS.get(protocol.action_of(command)), None


async def answer_to(comm: WebsocketCommunicator) -> dict[str, Any]:
    """The next frame that is not a broadcast message; fails if the socket closes instead."""
    for _ in range(20):  # a frame's answer comes after at most a few broadcasts
        output = await comm.receive_output(timeout=WAIT)
        assert output["type"] == "websocket.send", f"the socket was closed: {output}"
        frame: dict[str, Any] = json.loads(output["text"])
        if frame["type"] != "message":
            return frame
    raise AssertionError("no answer among 20 frames")


@pytest.fixture
def cookie(db: None) -> bytes:
    user = get_user_model().objects.create_user(username="fuzzer")
    client = Client()
    client.force_login(user)
    services.room_create(room_id="fuzz")
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=6))
# Always tried, whatever the draw: text that reaches the store only if nothing refuses it first
# (PostgreSQL cannot store NUL: storage_unavailable, retried forever, before the edge refused it).
@example(batch=[("text", json.dumps({"action": "sendMessage", "roomId": "fuzz", "message": "a\x00b"}))])
@example(batch=[("text", json.dumps({"action": "sendmessage", "data": "\x00"}))])
@example(batch=[("text", json.dumps({"action": "joinRoom", "roomId": "fuzz\x00"}))])
async def test_any_frames_get_one_answer_each_and_never_close_the_socket(
    cookie: bytes, batch: list[tuple[str, Any]]
) -> None:
    """Arbitrary frames on a signed-in socket: one answer or error frame each, the socket stays open."""
    comm = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie)]
    )
    connected, _ = await comm.connect(timeout=WAIT)
    assert connected
    try:
        for kind, data in batch:
            answer_type, error_code = expected(kind, data)
            # The ASGI event daphne would send, as is (send_to refuses an empty frame).
            await comm.send_input({"type": "websocket.receive", kind: data})
            answer = await answer_to(comm)
            if error_code is not None:
                assert (answer["type"], answer["code"]) == ("error", error_code), (data, answer)
            else:
                assert answer["type"] in (answer_type, "error"), (data, answer)
            # Bad input is the client's error, never the server's: no retryable server fault
            # (a client would retry it forever) on any database or backend.
            assert answer.get("code") not in SERVER_FAULTS, (data, answer)
            # Nothing else was queued for the socket: a ping is answered next (broadcasts aside).
            await comm.send_to(text_data='{"action": "ping"}')
            assert await answer_to(comm) == {"type": "pong"}
    finally:
        await comm.disconnect(timeout=WAIT)
        layer = get_channel_layer()
        assert layer is not None
        await layer.flush()  # type: ignore[attr-defined]
