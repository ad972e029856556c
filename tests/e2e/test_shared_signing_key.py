"""Several hosts without Cognito: a token the built-in issuer signs on one daphne opens a socket on another.

Each process has a key file of its own (as two hosts would); the shared Secrets Manager
secret (on the moto server) is what makes them agree.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import websockets
from cryptography.hazmat.primitives import serialization

from accounts.issuer import SigningKey
from tests.e2e.client import timeout
from tests.fixtures.aws import MotoServer
from tests.fixtures.servers import DEMO_PASSWORD, DaphneServer

pytestmark = pytest.mark.timeout(120)


def _get(server: DaphneServer, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(server.base_url + path, timeout=timeout(10)) as response:
        return dict(json.load(response))


def _sign_in(server: DaphneServer, username: str) -> dict[str, Any]:
    body = json.dumps({"username": username, "password": DEMO_PASSWORD}).encode()
    request = urllib.request.Request(
        server.base_url + "/api/auth/token", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout(10)) as response:
        return dict(json.load(response))


async def test_a_token_issued_on_one_host_opens_a_socket_on_another(
    daphne_factory: Callable[..., DaphneServer], moto_server: MotoServer, tmp_path: Path
) -> None:
    """Both processes publish the shared key and accept each other's tokens, though each has its own key file."""
    key = SigningKey.generate().private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    client = boto3.client("secretsmanager", endpoint_url=moto_server.endpoint_url, **_credentials(moto_server))
    arn = client.create_secret(Name=f"chatsite-keys-{tmp_path.name}", SecretString=key.decode())["ARN"]
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {**moto_server.env, "AUTH_SIGNING_KEYS_SECRET": arn, "shared_dir": shared}
    one = daphne_factory(AUTH_SIGNING_KEY_FILE=str(tmp_path / "one.pem"), **env)
    two = daphne_factory(AUTH_SIGNING_KEY_FILE=str(tmp_path / "two.pem"), **env)
    one.signup("alice")

    assert _get(one, "/.well-known/jwks.json") == _get(two, "/.well-known/jwks.json")
    tokens = _sign_in(one, "alice")
    async with websockets.connect(two.ws_url, origin=two.origin, open_timeout=timeout(10)) as ws:
        await ws.send(json.dumps({"action": "authenticate", "token": tokens["IdToken"]}))
        frame = json.loads(await ws.recv())
    assert frame["type"] == "authenticated", frame
    assert not (tmp_path / "one.pem").exists() and not (tmp_path / "two.pem").exists()


def _credentials(moto_server: MotoServer) -> dict[str, str]:
    env = moto_server.env
    return {
        "region_name": env["AWS_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }
