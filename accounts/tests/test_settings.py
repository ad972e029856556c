"""Cognito and auth settings: half a configuration fails at startup and says what is missing.

The settings module is executed afresh (runpy) under a patched environment: the same code a
starting process runs, without paying for a process per case.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = Path(__file__).resolve().parents[2] / "chatsite" / "settings.py"
FULL = {
    "COGNITO_REGION": "eu-west-1",
    "COGNITO_USER_POOL_ID": "eu-west-1_AbCdEf123",
    "COGNITO_APP_CLIENT_ID": "3n4b5urk1ft4fl3mg5e62d9ado",
}


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in list(os.environ):
        if name.startswith(("COGNITO_", "AUTH_", "CHAT_", "DJANGO_", "DATABASE_", "REDIS_", "DYNAMODB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CHATSITE_DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


def test_no_cognito_means_the_built_in_issuer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no Cognito variable set, Chatsite is its own issuer and accepts ID and access tokens."""
    loaded = load(tmp_path, monkeypatch)
    assert loaded["COGNITO_ENABLED"] is False and loaded["COGNITO_JWKS_URL"] == ""
    assert loaded["AUTH_TOKEN_USES"] == ["id", "access"] and loaded["CHAT_AUTH_TIMEOUT"] == 10.0
    assert loaded["AUTH_SIGNING_KEY_FILE"] == tmp_path / "auth-signing-key.pem"


def test_full_cognito_configuration_defaults_the_jwks_to_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The three required variables switch Cognito on; the keys default to the pool's AWS URL."""
    loaded = load(tmp_path, monkeypatch, **FULL)
    assert loaded["COGNITO_ENABLED"] is True
    assert loaded["COGNITO_JWKS_URL"] == (
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123/.well-known/jwks.json"
    )


def test_a_stand_in_serves_the_keys_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """COGNITO_JWKS_URL points key fetching at a local stand-in such as moto."""
    loaded = load(
        tmp_path,
        monkeypatch,
        **FULL,
        COGNITO_JWKS_URL="http://127.0.0.1:5000/eu-west-1_AbCdEf123/.well-known/jwks.json",
    )
    assert loaded["COGNITO_JWKS_URL"].startswith("http://127.0.0.1:5000/")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"COGNITO_REGION": "eu-west-1"}, ["COGNITO_USER_POOL_ID", "COGNITO_APP_CLIENT_ID"]),
        ({**FULL, "COGNITO_APP_CLIENT_ID": ""}, ["COGNITO_APP_CLIENT_ID"]),
        ({"COGNITO_DOMAIN": "auth.example.com"}, ["COGNITO_DOMAIN", "COGNITO_REGION", "COGNITO_USER_POOL_ID"]),
        ({"COGNITO_APP_CLIENT_SECRET": "s3cret"}, ["COGNITO_APP_CLIENT_SECRET", "COGNITO_APP_CLIENT_ID"]),
        ({"COGNITO_JWKS_URL": "http://127.0.0.1/jwks.json"}, ["COGNITO_JWKS_URL", "COGNITO_REGION"]),
        ({**FULL, "COGNITO_REGION": "us-east-1"}, ["COGNITO_USER_POOL_ID", "COGNITO_REGION"]),
        ({"AUTH_TOKEN_USE": "refresh"}, ["AUTH_TOKEN_USE"]),
        ({"AUTH_TOKEN_LEEWAY": "3600"}, ["AUTH_TOKEN_LEEWAY"]),
        ({"CHAT_AUTH_TIMEOUT": "0"}, ["CHAT_AUTH_TIMEOUT"]),
    ],
    ids=[
        "region only",
        "no client id",
        "domain only",
        "secret only",
        "jwks url only",
        "pool of another region",
        "bad token use",
        "huge leeway",
        "zero deadline",
    ],
)
def test_half_a_configuration_fails_at_startup_naming_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: list[str]
) -> None:
    """A partial or inconsistent setup stops the process with a message naming the variables."""
    with pytest.raises(ImproperlyConfigured) as info:
        load(tmp_path, monkeypatch, **env)
    for name in named:
        assert name in str(info.value)
