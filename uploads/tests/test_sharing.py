"""Sharing files in a room, end to end through the API, the socket and the storage: on the
embedded default (file system) and on S3 (moto), with SQLite, PostgreSQL and DynamoDB."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import types
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from asgiref.sync import sync_to_async
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.test import Client
from pytest_django.fixtures import Settings

from chat import moderation, services
from chat.errors import StorageUnavailable
from chat.storage import get_store
from uploads.models import Upload
from uploads.provider import UploadsProvider
from uploads.tests.conftest import Setup, User, frame_of, make_user, users
from uploads.tests.images import PDF, has_gps, jpeg_with_gps, png_with_gps

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def fetch(client: Client, url: str) -> tuple[int, bytes, dict[str, str]]:
    """GET a download URL as a browser does: a redirect is followed (no cookies there), and
    the headers are those of the response that carries the bytes."""
    response = client.get(url)
    if response.status_code == 302:
        remote = requests.get(response["Location"], timeout=10)
        return remote.status_code, remote.content, {k.lower(): v for k, v in remote.headers.items()}
    body = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
    return response.status_code, body, {k.lower(): v for k, v in response.items()}


def _room(room_id: str, *, private_for: User | None = None) -> None:
    services.room_create(room_id=room_id, name=room_id.title())
    if private_for is not None:
        store = get_store()
        store.update_room(room_id=room_id, private=True, now=services.utcnow(), ttl_seconds=3600)
        store.add_member(room_id=room_id, user_id=private_for.identity.user_id)


async def _share(
    alice: User, sockets: Any, room_id: str, files: list[dict[str, Any]], text: str = ""
) -> dict[str, Any]:
    socket = await sockets(alice)
    await socket.send_json_to({"action": "joinRoom", "roomId": room_id})
    await frame_of(socket, "joined", roomId=room_id)
    frame = {"action": "sendMessage", "roomId": room_id, "message": text, "clientMessageId": "m1"}
    await socket.send_json_to({**frame, "attachments": [f["id"] for f in files]})
    return await frame_of(socket, "message", clientMessageId="m1")


async def test_an_image_and_a_pdf_are_shared_and_reach_the_room(setup: Setup, sockets: Any) -> None:
    """A PNG and a PDF, uploaded straight to the storage and sent with an empty text: the
    room gets them with sizes, the image's dimensions and thumbnail; the served image has
    no EXIF (no location); the PDF is a download; both are served with nosniff."""
    alice, bob = await users("alice"), await users("bob")
    await sync_to_async(_room)("photos")
    png = png_with_gps(64, 48)
    image = await sync_to_async(alice.upload)("photos", "holiday.png", png, "image/png")
    pdf = await sync_to_async(alice.upload)("photos", "plan.pdf", PDF, "application/pdf")
    assert (image["width"], image["height"], image["contentType"]) == (64, 48, "image/png")
    assert pdf["contentType"] == "application/pdf" and pdf["size"] == len(PDF) and pdf["thumbnailUrl"] is None

    watcher = await sockets(bob)
    await watcher.send_json_to({"action": "joinRoom", "roomId": "photos"})
    await frame_of(watcher, "joined", roomId="photos")
    echo = await _share(alice, sockets, "photos", [image, pdf])
    seen = await frame_of(watcher, "message", clientMessageId="m1")
    assert echo["message"] == "" and seen["messageId"] == echo["messageId"]
    shared = seen["attachments"]
    assert [a["name"] for a in shared] == ["holiday.png", "plan.pdf"]
    assert set(shared[0]) == {"id", "name", "size", "contentType", "width", "height", "url", "thumbnailUrl"}

    status, body, headers = await sync_to_async(fetch)(bob.client, shared[0]["url"])
    assert status == 200 and headers["content-type"] == "image/png"
    assert body.startswith(b"\x89PNG") and not has_gps(body)
    assert headers["x-content-type-options"] == "nosniff"
    status, thumb, headers = await sync_to_async(fetch)(bob.client, shared[0]["thumbnailUrl"])
    assert (status == 200 and thumb[:4] in {b"\x89PNG", b"\xff\xd8\xff\xe0"[:4]}) or thumb.startswith(b"\xff\xd8")
    assert headers["x-content-type-options"] == "nosniff"
    status, body, headers = await sync_to_async(fetch)(bob.client, shared[1]["url"])
    assert status == 200 and body == PDF
    assert headers["content-disposition"].startswith("attachment;") and "plan.pdf" in headers["content-disposition"]
    assert headers["x-content-type-options"] == "nosniff" and headers["content-type"] == "application/pdf"

    # History (a reload) carries them too, with fresh URLs.
    await watcher.send_json_to({"action": "history", "roomId": "photos"})
    page = await frame_of(watcher, "history", roomId="photos")
    assert [a["id"] for a in page["messages"][-1]["attachments"]] == [image["id"], pdf["id"]]
    # What is stored: the verified file and the thumbnail, nothing left where the browser posts.
    keys = await sync_to_async(setup.keys)()
    assert keys == {f"files/{image['id']}", f"thumbs/{image['id']}", f"files/{pdf['id']}"}


async def test_a_receiver_loads_the_files_the_moment_the_message_arrives(
    setup: Setup, sockets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A browser asks for a message's thumbnail as the message frame arrives: the upload is
    tied to its message before the frame goes out. (The tie was made after the broadcast; a
    busy server answered the receiver's image 404 and it stayed broken.) The tie is held back
    here until the receiver has the frame, or 2 s: whichever way round they run shows."""
    alice, bob = await users("alice"), await users("bob")
    await sync_to_async(_room)("photos")
    image = await sync_to_async(alice.upload)("photos", "sunset.png", png_with_gps(64, 48), "image/png")
    received = asyncio.Event()
    bind = UploadsProvider.bind

    async def held_bind(self: UploadsProvider, **kwargs: Any) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(received.wait(), 2)
        await bind(self, **kwargs)

    monkeypatch.setattr(UploadsProvider, "bind", held_bind)
    watcher = await sockets(bob)
    await watcher.send_json_to({"action": "joinRoom", "roomId": "photos"})
    await frame_of(watcher, "joined", roomId="photos")
    socket = await sockets(alice)
    await socket.send_json_to({"action": "joinRoom", "roomId": "photos"})
    await frame_of(socket, "joined", roomId="photos")
    await socket.send_json_to(
        {
            "action": "sendMessage",
            "roomId": "photos",
            "message": "",
            "clientMessageId": "m1",
            "attachments": [image["id"]],
        }
    )
    seen = await frame_of(watcher, "message", clientMessageId="m1")
    thumbnail = await sync_to_async(fetch)(bob.client, seen["attachments"][0]["thumbnailUrl"])
    full = await sync_to_async(fetch)(bob.client, seen["attachments"][0]["url"])
    received.set()
    assert (thumbnail[0], full[0]) == (200, 200)
    assert full[1].startswith(b"\x89PNG")
    await frame_of(socket, "message", clientMessageId="m1")


async def test_a_failed_tie_is_answered_and_the_retry_shares_the_files_once(
    setup: Setup, sockets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails as the files are tied to the stored message: the sender is told
    storage_unavailable and the room sees nothing yet; the client's retry (the same
    clientMessageId) ties them and the room gets the message once, its files served."""
    alice, bob = await users("alice"), await users("bob")
    await sync_to_async(_room)("photos")
    image = await sync_to_async(alice.upload)("photos", "sunset.png", png_with_gps(64, 48), "image/png")
    bind = UploadsProvider.bind
    failures = [StorageUnavailable()]

    async def failing_once(self: UploadsProvider, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        await bind(self, **kwargs)

    monkeypatch.setattr(UploadsProvider, "bind", failing_once)
    watcher = await sockets(bob)
    await watcher.send_json_to({"action": "joinRoom", "roomId": "photos"})
    await frame_of(watcher, "joined", roomId="photos")
    socket = await sockets(alice)
    await socket.send_json_to({"action": "joinRoom", "roomId": "photos"})
    await frame_of(socket, "joined", roomId="photos")
    send = {"action": "sendMessage", "roomId": "photos", "message": "", "clientMessageId": "m1"}
    await socket.send_json_to({**send, "attachments": [image["id"]]})
    error = await frame_of(socket, "error")
    assert (error["code"], error.get("clientMessageId")) == ("storage_unavailable", "m1")
    await socket.send_json_to({**send, "attachments": [image["id"]]})
    echo = await frame_of(socket, "message", clientMessageId="m1")
    seen = await frame_of(watcher, "message", clientMessageId="m1")
    assert seen["messageId"] == echo["messageId"] and [a["id"] for a in seen["attachments"]] == [image["id"]]
    status, body, _ = await sync_to_async(fetch)(bob.client, seen["attachments"][0]["url"])
    assert status == 200 and body.startswith(b"\x89PNG")
    await watcher.send_json_to({"action": "history", "roomId": "photos"})
    page = await frame_of(watcher, "history", roomId="photos")
    assert [m["clientMessageId"] for m in page["messages"]].count("m1") == 1


async def test_a_jpeg_loses_its_location_and_text_goes_with_files(setup: Setup, sockets: Any) -> None:
    alice = await users("alice")
    await sync_to_async(_room)("lobby")
    photo = await sync_to_async(alice.upload)("lobby", "IMG_0001.JPG", jpeg_with_gps(), "image/jpeg")
    echo = await _share(alice, sockets, "lobby", [photo], text="look")
    assert echo["message"] == "look" and echo["attachments"][0]["width"] == 80
    status, body, _ = await sync_to_async(fetch)(alice.client, echo["attachments"][0]["url"])
    assert status == 200 and body.startswith(b"\xff\xd8") and not has_gps(body)


async def test_a_non_member_reaches_neither_the_file_nor_its_thumbnail(setup: Setup, sockets: Any) -> None:
    """In a private room: a non-member gets no URL, and a member's signed URLs refuse her."""
    owner, mallory = await users("owner"), await users("mallory")
    await sync_to_async(_room)("secret", private_for=owner)
    image = await sync_to_async(owner.upload)("secret", "plan.png", png_with_gps(), "image/png")
    echo = await _share(owner, sockets, "secret", [image])
    entry = echo["attachments"][0]
    for url in (entry["url"], entry["thumbnailUrl"]):
        assert (await sync_to_async(fetch)(owner.client, url))[0] == 200
        status, body, _ = await sync_to_async(fetch)(mallory.client, url)
        assert status == 404 and b"PNG" not in body
    assert (await sync_to_async(mallory.client.get)(f"/api/uploads/{entry['id']}")).status_code == 404
    fresh = await sync_to_async(owner.client.get)(f"/api/uploads/{entry['id']}")
    assert fresh.status_code == 200 and fresh.json()["attachment"]["id"] == entry["id"]
    # Without the signature, or with another's, nothing is served to anyone.
    bare = entry["url"].split("?")[0]
    assert (await sync_to_async(owner.client.get)(bare)).status_code == 403
    forged = entry["thumbnailUrl"].replace("/thumbnail?", "/file?")
    assert (await sync_to_async(owner.client.get)(forged)).status_code == 403


