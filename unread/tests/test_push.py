"""Web Push is real: a local push endpoint receives the request, checks the VAPID JWT and
decrypts the aes128gcm payload (RFC 8291) with http_ece; SNS publishes are read back from moto.
Batching, and the rules of who is not told (online, removed, muted), on both backends."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import jwt
import pytest
from asgiref.sync import sync_to_async
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from pytest_django.fixtures import Settings

from chat import services as chat_services
from chat.moderation_models import Ban
from chat.records import MessageRecord, Room
from chat.storage import get_store
from chat.tests.conftest import OpenSocket
from unread import notify, push
from unread.models import Device, PushSubscription, RoomNotify
from unread.tests.test_read_state import join, next_of, post, room, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

WAIT = 10.0


def b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PushService:
    """A push service on loopback: answers 201 (or `status[path]`) and keeps every request."""

    url: str
    received: list[Received] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)

    def wait_for(self, count: int) -> list[Received]:
        deadline = time.monotonic() + WAIT
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} push requests, expected {count}"
            time.sleep(0.02)
        return self.received


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            service.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(service.status.get(self.path, 201))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield service
    server.shutdown()
    server.server_close()


@dataclass
class Browser:
    """A browser's side of a subscription: its key pair and auth secret."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes
    endpoint: str

    def subscription(self) -> dict[str, Any]:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64(public), "auth": b64(self.auth)}}

    def decrypt(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        return json.loads(plain)  # type: ignore[no-any-return]


def browser(service: PushService) -> Browser:
    return Browser(ec.generate_private_key(ec.SECP256R1()), os.urandom(16), f"{service.url}/push/{uuid.uuid4().hex}")


@pytest.fixture
def vapid(settings: Settings) -> str:
    settings.CHAT_VAPID_PRIVATE_KEY = push.generate_vapid_private_key()
    settings.CHAT_VAPID_SUBJECT = "mailto:ops@example.com"
    settings.CHAT_PUSH_ALLOW_PRIVATE_ENDPOINTS = True
    settings.CHAT_PUSH_BATCH_SECONDS = 600.0  # the tests end a batch with notify.flush_now()
    return push.application_server_key() or ""


async def signed_in(name: str) -> tuple[str, Client, bytes]:
    account = await get_user_model().objects.acreate(username=name)
    client = Client()
    await sync_to_async(client.force_login)(account)
    return str(account.pk), client, f"sessionid={client.cookies['sessionid'].value}".encode()


async def subscribe(client: Client, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await sync_to_async(client.post)(
        "/api/notifications/subscriptions", data=json.dumps(body), content_type="application/json"
    )
    return response.status_code, response.json()


async def bursts_waiting(count: int) -> None:
    deadline = time.monotonic() + WAIT
    while notify.pending() < count:
        assert time.monotonic() < deadline, f"{notify.pending()} messages waiting, expected {count}"
        await asyncio.sleep(0.02)


def check_vapid(request: Received, key: str, service: PushService) -> None:
    scheme, _, params = request.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == key
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), push.b64url_decode(fields["k"]))
    claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=service.url)
    assert claims["sub"] == "mailto:ops@example.com" and claims["exp"] > time.time()
    assert request.headers["content-encoding"] == "aes128gcm" and int(request.headers["ttl"]) > 0


