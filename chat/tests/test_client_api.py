"""The React client's server side: the built app at /app/ and the rooms API it calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

pytestmark = pytest.mark.django_db


@pytest.fixture
def build(tmp_path: Path, settings: SettingsWrapper) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><script type="module" src="./assets/app-1a2b.js"></script>')
    (dist / "assets" / "app-1a2b.js").write_text("console.log('app')")
    (dist / "config.json").write_text('{"apiBaseUrl": ""}')
    (tmp_path / "secret.txt").write_text("outside the build")
    settings.FRONTEND_DIST = dist
    settings.STATIC_ROOT = tmp_path / "collected"
    settings.STATIC_ROOT.mkdir()
    return dist


@pytest.fixture
def signed_in(client: Client) -> Client:
    user = get_user_model().objects.create_user("alice", password="a-long-test-Passw0rd")
    client.force_login(user)
    return client


def test_app_page_explains_how_to_build_when_there_is_no_build(
    client: Client, settings: SettingsWrapper, tmp_path: Path
) -> None:
    """Without a build, /app/ is a page that says how to build the app, not an error trace."""
    settings.FRONTEND_DIST = tmp_path / "nothing"
    settings.STATIC_ROOT = tmp_path / "nothing-collected"
    settings.STATIC_ROOT.mkdir()
    response = client.get("/app/")
    assert response.status_code == 503
    assert b"make frontend" in response.content
    assert b"npm ci" in response.content


def test_app_serves_index_config_and_assets_with_the_right_caching(client: Client, build: Path) -> None:
    """index.html and config.json revalidate, hashed assets are cached for good."""
    index = client.get("/app/")
    assert index.status_code == 200
    assert b"./assets/app-1a2b.js" in b"".join(index.streaming_content)  # type: ignore[attr-defined]
    assert index["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in index["Content-Security-Policy"]
    assert "csrftoken" in index.cookies

    config = client.get("/app/config.json")
    assert config["Content-Type"].startswith("application/json")
    assert config["Cache-Control"] == "no-cache"

    asset = client.get("/app/assets/app-1a2b.js")
    assert asset["Content-Type"].startswith("text/javascript")
    assert "immutable" in asset["Cache-Control"]


def test_app_never_serves_files_outside_the_build(client: Client, build: Path) -> None:
    """Traversal out of the build directory is a 404, and a missing asset is a 404."""
    for path in ["/app/../secret.txt", "/app/%2e%2e/secret.txt", "/app/assets/..%2f..%2fsecret.txt", "/app/nope.js"]:
        response = client.get(path)
        assert response.status_code == 404, path


def test_app_is_read_only(client: Client, build: Path) -> None:
    """/app/ answers GET and HEAD only."""
    assert client.post("/app/").status_code == 405


def test_rooms_api_needs_a_signed_in_user(client: Client) -> None:
    """Anonymous callers get 401 with a bearer challenge."""
    response = client.get("/api/rooms")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_rooms_api_lists_rooms_and_says_who_is_asking(signed_in: Client) -> None:
    """The list starts with the default room and names the signed-in user."""
    body = signed_in.get("/api/rooms").json()
    assert body["user"]["username"] == "alice"
    assert body["rooms"][0] == {"roomId": "general", "name": "General", "lastSeq": 0}


def test_rooms_api_creates_a_room_with_csrf_protection(signed_in: Client) -> None:
    """A session-authenticated create needs the CSRF token; then the room is listed."""
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = signed_in.cookies
    payload = json.dumps({"name": "Lunch plans"})
    refused = strict.post("/api/rooms", payload, content_type="application/json")
    assert refused.status_code == 403

    strict.get("/app/")  # sets the CSRF cookie, as the app page does
    token = strict.cookies["csrftoken"].value
    created = strict.post("/api/rooms", payload, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert created.status_code == 201
    room = created.json()["room"]
    assert room["name"] == "Lunch plans" and room["lastSeq"] == 0 and room["roomId"].startswith("lunch-plans-")
    assert room["roomId"] in [r["roomId"] for r in signed_in.get("/api/rooms").json()["rooms"]]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("not json", "invalid_json"),
        (json.dumps({"roomId": "ok", "name": "a chosen id"}), "invalid_field"),
        (json.dumps({}), "invalid_field"),
        (json.dumps({"name": "   "}), "empty_room_name"),
        (json.dumps({"name": "x" * 101}), "invalid_field"),
        (json.dumps({"name": "ok", "private": "yes"}), "invalid_field"),
    ],
)
def test_rooms_api_rejects_bad_input_with_a_stable_code(signed_in: Client, payload: str, code: str) -> None:
    """Invalid bodies, names and a chosen id are a 400 with the protocol's error code; nothing is created."""
    response = signed_in.post("/api/rooms", payload, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert [r["roomId"] for r in signed_in.get("/api/rooms").json()["rooms"]] == ["general"]


def test_rooms_api_answers_cors_only_for_allowed_origins(signed_in: Client, settings: SettingsWrapper) -> None:
    """An app on an allowed origin gets CORS headers; any other origin gets none."""
    settings.CHAT_ALLOWED_ORIGINS = ["https://app.example.com"]
    allowed = signed_in.options("/api/rooms", HTTP_ORIGIN="https://app.example.com")
    assert allowed.status_code == 204
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Authorization" in allowed["Access-Control-Allow-Headers"]
    other = signed_in.get("/api/rooms", HTTP_ORIGIN="https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in other