async def test_expiry_and_an_hour_unattached_remove_the_objects(setup: Setup, sockets: Any) -> None:
    alice = await users("alice")
    await sync_to_async(_room)("lobby")
    shared = await sync_to_async(alice.upload)("lobby", "a.txt", b"hello\n", "text/plain")
    kept = await sync_to_async(alice.upload)("lobby", "b.txt", b"bye\n", "text/plain")
    echo = await _share(alice, sockets, "lobby", [shared])
    assert await sync_to_async(services.expired_purge)() == 0
    assert await sync_to_async(setup.keys)() == {f"files/{shared['id']}", f"files/{kept['id']}"}

    past = services.utcnow() - timedelta(hours=2)
    await Upload.objects.filter(pk=kept["id"]).aupdate(created_at=past)  # never attached for two hours
    await Upload.objects.filter(pk=shared["id"]).aupdate(expires_at=past)  # its message's ttl passed
    assert await sync_to_async(services.expired_purge)() >= 2
    assert await sync_to_async(setup.keys)() == set()
    assert not await Upload.objects.filter(pk__in=[shared["id"], kept["id"]]).aexists()
    assert (await sync_to_async(fetch)(alice.client, echo["attachments"][0]["url"]))[0] == 404


async def test_a_deleted_message_takes_its_files_at_once(setup: Setup, sockets: Any) -> None:
    alice = await users("alice")
    moderator = await sync_to_async(make_user)("mod")
    from django.contrib.auth import get_user_model

    staff = await get_user_model().objects.aget(username="mod")
    staff.is_staff = staff.is_superuser = True
    await staff.asave()
    await sync_to_async(_room)("lobby")
    image = await sync_to_async(alice.upload)("lobby", "x.png", png_with_gps(), "image/png")
    echo = await _share(alice, sockets, "lobby", [image])
    assert moderator is not None
    await sync_to_async(moderation.message_delete)(
        moderator=staff, room_id="lobby", message_id=echo["messageId"], reason="spam"
    )
    assert await sync_to_async(setup.keys)() == set()
    assert (await sync_to_async(fetch)(alice.client, echo["attachments"][0]["url"]))[0] == 404

    # A moderator's purge of a user's messages takes their files too.
    pdf = await sync_to_async(alice.upload)("lobby", "y.pdf", PDF, "application/pdf")
    socket = await sockets(alice)
    await socket.send_json_to({"action": "joinRoom", "roomId": "lobby"})
    await frame_of(socket, "joined", roomId="lobby")
    await socket.send_json_to({"action": "sendMessage", "roomId": "lobby", "message": "", "attachments": [pdf["id"]]})
    url = (await frame_of(socket, "message", roomId="lobby"))["attachments"][0]["url"]
    assert await sync_to_async(setup.keys)() == {f"files/{pdf['id']}"}
    spammer = await get_user_model().objects.aget(username="alice")
    await sync_to_async(moderation.user_messages_purge)(moderator=staff, user=spammer, reason="spam")
    assert await sync_to_async(setup.keys)() == set()
    assert (await sync_to_async(fetch)(alice.client, url))[0] == 404


