"""The pure rules of file sharing: names, types from bytes, how files are served, the
protocol's `attachments`, signed URLs, and settings that refuse to start half-configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Final

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from chat import protocol
from chat.errors import ErrorCode
from tests.fixtures.servers import ROOT
from uploads import rules, signing


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a....", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"PK\x03\x04\x14\x00", "application/zip"),
        (b"\x1f\x8b\x08\x00", "application/gzip"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "application/x-7z-compressed"),
        (b"hello, world\n", "text/plain"),
        ("d\u00e9j\u00e0 vu \u2014 caf\u00e9\n".encode(), "text/plain"),
        ("caf\u00e9".encode()[:-1], "text/plain"),  # a character cut at the end of the head
        (b"", "text/plain"),
        (b"<!DOCTYPE html><html>", "text/html"),
        (b"  <svg xmlns='http://www.w3.org/2000/svg'>", "text/html"),
        (b"<?xml version='1.0'?><svg>", "text/html"),
        (b"notes\n<script>alert(1)</script>", "text/html"),
        (b"MZ\x90\x00", "application/x-msdownload"),
        (b"\x7fELF\x02\x01", "application/x-executable"),
        (b"#!/bin/sh\nrm -rf /", "application/x-sh"),
        (b"\x00\x01\x02\x03binary", None),
    ],
)
def test_a_type_comes_from_the_bytes(head: bytes, kind: str | None) -> None:
    assert rules.sniff(head) == kind


def test_markup_and_executables_are_no_known_type() -> None:
    for kind in ("text/html", "image/svg+xml", "application/x-msdownload", "application/x-sh", "text/xml"):
        assert kind not in rules.KNOWN_TYPES


@pytest.mark.parametrize(
    "name", ["../../x", "a/b.png", "a\\b.png", "..", ".", "..png", "", " ", "x" * 201, "a\x00.png", "a\u202e.png"]
)
def test_a_path_or_a_strange_name_is_refused(name: str) -> None:
    with pytest.raises(rules.NameError_):
        rules.clean_name(name)


def test_names_are_kept_as_people_write_them() -> None:
    assert rules.clean_name("  Re\u0301sume\u0301 (final).PDF ") == "R\u00e9sum\u00e9 (final).PDF"
    assert rules.type_of_name("R\u00e9sum\u00e9 (final).PDF") == "application/pdf"
    assert rules.type_of_name("photo.JPEG") == "image/jpeg"
    assert rules.type_of_name("noext") is None and rules.type_of_name("x.html") is None


def test_images_are_inline_everything_else_a_download() -> None:
    assert rules.content_disposition("cat.png", "image/png").startswith("inline;")
    pdf = rules.content_disposition('r\u00e9sum\u00e9 "v2".pdf', "application/pdf")
    assert pdf.startswith("attachment;") and 'filename="r_sum_ _v2_.pdf"' in pdf
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22.pdf" in pdf


def _parse(frame: str, **limits: int) -> protocol.Command:
    return protocol.parse_client_frame(frame, protocol.Limits(**limits))


def test_send_message_carries_attachments_and_may_then_be_empty() -> None:
    ids = ["a" * 32, "b" * 32]
    frame = {"action": "sendMessage", "roomId": "lobby", "message": "", "attachments": ids}
    command = _parse(json.dumps(frame))
    assert isinstance(command, protocol.SendMessage)
    assert command.attachments == tuple(ids) and command.message == ""
    command = _parse(json.dumps({"action": "sendMessage", "roomId": "lobby", "attachments": ids[:1]}))
    assert isinstance(command, protocol.SendMessage) and command.message == ""
    plain = _parse('{"action":"sendMessage","roomId":"lobby","message":"hi"}')
    assert isinstance(plain, protocol.SendMessage) and plain.attachments == ()


@pytest.mark.parametrize(
    ("attachments", "code"),
    [
        ('["../../x"]', ErrorCode.INVALID_FIELD),
        ("[1]", ErrorCode.INVALID_FIELD),
        ('"' + "a" * 32 + '"', ErrorCode.INVALID_FIELD),
        ('["' + "a" * 32 + '","' + "a" * 32 + '"]', ErrorCode.INVALID_FIELD),
        ("[" + ",".join(f'"{i:032x}"' for i in range(3)) + "]", ErrorCode.TOO_MANY_ATTACHMENTS),
        ("[]", ErrorCode.EMPTY_MESSAGE),
    ],
)
def test_bad_attachments_get_their_code(attachments: str, code: ErrorCode) -> None:
    with pytest.raises(protocol.ProtocolError) as refused:
        frame = '{"action":"sendMessage","roomId":"lobby","message":"","clientMessageId":"c1","attachments":'
        _parse(frame + attachments + "}", max_attachments=2)
    assert refused.value.code == code and refused.value.client_message_id == "c1"


def test_a_tombstone_shows_no_attachments() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from chat.records import MessageRecord

    record = MessageRecord(
        message_id="m", room_id="r", seq=1, user_id="u", username="u", text="", timestamp=datetime.now(UTC),
        connection_id="c", client_message_id=None, ttl=0,
        attachments=({"id": "a" * 32, "name": "x.pdf", "size": 1, "contentType": "application/pdf"},),
    )  # fmt: skip
    assert protocol.message_payload(record)["attachments"][0]["name"] == "x.pdf"
    assert "attachments" not in protocol.message_payload(replace(record, removed="deleted"))


def test_signed_urls_expire_and_name_one_file_and_kind(settings: object) -> None:
    url = signing.signed_url("a" * 32, "file", now=1_000_000)
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    assert signing.valid("a" * 32, "file", query["e"], query["s"], now=1_000_001)
    assert not signing.valid("a" * 32, "file", query["e"], query["s"], now=1_000_000 + 10**6)  # expired
    assert not signing.valid("b" * 32, "file", query["e"], query["s"], now=1_000_001)  # another file
    assert not signing.valid("a" * 32, "thumbnail", query["e"], query["s"], now=1_000_001)  # another kind
    assert not signing.valid("a" * 32, "file", str(int(query["e"]) + 1), query["s"], now=1_000_001)
    assert not signing.valid("a" * 32, "file", None, None) and time.time() > 0


_CDN: Final = {
    "CHAT_UPLOADS_CDN_DOMAIN": "files.example.com",
    "CHAT_UPLOADS_CDN_KEY_ID": "K2JCJMDEHXQW5F",
    "CHAT_UPLOADS_CDN_PRIVATE_KEY": rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    .decode(),
}
_PRODUCTION: Final = {
    "CHATSITE_ENV": "production",
    "DJANGO_SECRET_KEY": "k" * 60,
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "DATABASE_URL": "postgres://chatsite@db.internal/chatsite",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def _settings_error(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "AWS_", "DJANGO_"))}
    result = subprocess.run(
        [sys.executable, "-c", "import django; from django.conf import settings; settings.INSTALLED_APPS"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stderr if result.returncode else ""


def _probe(code: str, **env: str) -> list[str]:
    """What `code` prints once Django is set up with these settings (and no others of ours)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "AWS_", "DJANGO_"))}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"CHAT_UPLOADS_BUCKET": "b-1", "CHAT_UPLOADS_DIR": "/tmp/x"}, "not both"),
        ({"CHAT_UPLOADS_BUCKET": "Not_A_Bucket"}, "is not an S3 bucket name"),
        ({"CHAT_UPLOADS_BUCKET": "b-1", "AWS_ENDPOINT_URL_S3": "ftp://x"}, "is not an http(s) URL"),
        ({"CHAT_UPLOAD_TYPES": "image/png,text/html"}, "text/html cannot be recognised"),
        ({"CHAT_MAX_UPLOAD_BYTES": str(6 * 1024**3)}, "at most 5 GiB"),
        ({"CHAT_UPLOADS_BUCKET": "b-1", "CHAT_UPLOADS_CDN_DOMAIN": "files.example.com"}, "together"),
        ({**_CDN, "CHAT_UPLOADS_DIR": "/tmp/x"}, "set CHAT_UPLOADS_BUCKET too"),
        (
            {**_CDN, "CHAT_UPLOADS_BUCKET": "b-1", "CHAT_UPLOADS_CDN_PRIVATE_KEY": "-----BEGIN"},
            "not an unencrypted RSA",
        ),
        ({**_CDN, "CHAT_UPLOADS_BUCKET": "b-1", "CHAT_UPLOADS_CDN_DOMAIN": "https://x.net/"}, "is not a host name"),
        ({**_PRODUCTION, "CHAT_UPLOADS_BUCKET": "b-1"}, "in production needs CHAT_UPLOADS_CDN_DOMAIN"),
    ],
)
def test_half_configured_file_sharing_does_not_start(env: dict[str, str], says: str) -> None:
    assert says in _settings_error(**env)


