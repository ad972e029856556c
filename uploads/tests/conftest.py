"""Fixtures of the file-sharing tests: every test runs on each way Chatsite keeps files and
messages that matters here, and signed-in users with an HTTP client and a socket.

- files-sqlite:        the embedded default: FileSystemStorage, the ORM store on SQLite
- files-postgresql:    FileSystemStorage, the ORM store on PostgreSQL
- s3-dynamodb:         S3 (a moto server over HTTP) and the DynamoDB store (moto too)
- s3-postgresql:       S3 (moto), the ORM store on PostgreSQL
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings

from accounts.identity import Identity
from chat.storage import get_store, schema
from chat.storage.dynamodb import ensure_tables, make_client
from tests.fixtures.postgres import module_postgres

SETUPS = ["files-sqlite", "files-postgresql", "s3-dynamodb", "s3-postgresql"]
WAIT = 10.0


def _s3(request: pytest.FixtureRequest, settings: Settings) -> str:
    aws_env: dict[str, str] = request.getfixturevalue("aws_env")
    bucket = f"uploads-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name=aws_env["AWS_REGION"]).create_bucket(Bucket=bucket)
    settings.CHAT_UPLOADS_BUCKET = bucket
    settings.STORAGES = {
        **settings.STORAGES,
        "uploads": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "region_name": aws_env["AWS_REGION"],
                "endpoint_url": aws_env["AWS_ENDPOINT_URL"],
                "addressing_style": "path",
                "signature_version": "s3v4",
                "default_acl": None,
                "file_overwrite": True,
            },
        },
    }
    return bucket


def _dynamodb(request: pytest.FixtureRequest, settings: Settings) -> Iterator[None]:
    aws_env: dict[str, str] = request.getfixturevalue("aws_env")
    client = make_client(region=aws_env["AWS_REGION"])
    names = schema.TableNames.with_prefix(f"u-{uuid.uuid4().hex[:10]}-")
    ensure_tables(client, names, poll_seconds=0.05)
    settings.CHAT_STORAGE_BACKEND = "dynamodb"
    settings.DYNAMODB_CONNECTIONS_TABLE = names.connections
    settings.DYNAMODB_MESSAGES_TABLE = names.messages
    settings.DYNAMODB_ROOMS_TABLE = names.rooms
    get_store.cache_clear()
    try:
        yield
    finally:
        for table in schema.TABLES:
            client.delete_table(TableName=names.of(table))
        get_store.cache_clear()


@dataclass
class Setup:
    name: str
    bucket: str | None  # None: the file system

    @property
    def s3(self) -> bool:
        return self.bucket is not None

    def keys(self) -> set[str]:
        """Every object the uploads storage holds."""
        if self.bucket is not None:
            listing = boto3.client("s3").list_objects_v2(Bucket=self.bucket)
            return {item["Key"] for item in listing.get("Contents", [])}
        from django.conf import settings

        root = settings.STORAGES["uploads"]["OPTIONS"]["location"]
        from pathlib import Path

        return {p.relative_to(root).as_posix() for p in Path(root).rglob("*") if p.is_file()}


@pytest.fixture(params=SETUPS)
def setup(request: pytest.FixtureRequest, settings: Settings, tmp_path: Any) -> Iterator[Setup]:
    name: str = request.param
    settings.CHAT_UPLOADS_BUCKET = ""
    settings.STORAGES = {
        **settings.STORAGES,
        "uploads": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "uploads"), "base_url": "/api/uploads/"},
        },
    }
    with contextlib.ExitStack() as stack:
        bucket = _s3(request, settings) if name.startswith("s3") else None
        if name.endswith("dynamodb"):
            stack.enter_context(contextlib.contextmanager(_dynamodb)(request, settings))
        if name.endswith("postgresql"):
            stack.enter_context(
                module_postgres(request, ("chat_", "uploads_", "auth_user", "analytics_"), everywhere=True)
            )
        yield Setup(name=name, bucket=bucket)


@dataclass
class User:
    client: Client
    identity: Identity
    cookie: bytes

    def slot(self, room_id: str, name: str, size: int, content_type: str) -> Any:
        return self.client.post(
            "/api/uploads",
            data={"roomId": room_id, "name": name, "size": size, "contentType": content_type},
            content_type="application/json",
        )

    def send_file(self, slot: dict[str, Any], name: str, data: bytes) -> int:
        """The browser's multipart POST of a slot's fields and the file: to S3 or to here."""
        url, fields = slot["url"], slot["fields"]
        if url.startswith("/"):
            return int(self.client.post(url, {**fields, "file": SimpleUploadedFile(name, data)}).status_code)
        return requests.post(url, data=fields, files={"file": (name, io.BytesIO(data))}, timeout=WAIT).status_code

    def complete(self, upload_id: str) -> Any:
        return self.client.post(f"/api/uploads/{upload_id}/complete")

    def upload(self, room_id: str, name: str, data: bytes, content_type: str) -> dict[str, Any]:
        """Slot, POST, complete: the attachment, or an AssertionError saying where it failed."""
        answer = self.slot(room_id, name, len(data), content_type)
        assert answer.status_code == 201, answer.content
        slot = answer.json()
        assert self.send_file(slot, name, data) in {200, 201, 204}
        done = self.complete(slot["uploadId"])
        assert done.status_code == 200, done.content
        return dict(done.json()["attachment"])


def make_user(username: str, *, moderator: bool = False) -> User:
    user = get_user_model().objects.create_user(username=username, password="pw-" + uuid.uuid4().hex)
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    return User(
        client=client,
        identity=Identity(user_id=str(user.pk), username=username, is_moderator=moderator),
        cookie=f"sessionid={client.cookies['sessionid'].value}".encode(),
    )


@pytest.fixture
async def sockets() -> AsyncIterator[Any]:
    from chatsite.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def open_socket(user: User) -> WebsocketCommunicator:
        comm = WebsocketCommunicator(
            application,
            "/ws/",
            headers=[(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), (b"cookie", user.cookie)],
        )
        opened.append(comm)
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected
        return comm

    yield open_socket
    for comm in opened:
        await comm.disconnect(timeout=WAIT)
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()  # type: ignore[attr-defined]


async def frame_of(socket: WebsocketCommunicator, kind: str, **match: Any) -> dict[str, Any]:
    """The next frame of this type (and these fields), skipping others, within WAIT seconds each."""
    while True:
        frame = await socket.receive_json_from(timeout=WAIT)
        if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
            return dict(frame)


users = sync_to_async(make_user)