async def test_an_author_deleting_their_message_takes_its_files_at_once(setup: Setup, sockets: Any) -> None:
    """deleteMessage by its author: the file and thumbnail answer 404 at once (URLs already
    handed out, and fresh ones), and their bytes and rows are deleted, as for a moderator's."""
    alice, bob = await users("alice"), await users("bob")
    await sync_to_async(_room)("lobby")
    image = await sync_to_async(alice.upload)("lobby", "x.png", png_with_gps(), "image/png")
    kept = await sync_to_async(alice.upload)("lobby", "k.txt", b"kept\n", "text/plain")
    socket = await sockets(alice)
    await socket.send_json_to({"action": "joinRoom", "roomId": "lobby"})
    await frame_of(socket, "joined", roomId="lobby")
    await socket.send_json_to({"action": "sendMessage", "roomId": "lobby", "message": "", "attachments": [image["id"]]})
    shared = (await frame_of(socket, "message", roomId="lobby"))["attachments"][0]
    await socket.send_json_to({"action": "sendMessage", "roomId": "lobby", "message": "", "attachments": [kept["id"]]})
    other = await frame_of(socket, "message", roomId="lobby")
    assert (await sync_to_async(fetch)(bob.client, shared["url"]))[0] == 200

    message_id = (await Upload.objects.aget(pk=image["id"])).message_id
    await socket.send_json_to({"action": "deleteMessage", "roomId": "lobby", "messageId": message_id})
    await frame_of(socket, "messageRemoved", messageId=message_id)
    for url in (shared["url"], shared["thumbnailUrl"]):
        assert (await sync_to_async(fetch)(bob.client, url))[0] == 404
    assert (await sync_to_async(bob.client.get)(f"/api/uploads/{image['id']}")).status_code == 404
    assert not await Upload.objects.filter(pk=image["id"]).aexists()
    # Only the deleted message's files went.
    assert await sync_to_async(setup.keys)() == {f"files/{kept['id']}"}
    assert (await sync_to_async(fetch)(bob.client, other["attachments"][0]["url"]))[0] == 200


