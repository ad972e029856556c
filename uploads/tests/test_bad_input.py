"""What bad input gets (issue 18): each refusal its own error code, nothing stored, nothing
served. On the file system and S3 (moto), SQLite, PostgreSQL and DynamoDB."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY
from pytest_django.fixtures import Settings

from chat import services
from chat.storage import get_store
from uploads.models import Upload
from uploads.tests.conftest import Setup, User, frame_of, make_user, users
from uploads.tests.images import HTML_AS_PNG, PDF, png_header_bomb, png_with_gps

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _lobby() -> None:
    services.room_create(room_id="lobby", name="Lobby")


def _refused(response: Any, status: int, code: str) -> None:
    assert (response.status_code, response.json()["error"]) == (status, code), response.content


def _slot(user: User, name: str, data: bytes, content_type: str) -> dict[str, Any]:
    answer = user.slot("lobby", name, len(data), content_type)
    assert answer.status_code == 201, answer.content
    return dict(answer.json())


def test_a_slot_is_refused_before_any_byte_moves(setup: Setup, settings: Settings) -> None:
    """Too large, a type not allowed (HTML, SVG, an executable), a name that is a path, a
    name whose extension is not the type, a room the user may not post in, over a quota."""
    alice = make_user("alice")
    _lobby()
    settings.CHAT_MAX_UPLOAD_BYTES = 1000
    _refused(alice.slot("lobby", "big.pdf", 1001, "application/pdf"), 413, "upload_too_large")
    _refused(alice.slot("lobby", "x.html", 10, "text/html"), 415, "upload_type_not_allowed")
    _refused(alice.slot("lobby", "x.svg", 10, "image/svg+xml"), 415, "upload_type_not_allowed")
    _refused(alice.slot("lobby", "setup.exe", 10, "application/x-msdownload"), 415, "upload_type_not_allowed")
    _refused(alice.slot("lobby", "../../x.png", 10, "image/png"), 400, "invalid_file_name")
    _refused(alice.slot("lobby", "a\\..\\b.png", 10, "image/png"), 400, "invalid_file_name")
    _refused(alice.slot("lobby", "photo.exe", 10, "image/png"), 415, "upload_type_mismatch")
    _refused(alice.slot("nowhere", "a.txt", 10, "text/plain"), 404, "unknown_room")
    services.room_create(room_id="secret", name="Secret")
    get_store().update_room(room_id="secret", private=True, now=services.utcnow(), ttl_seconds=60)
    _refused(alice.slot("secret", "a.txt", 10, "text/plain"), 404, "unknown_room")
    services.room_create(room_id="old", name="Old")
    get_store().update_room(room_id="old", archived=True, now=services.utcnow(), ttl_seconds=60)
    _refused(alice.slot("old", "a.txt", 10, "text/plain"), 403, "room_archived")
    settings.CHAT_UPLOAD_BYTES_PER_USER_PER_DAY = 1500
    assert alice.slot("lobby", "a.txt", 1000, "text/plain").status_code == 201
    _refused(alice.slot("lobby", "b.txt", 600, "text/plain"), 429, "quota_exceeded")
    settings.CHAT_UPLOAD_BYTES_PER_USER_PER_DAY = 0
    settings.CHAT_UPLOAD_BYTES_PER_ROOM = 1200
    _refused(alice.slot("lobby", "c.txt", 600, "text/plain"), 429, "quota_exceeded")
    assert Upload.objects.count() == 1 and setup.keys() == set()


def test_metrics_count_uploads_bytes_and_refusals(setup: Setup, settings: Settings) -> None:
    """chatsite_uploads_total and chatsite_upload_bytes_total count verified files and their
    bytes; chatsite_upload_refusals_total counts refusals by code (docs/operations.md)."""
    alice = make_user("alice")
    _lobby()

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (sample("chatsite_uploads_total"), sample("chatsite_upload_bytes_total"))
    refused = sample("chatsite_upload_refusals_total", code="upload_type_not_allowed")
    alice.upload("lobby", "a.pdf", PDF, "application/pdf")
    assert (sample("chatsite_uploads_total"), sample("chatsite_upload_bytes_total")) == (
        before[0] + 1,
        before[1] + len(PDF),
    )
    _refused(alice.slot("lobby", "x.html", 10, "text/html"), 415, "upload_type_not_allowed")
    assert sample("chatsite_upload_refusals_total", code="upload_type_not_allowed") == refused + 1


def test_quotas_count_the_verified_bytes_not_the_announced_ones(setup: Setup, settings: Settings) -> None:
    """A slot reserves what it announces; once its file is verified, the room's and the
    user's quotas count the bytes really stored (a 900-byte slot that got 10 bytes holds 10)."""
    alice = make_user("alice")
    _lobby()
    settings.CHAT_UPLOAD_BYTES_PER_ROOM = 1000
    answer = alice.slot("lobby", "a.txt", 900, "text/plain")
    assert answer.status_code == 201, answer.content
    slot = answer.json()
    _refused(alice.slot("lobby", "b.txt", 200, "text/plain"), 429, "quota_exceeded")  # 900 reserved
    assert alice.send_file(slot, "a.txt", b"ten bytes\n") in {200, 201, 204}
    assert alice.complete(slot["uploadId"]).json()["attachment"]["size"] == 10
    assert alice.slot("lobby", "b.txt", 990, "text/plain").status_code == 201  # 10 + 990
    _refused(alice.slot("lobby", "c.txt", 1, "text/plain"), 429, "quota_exceeded")
    settings.CHAT_UPLOAD_BYTES_PER_ROOM = 0
    settings.CHAT_UPLOAD_BYTES_PER_USER_PER_DAY = 1000
    assert alice.slot("lobby", "c.txt", 0, "text/plain").status_code == 201
    _refused(alice.slot("lobby", "d.txt", 1, "text/plain"), 429, "quota_exceeded")
    Upload.objects.filter(name="b.txt").delete()
    assert alice.slot("lobby", "d.txt", 990, "text/plain").status_code == 201


