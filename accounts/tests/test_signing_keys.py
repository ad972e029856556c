"""The built-in issuer's keys shared by several hosts: one secret, and rotation without a rejected token."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts import issuer
from accounts.tokens import JwksKeySet, Rejection, TokenPolicy, TokenRejected, verify_token
from tests.fixtures.clock import Clock


def pem(key: issuer.SigningKey) -> str:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


KEY_A, KEY_B = issuer.SigningKey.generate(), issuer.SigningKey.generate()
POLICY = TokenPolicy(issuer=issuer.BUILTIN_ISSUER, client_id=issuer.BUILTIN_CLIENT_ID)


@pytest.fixture(autouse=True)
def fresh_keys() -> Iterator[None]:
    issuer.reset_key_cache()
    yield
    issuer.reset_key_cache()


def token(key: issuer.SigningKey) -> str:
    id_token, _ = issuer.mint(
        key, subject="s-1", username="alice", groups=[], email=None, lifetime=3600, now=int(time.time())
    )
    return id_token


def test_one_pem_is_a_ring_of_one_key() -> None:
    """A single PEM key signs and is the only key published."""
    ring = issuer.parse_key_ring(pem(KEY_A))
    assert ring.current.kid == KEY_A.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [KEY_A.kid]


def test_json_ring_signs_with_current_and_publishes_every_key() -> None:
    """current signs; previous and next are published so they verify."""
    ring = issuer.parse_key_ring(json.dumps({"current": pem(KEY_B), "previous": [pem(KEY_A)]}))
    assert ring.current.kid == KEY_B.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [KEY_B.kid, KEY_A.kid]
    assert all("d" not in k for k in ring.jwks()["keys"])  # never the private half


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a key", "not a PEM private key"),
        (pem(KEY_A) + pem(KEY_B), "one PEM key, or JSON"),
        ('{"current": "x"', "not valid JSON"),
        ('{"signing": "x"}', "JSON must be"),
        (json.dumps({"current": pem(KEY_A), "previous": pem(KEY_B)}), "'previous' must be a list"),
    ],
)
def test_a_ring_that_cannot_be_read_is_a_clear_error(text: str, message: str) -> None:
    """A malformed secret names what is wrong (and never echoes the key)."""
    with pytest.raises(ImproperlyConfigured, match=message) as error:
        issuer.parse_key_ring(text)
    assert "PRIVATE KEY-----\n" not in str(error.value)


@pytest.fixture
def secret(aws_env: dict[str, str], settings: SettingsWrapper) -> Iterator[Any]:
    """A Secrets Manager secret on the moto server holding KEY_A, named by the settings."""
    client = boto3.client("secretsmanager")
    name = f"chatsite-signing-{time.monotonic_ns()}"
    arn = client.create_secret(Name=name, SecretString=pem(KEY_A))["ARN"]
    settings.AUTH_SIGNING_KEYS_SECRET = arn
    issuer.reset_key_cache()
    yield lambda text: client.put_secret_value(SecretId=arn, SecretString=text)
    client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def test_rotation_in_the_shared_secret_rejects_no_token_until_the_old_key_is_dropped(secret: Any) -> None:
    """Old tokens verify after a rotation; new ones verify everywhere at once; the old key stops when dropped."""
    clock = Clock()
    # What another host's verifier holds: the published keys, re-read on an unknown kid.
    keys = JwksKeySet(lambda: issuer.key_ring(fresh=True).jwks(), min_refetch_interval=10, max_age=3600, clock=clock)
    old = token(issuer.signing_key())
    assert verify_token(old, keys=keys, policy=POLICY, now=time.time()).username == "alice"
    assert issuer.signing_key().kid == KEY_A.kid

    secret(json.dumps({"current": pem(KEY_B), "previous": [pem(KEY_A)]}))
    assert issuer.signing_key().kid == KEY_A.kid  # within AUTH_SIGNING_KEYS_MAX_AGE: the cached ring
    issuer.key_ring(fresh=True)  # the re-read that the max age brings
    new = token(issuer.signing_key())
    assert issuer.signing_key().kid == KEY_B.kid
    clock.now += 11  # a new kid re-reads the secret (not more than once per interval)
    assert verify_token(new, keys=keys, policy=POLICY, now=time.time()).username == "alice"
    assert verify_token(old, keys=keys, policy=POLICY, now=time.time()).username == "alice"

    secret(json.dumps({"current": pem(KEY_B)}))  # the old key's tokens have expired: drop it
    clock.now += 3600
    assert verify_token(new, keys=keys, policy=POLICY, now=time.time()).username == "alice"
    with pytest.raises(TokenRejected) as rejected:
        verify_token(old, keys=keys, policy=POLICY, now=time.time())
    assert rejected.value.reason is Rejection.UNKNOWN_KID


def test_an_unreachable_secret_keeps_the_keys_already_held(secret: Any, moto_server: Any, monkeypatch: Any) -> None:
    """Secrets Manager failing later keeps signing with the ring held; failing first is an error, not a new key."""
    assert issuer.signing_key().kid == KEY_A.kid
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    assert issuer.key_ring(fresh=True).current.kid == KEY_A.kid
    issuer.reset_key_cache()
    with pytest.raises(Exception):  # noqa: B017 - botocore's connection error, whatever its class
        issuer.signing_key()


def test_inline_keys_in_the_environment_are_used(settings: SettingsWrapper) -> None:
    """AUTH_SIGNING_KEYS (an ECS secret injected as a variable) replaces the local key file."""
    settings.AUTH_SIGNING_KEYS = json.dumps({"current": pem(KEY_A), "next": [pem(KEY_B)]})
    issuer.reset_key_cache()
    assert issuer.signing_key().kid == KEY_A.kid
    assert {k["kid"] for k in issuer.key_ring().jwks()["keys"]} == {KEY_A.kid, KEY_B.kid}


def test_the_rotation_command_walks_a_key_from_next_to_current_to_gone(secret: Any, capsys: Any) -> None:
    """add-next, promote, retire on the secret: at every step the ring signs with one key and verifies the rest."""

    def step(name: str) -> dict[str, Any]:
        call_command("signing_keys", name)
        issuer.reset_key_cache()
        return dict(json.loads(capsys.readouterr().out))

    assert step("show") == {"current": KEY_A.kid, "previous": [], "next": []}
    added = step("add-next")
    new_kid = added["next"][0]
    assert added["current"] == KEY_A.kid and new_kid != KEY_A.kid
    assert issuer.signing_key().kid == KEY_A.kid
    assert {k["kid"] for k in issuer.key_ring().jwks()["keys"]} == {KEY_A.kid, new_kid}
    assert step("promote") == {"current": new_kid, "previous": [KEY_A.kid], "next": []}
    assert issuer.signing_key().kid == new_kid
    assert step("retire") == {"current": new_kid, "previous": [], "next": []}
    assert [k["kid"] for k in issuer.key_ring().jwks()["keys"]] == [new_kid]
    with pytest.raises(CommandError, match="no next key to promote"):
        call_command("signing_keys", "promote")