async def test_a_leaked_link_dies_within_minutes_and_a_reader_gets_a_fresh_one(
    setup: Setup, sockets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame's link lives CHAT_UPLOAD_URL_SECONDS (five minutes by default, not an hour):
    past it, the link is refused to anyone; a reader of the room gets fresh links from
    GET /api/uploads/<id>, which work; a non-reader gets none."""
    from uploads import signing

    alice, bob, mallory = await users("alice"), await users("bob"), await users("mallory")
    await sync_to_async(_room)("secret", private_for=alice)
    await sync_to_async(get_store().add_member)(room_id="secret", user_id=bob.identity.user_id)
    pdf = await sync_to_async(alice.upload)("secret", "plan.pdf", PDF, "application/pdf")
    url = (await _share(alice, sockets, "secret", [pdf]))["attachments"][0]["url"]
    end = int(parse_qs(urlsplit(url).query)["e"][0])
    assert end - time.time() <= 300 + 5
    anonymous = Client()
    assert (await sync_to_async(fetch)(anonymous, url))[0] == 200  # a leaked link works, for now

    later = types.SimpleNamespace(time=lambda: end + 1.0)  # the signing module's clock only
    monkeypatch.setattr(signing, "time", later)
    for client in (anonymous, bob.client):
        status, body, _ = await sync_to_async(fetch)(client, url)
        assert status == 403 and PDF not in body
    fresh = await sync_to_async(bob.client.get)(f"/api/uploads/{pdf['id']}")
    assert fresh.status_code == 200
    renewed = fresh.json()["attachment"]["url"]
    assert int(parse_qs(urlsplit(renewed).query)["e"][0]) > end
    status, body, _ = await sync_to_async(fetch)(bob.client, renewed)
    assert status == 200 and body == PDF
    assert (await sync_to_async(mallory.client.get)(f"/api/uploads/{pdf['id']}")).status_code == 404


CDN_DOMAIN = "files.chat.example"
CDN_KEY_ID = "K2JCJMDEHXQW5F"


def _behind_the_distribution(settings: Settings) -> rsa.RSAPrivateKey:
    """Settings as production's: the uploads bucket behind a distribution whose key group
    trusts this key (chatsite.settings builds the same storage options from CHAT_UPLOADS_CDN_*)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    settings.CHAT_UPLOADS_CDN_DOMAIN, settings.CHAT_UPLOADS_CDN_KEY_ID = CDN_DOMAIN, CDN_KEY_ID
    settings.CHAT_UPLOADS_CDN_PRIVATE_KEY = pem
    uploads = settings.STORAGES["uploads"]
    options = {
        **uploads["OPTIONS"],
        "custom_domain": CDN_DOMAIN,
        "cloudfront_key_id": CDN_KEY_ID,
        "cloudfront_key": pem,
        "url_protocol": "https:",
    }
    settings.STORAGES = {**settings.STORAGES, "uploads": {**uploads, "OPTIONS": options}}
    return key


def _cloudfront_accepts(public_key: rsa.RSAPublicKey, url: str, now: float) -> bool:
    """What CloudFront checks of a signed URL with a canned policy: the signature (RSA,
    SHA-1) of the policy for exactly this resource and expiry, made with a trusted key."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert set(query) == {"Expires", "Signature", "Key-Pair-Id"} and query["Key-Pair-Id"] == [CDN_KEY_ID]
    expires = int(query["Expires"][0])
    resource = f"{parts.scheme}://{parts.netloc}{parts.path}"
    condition = {"DateLessThan": {"AWS:EpochTime": expires}}
    policy = json.dumps({"Statement": [{"Resource": resource, "Condition": condition}]}, separators=(",", ":"))
    signature = base64.b64decode(query["Signature"][0].translate(str.maketrans("-_~", "+=/")))
    try:
        public_key.verify(signature, policy.encode(), padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        return False
    return expires > now


@pytest.mark.parametrize("setup", ["s3-dynamodb", "s3-postgresql"], indirect=True)
async def test_on_s3_downloads_are_cloudfront_signed_urls_of_the_uploads_distribution(
    setup: Setup, sockets: Any, settings: Settings
) -> None:
    """With the distribution configured (production), a reader's download URL redirects to
    a CloudFront signed URL of a minute for exactly that object (the distribution adds
    nosniff: deploy/tests/test_stack.py); the object carries its own type, disposition and
    cache headers, which CloudFront passes on. No byte through the site."""
    key = await sync_to_async(_behind_the_distribution)(settings)
    alice, bob = await users("alice"), await users("bob")
    await sync_to_async(_room)("photos")
    image = await sync_to_async(alice.upload)("photos", "holiday.png", png_with_gps(64, 48), "image/png")
    pdf = await sync_to_async(alice.upload)("photos", "plan.pdf", PDF, "application/pdf")
    shared = (await _share(alice, sockets, "photos", [image, pdf]))["attachments"]
    expected = [
        (shared[0]["url"], f"files/{image['id']}", "image/png", "inline;"),
        (shared[0]["thumbnailUrl"], f"thumbs/{image['id']}", "image/", "inline;"),
        (shared[1]["url"], f"files/{pdf['id']}", "application/pdf", "attachment;"),
    ]
    s3 = boto3.client("s3")
    for url, object_key, content_type, disposition in expected:
        now = time.time()
        response = await sync_to_async(bob.client.get)(url)
        assert response.status_code == 302 and not response.streaming
        location = response["Location"]
        assert location.startswith(f"https://{CDN_DOMAIN}/{object_key}?")
        assert _cloudfront_accepts(key.public_key(), location, now)
        assert not _cloudfront_accepts(key.public_key(), location, now + 61)  # a minute, then refused
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        assert not _cloudfront_accepts(other, location, now)  # the check is not vacuous
        head = await sync_to_async(s3.head_object)(Bucket=setup.bucket, Key=object_key)
        assert head["ContentType"].startswith(content_type) and head["CacheControl"] == "private, max-age=300"
        assert head["ContentDisposition"].startswith(disposition)
    # A message deleted: the site redirects no one any more.
    message_id = (await Upload.objects.aget(pk=pdf["id"])).message_id
    await sync_to_async(_author_deletes)(alice, "photos", message_id)
    response = await sync_to_async(bob.client.get)(shared[1]["url"])
    assert response.status_code == 404 and "Location" not in response


def _author_deletes(author: User, room_id: str, message_id: str) -> None:
    from asgiref.sync import async_to_sync

    from chat.message_changes import message_delete

    async_to_sync(message_delete)(identity=author.identity, room_id=room_id, message_id=message_id)


def test_the_uploaded_bytes_never_pass_through_the_site_on_s3(setup: Setup) -> None:
    """On S3 a slot is a presigned POST to the bucket (type and size in its policy); on the
    embedded default the same shape points at the site's one-time URL."""
    alice = make_user("alice")
    _room("lobby")
    slot = alice.slot("lobby", "a.txt", 6, "text/plain").json()
    assert set(slot) == {"uploadId", "url", "fields", "expiresAt"}
    if setup.s3:
        assert slot["url"].startswith("http") and slot["fields"]["key"] == f"incoming/{slot['uploadId']}"
        assert {"policy", "Content-Type"} <= set(slot["fields"]) or {"Policy", "Content-Type"} <= set(slot["fields"])
    else:
        assert slot["url"] == f"/api/uploads/{slot['uploadId']}/data" and set(slot["fields"]) == {"token"}
    assert alice.send_file(slot, "a.txt", b"hello\n") in {200, 201, 204}
    assert alice.complete(slot["uploadId"]).status_code == 200