async def test_a_mention_of_an_offline_user_is_one_real_web_push_per_burst(
    storage_backend: str, session_sockets: OpenSocket, push_service: PushService, vapid: str
) -> None:
    """Three mentions in a burst: one request, VAPID-signed, whose decrypted payload names the
    room, the sender and the text; a second browser subscription gets its own copy."""
    _, _, alice_cookie = await signed_in("alice")
    bob, bob_client, _ = await signed_in("bob")
    phone, laptop = browser(push_service), browser(push_service)
    for device in (phone, laptop):
        status, _ = await subscribe(bob_client, device.subscription())
        assert status == 201
    await sync_to_async(room)("lobby")
    alice_socket = await session_sockets(alice_cookie)
    await join(alice_socket, "lobby")
    first = await send(alice_socket, "lobby", "@bob lunch?")
    for n in range(2):
        await send(alice_socket, "lobby", f"@bob hello {n}")
    assert first["mentions"] == [bob]
    await bursts_waiting(3)
    assert len(notify._bursts) == 1  # one burst: bob in lobby
    await notify.flush_now()
    received = push_service.wait_for(2)
    assert sorted(r.path for r in received) == sorted(
        [phone.endpoint.removeprefix(push_service.url), laptop.endpoint.removeprefix(push_service.url)]
    )
    for request in received:
        check_vapid(request, vapid, push_service)
    by_path = {r.path: r for r in received}
    payload = phone.decrypt(by_path[phone.endpoint.removeprefix(push_service.url)].body)
    assert payload["title"] == "3 new messages in #Lobby"
    assert payload["body"] == "alice: @bob hello 1"
    assert (payload["roomId"], payload["seq"], payload["count"]) == ("lobby", first["seq"], 3)
    assert payload["url"] == f"/rooms/lobby/#seq-{first['seq']}"


async def mention_in(room: Room, *, author: str, mentioned: str, text: str) -> Any:
    """Store a message of `author` mentioning `mentioned` and hand it to notify, as a send does."""
    seq = await sync_to_async(post)(room.room_id, author, text, mention=(mentioned,))
    (message,) = await sync_to_async(get_store().messages_after)(
        room_id=room.room_id, after_seq=seq - 1, limit=1, now=datetime.now(UTC)
    )
    await notify.message_stored(message=message, room=room)
    return message


async def test_no_push_when_online_removed_muted_or_gone(
    storage_backend: str, session_sockets: OpenSocket, push_service: PushService, vapid: str
) -> None:
    """Nothing for a user with an open socket, a message removed before the batch ended, a
    muted room; a subscription the push service answers 410 to is removed."""
    alice, _, _ = await signed_in("alice")
    bob, bob_client, bob_cookie = await signed_in("bob")
    device = browser(push_service)
    await subscribe(bob_client, device.subscription())
    await sync_to_async(room)("lobby")
    lobby = Room(room_id="lobby", name="Lobby", created_at=datetime.now(UTC), created_by=None, last_seq=0)

    async def mention(text: str) -> Any:
        return await mention_in(lobby, author=alice, mentioned=bob, text=text)

    online = await session_sockets(bob_cookie)
    await online.send_json_to({"action": "ping"})  # answered once the socket's row is stored
    await next_of(online, "pong")
    await mention("@bob while you are here")
    await notify.flush_now()
    await online.disconnect()
    removed = await mention("@bob oops")
    await sync_to_async(get_store().remove_message)(
        room_id="lobby",
        message_id=removed.message_id,
        removal="deleted",
        removed_by="author",
        now=datetime.now(UTC),
        ttl_seconds=3600,
    )
    await notify.flush_now()
    await RoomNotify.objects.acreate(user_id=bob, room_id="lobby", muted=True)
    await mention("@bob muted")
    await notify.flush_now()
    assert [device.decrypt(r.body)["body"] for r in push_service.received] == []  # none of the three
    await RoomNotify.objects.filter(user_id=bob).adelete()
    push_service.status[device.endpoint.removeprefix(push_service.url)] = 410
    await mention("@bob gone")
    await notify.flush_now()
    push_service.wait_for(1)
    assert not await PushSubscription.objects.filter(user_id=bob).aexists()
    assert chat_services.after_message is not None  # the unread app is plugged in


async def test_a_room_muted_from_the_room_list_sends_no_push(
    storage_backend: str, push_service: PushService, vapid: str
) -> None:
    """A room the user muted for themselves (muteRoom: their membership) never notifies, as
    a room muted through /api/notifications; unmuted, the next mention is pushed."""
    alice, _, _ = await signed_in("alice")
    bob, bob_client, _ = await signed_in("bob")
    device = browser(push_service)
    await subscribe(bob_client, device.subscription())
    await sync_to_async(room)("lobby")
    await sync_to_async(get_store().add_member)(room_id="lobby", user_id=bob)
    lobby = Room(room_id="lobby", name="Lobby", created_at=datetime.now(UTC), created_by=None, last_seq=0)

    async def mention(text: str) -> None:
        await mention_in(lobby, author=alice, mentioned=bob, text=text)
        await notify.flush_now()

    await sync_to_async(get_store().set_membership)(room_id="lobby", user_id=bob, muted=True)
    await mention("@bob muted")
    await sync_to_async(get_store().set_membership)(room_id="lobby", user_id=bob, muted=False)
    await mention("@bob back")
    push_service.wait_for(1)
    assert [device.decrypt(r.body)["body"] for r in push_service.received] == ["@bob back 0"]


async def test_no_push_to_a_user_banned_or_gone_from_the_room_before_the_batch_ended(
    storage_backend: str, push_service: PushService, vapid: str
) -> None:
    """One message mentions three members of a private room: the one removed from the room
    and the one banned before the batch went out get nothing; the third gets the push."""
    alice, _, _ = await signed_in("alice")
    devices = {}
    for name in ("bob", "carol", "dan"):
        user_id, client, _ = await signed_in(name)
        devices[name] = (user_id, browser(push_service))
        await subscribe(client, devices[name][1].subscription())
    (bob, _), (carol, _), (dan, dan_device) = devices.values()
    await sync_to_async(room)("crew", private_members=[alice, bob, carol, dan])
    crew = Room(room_id="crew", name="Crew", created_at=datetime.now(UTC), created_by=None, last_seq=0, private=True)
    seq = await sync_to_async(post)("crew", alice, "@bob @carol @dan deploy?", mention=(bob, carol, dan))
    (message,) = await sync_to_async(get_store().messages_after)(
        room_id="crew", after_seq=seq - 1, limit=1, now=datetime.now(UTC)
    )
    await notify.message_stored(message=message, room=crew)
    await sync_to_async(get_store().remove_member)(room_id="crew", user_id=bob)
    await Ban.objects.acreate(user_id=int(carol), reason="spam", created_at=datetime.now(UTC))
    await notify.flush_now()
    received = push_service.wait_for(1)
    assert [r.path for r in received] == [dan_device.endpoint.removeprefix(push_service.url)]
    assert dan_device.decrypt(received[0].body)["body"] == "@bob @carol @dan deploy? 0"


async def test_bad_subscriptions_are_refused_with_the_field_named(settings: Settings, vapid: str) -> None:
    """Malformed subscriptions and tokens: 400 naming the field; in production, endpoints that
    are not https or point at loopback or private addresses are refused (no request forgery)."""
    _, client, _ = await signed_in("bob")
    good = browser(PushService(url="https://push.example.com")).subscription()
    cases = [
        ({"keys": good["keys"]}, "endpoint"),
        ({**good, "keys": {"p256dh": "AAAA", "auth": good["keys"]["auth"]}}, "keys.p256dh"),
        ({**good, "keys": {"p256dh": good["keys"]["p256dh"], "auth": "short"}}, "keys.auth"),
        ({"endpoint": good["endpoint"]}, "keys"),
    ]
    settings.CHAT_PUSH_ALLOW_PRIVATE_ENDPOINTS = False
    cases += [
        ({**good, "endpoint": "http://push.example.com/x"}, "endpoint"),
        ({**good, "endpoint": "https://127.0.0.1/x"}, "endpoint"),
        ({**good, "endpoint": "https://10.0.0.7/x"}, "endpoint"),
        ({**good, "endpoint": "https://[::1]/x"}, "endpoint"),
        ({**good, "endpoint": "https://metadata.internal/x"}, "endpoint"),
    ]
    for body, name in cases:
        status, answer = await subscribe(client, body)
        assert (status, answer.get("field")) == (400, name), body
    status, _ = await subscribe(client, good)
    assert status == 201
    response = await sync_to_async(client.post)(
        "/api/notifications/devices",
        data=json.dumps({"platform": "fcm", "token": "x"}),
        content_type="application/json",
    )
    assert (response.status_code, response.json()["field"]) == (400, "platform")  # SNS is off here