def test_a_file_whose_bytes_are_not_what_it_says_is_deleted(setup: Setup) -> None:
    """A `.png` that is HTML: refused when completed, its bytes deleted, its id unknown."""
    alice = make_user("alice")
    _lobby()
    slot = _slot(alice, "cat.png", HTML_AS_PNG, "image/png")
    assert alice.send_file(slot, "cat.png", HTML_AS_PNG) in {200, 201, 204}
    _refused(alice.complete(slot["uploadId"]), 415, "upload_type_mismatch")
    assert setup.keys() == set() and not Upload.objects.filter(pk=slot["uploadId"]).exists()
    _refused(alice.complete(slot["uploadId"]), 404, "unknown_upload")


def test_a_decompression_bomb_is_refused(setup: Setup, settings: Settings) -> None:
    """A 10-gigapixel PNG in 100 bytes, and an image over a lowered pixel limit."""
    alice = make_user("alice")
    _lobby()
    bomb = png_header_bomb()
    slot = _slot(alice, "bomb.png", bomb, "image/png")
    assert alice.send_file(slot, "bomb.png", bomb) in {200, 201, 204}
    _refused(alice.complete(slot["uploadId"]), 422, "upload_bad_image")
    settings.CHAT_UPLOAD_MAX_PIXELS = 100
    image = png_with_gps(20, 20)
    slot = _slot(alice, "big.png", image, "image/png")
    assert alice.send_file(slot, "big.png", image) in {200, 201, 204}
    _refused(alice.complete(slot["uploadId"]), 422, "upload_bad_image")
    assert setup.keys() == set()


def test_a_file_larger_than_its_slot_is_refused(setup: Setup) -> None:
    """S3's policy refuses it (content-length-range); here the receiving end does; either
    way, what is past the slot's size is never verified nor served."""
    alice = make_user("alice")
    _lobby()
    answer = alice.slot("lobby", "a.txt", 5, "text/plain")
    slot = answer.json()
    status = alice.send_file(slot, "a.txt", b"0123456789")
    if status in {200, 201, 204}:  # a stand-in that does not check the policy
        _refused(alice.complete(slot["uploadId"]), 413, "upload_too_large")
    else:
        assert status in {400, 403, 413}
        _refused(alice.complete(slot["uploadId"]), 409, "upload_not_received")
    assert setup.keys() == set()


def test_a_slot_used_twice_or_expired(setup: Setup) -> None:
    alice = make_user("alice")
    _lobby()
    slot = _slot(alice, "a.txt", b"first\n", "text/plain")
    assert alice.send_file(slot, "a.txt", b"first\n") in {200, 201, 204}
    if setup.s3:
        # S3 takes a presigned POST again until it expires; the verified file is elsewhere.
        assert alice.complete(slot["uploadId"]).status_code == 200
        alice.send_file(slot, "a.txt", b"<html><script>x</script>")
        _refused(alice.complete(slot["uploadId"]), 409, "upload_used")
        assert setup.keys() >= {f"files/{slot['uploadId']}"}
    else:
        response = alice.client.post(slot["url"], {**slot["fields"], "file": _file(b"second")})
        _refused(response, 409, "upload_used")
    late = _slot(alice, "b.txt", b"late\n", "text/plain")
    Upload.objects.filter(pk=late["uploadId"]).update(slot_expires_at=services.utcnow() - timedelta(seconds=1))
    if not setup.s3:
        _refused(alice.client.post(late["url"], {**late["fields"], "file": _file(b"late\n")}), 410, "upload_expired")
    _refused(alice.complete(late["uploadId"]), 410, "upload_expired")
    forged = {"token": slot["fields"].get("token", "x") + "x"}
    if not setup.s3:
        _refused(alice.client.post(slot["url"], {**forged, "file": _file(b"x")}), 404, "unknown_upload")


def _file(data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("f.txt", data)


async def test_a_message_cannot_carry_uploads_it_may_not(setup: Setup, sockets: Any) -> None:
    """Another user's upload, one never uploaded, one of another room, one claimed by a
    message already, too many: each its own error frame, no message stored, no claim."""
    alice, bob = await users("alice"), await users("bob")
    await sync_to_async(_lobby)()
    await sync_to_async(services.room_create)(room_id="other", name="Other")
    mine = await sync_to_async(alice.upload)("lobby", "a.pdf", PDF, "application/pdf")
    theirs = await sync_to_async(bob.upload)("lobby", "b.pdf", PDF, "application/pdf")
    elsewhere = await sync_to_async(alice.upload)("other", "c.pdf", PDF, "application/pdf")
    empty = (await sync_to_async(alice.slot)("lobby", "d.pdf", len(PDF), "application/pdf")).json()["uploadId"]
    socket = await sockets(alice)
    await socket.send_json_to({"action": "joinRoom", "roomId": "lobby"})
    await frame_of(socket, "joined", roomId="lobby")

    async def send(cmid: str, ids: list[str]) -> dict[str, Any]:
        await socket.send_json_to(
            {"action": "sendMessage", "roomId": "lobby", "message": "", "clientMessageId": cmid, "attachments": ids}
        )
        while True:
            frame = await socket.receive_json_from(timeout=10)
            if frame.get("clientMessageId") == cmid and frame["type"] in {"error", "ack"}:
                return dict(frame)

    assert (await send("c1", [theirs["id"]]))["code"] == "unknown_upload"
    assert (await send("c2", ["f" * 32]))["code"] == "unknown_upload"
    assert (await send("c3", [empty]))["code"] == "upload_not_received"
    assert (await send("c4", [elsewhere["id"]]))["code"] == "upload_wrong_room"
    assert (await send("c5", [mine["id"], theirs["id"]]))["code"] == "unknown_upload"
    assert (await send("c6", ["0" * 32] * 2))["code"] == "invalid_field"
    assert (await send("c7", [f"{i:032x}" for i in range(11)]))["code"] == "too_many_attachments"
    assert (await send("c8", ["../../etc/passwd"]))["code"] == "invalid_field"
    room = await sync_to_async(get_store().get_room)("lobby")
    assert room is not None and room.last_seq == 0  # nothing stored
    assert (await send("ok", [mine["id"]]))["type"] == "ack"
    assert (await send("ok", [mine["id"]]))["type"] == "ack"  # a retry of the same message is no second claim
    assert (await send("c9", [mine["id"]]))["code"] == "upload_used"
    assert (await Upload.objects.aget(pk=theirs["id"])).status == Upload.READY  # bob's is untouched