def test_the_bucket_is_in_the_pages_content_security_policy() -> None:
    assert _settings_error(CHAT_UPLOADS_BUCKET="chat-files", AWS_REGION="eu-west-1") == ""
    out = _probe(
        "from django.conf import settings; from chat import spa;"
        "print(settings.CHAT_UPLOADS_ORIGIN); print(spa.CONTENT_SECURITY_POLICY)",
        CHAT_UPLOADS_BUCKET="chat-files",
        AWS_REGION="eu-west-1",
    )
    assert out[0] == "https://chat-files.s3.eu-west-1.amazonaws.com"
    assert "img-src 'self' data: blob: https://chat-files.s3.eu-west-1.amazonaws.com" in out[1]
    assert "connect-src 'self' ws: wss: https: https://chat-files.s3.eu-west-1.amazonaws.com" in out[1]


def test_the_uploads_distribution_serves_downloads_in_production() -> None:
    """With CHAT_UPLOADS_CDN_*, production starts, the storage signs CloudFront URLs for the
    distribution's host, and the pages may show images from it."""
    env = {**_PRODUCTION, **_CDN, "CHAT_UPLOADS_BUCKET": "chat-files", "AWS_REGION": "eu-west-1"}
    assert _settings_error(**env) == ""
    out = _probe(
        "from chat import spa; from uploads import store; print(spa.CONTENT_SECURITY_POLICY);"
        "print(store.has_cdn(), store.cdn_url('files/x', expires_in=60))",
        **env,
    )
    assert (
        "img-src 'self' data: blob: https://chat-files.s3.eu-west-1.amazonaws.com https://files.example.com" in out[0]
    )
    assert out[1].startswith("True https://files.example.com/files/x?Expires=")
    assert "Key-Pair-Id=K2JCJMDEHXQW5F" in out[1]