def test_half_a_vapid_configuration_stops_the_start(settings: Settings) -> None:
    """One VAPID setting without the other is a clear ImproperlyConfigured at start."""
    settings.CHAT_VAPID_PRIVATE_KEY = push.generate_vapid_private_key()
    settings.CHAT_VAPID_SUBJECT = ""
    with pytest.raises(ImproperlyConfigured, match="CHAT_VAPID_SUBJECT missing"):
        push.check_settings()
    settings.CHAT_VAPID_SUBJECT = "mailto:ops@example.com"
    settings.CHAT_VAPID_PRIVATE_KEY = "not-a-key"
    with pytest.raises(ImproperlyConfigured, match="P-256"):
        push.check_settings()


def test_mobile_push_goes_through_an_sns_platform_endpoint(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered device token becomes an SNS platform endpoint; a burst publishes one
    message to it, read back from moto."""
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.AWS_REGION = "us-east-1"
    settings.CHAT_PUSH_SNS_ENDPOINT_URL = ""
    with mock_aws():
        import boto3

        sns = boto3.client("sns", region_name="us-east-1")
        app = sns.create_platform_application(
            Name="chatsite-fcm", Platform="GCM", Attributes={"PlatformCredential": "k"}
        )
        settings.CHAT_PUSH_SNS_FCM_ARN = app["PlatformApplicationArn"]
        bob = get_user_model().objects.create(username="bob")
        client = Client()
        client.force_login(bob)
        body = {"platform": "fcm", "token": "device-token-123456"}
        response = client.post("/api/notifications/devices", data=json.dumps(body), content_type="application/json")
        assert response.status_code == 201
        arn = response.json()["endpointArn"]
        assert Device.objects.get(user_id=str(bob.pk)).endpoint_arn == arn
        room("lobby")

        seq = post("lobby", "99", "@bob ping", mention=(str(bob.pk),))
        (message,) = get_store().messages_after(room_id="lobby", after_seq=seq - 1, limit=1, now=datetime.now(UTC))
        lobby = get_store().get_room("lobby")
        assert lobby is not None
        notify.deliver(notify._Burst(user_id=str(bob.pk), room=lobby, messages=[message]))
        endpoint = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].platform_endpoints[arn]
        (published,) = endpoint.messages.values()
        assert json.loads(json.loads(published)["GCM"])["notification"]["body"] == "@bob ping 0"


def test_a_burst_is_told_by_its_newest_message_whatever_order_its_messages_joined_in() -> None:
    """The messages of a burst join it from tasks of their own (on DynamoDB in parallel threads), so out of
    order: the push names the newest by seq and links to the oldest, as if they had come in order."""
    at = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    lobby = Room(room_id="lobby", name="Lobby", created_at=at, created_by=None, last_seq=9)

    def said(seq: int) -> MessageRecord:
        return MessageRecord(
            message_id=f"m{seq}", room_id="lobby", seq=seq, user_id="1", username="alice", text=f"@bob hello {seq}",
            timestamp=at, connection_id="c", client_message_id=None, ttl=2_000_000_000,
        )  # fmt: skip

    told = notify.notification(lobby, [said(8), said(9), said(7)])
    assert (told["title"], told["body"], told["seq"], told["count"]) == (
        "3 new messages in #Lobby",
        "alice: @bob hello 9",
        7,
        3,
    )
    assert told["url"] == "/rooms/lobby/#seq-7"
