"""The HTTP side: the JSON token API, Bearer on /api/, the JWKS, and the Cognito sign-in pages.

Built-in accounts use the test database; Cognito is the moto server (password sign-in) or,
for the Hosted UI, a local stand-in of Cognito's domain: moto does not serve /oauth2/*.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import issuer
from accounts.models import ExternalIdentity
from tests.fixtures.cognito import CognitoPool

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-Passw0rd"


@pytest.fixture(scope="module")
def shared_key_file(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One built-in signing key for the module: creating a 2048-bit key per test is slow."""
    path = tmp_path_factory.mktemp("issuer") / "key.pem"
    issuer.load_or_create_key(path)
    return path


@pytest.fixture(autouse=True)
def fast_setup(shared_key_file: Any, settings: Settings) -> None:
    settings.AUTH_SIGNING_KEY_FILE = shared_key_file
    # Password hashing is not under test here; PBKDF2's cost would dominate the run.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice() -> Any:
    return get_user_model().objects.create_user("alice", password=PASSWORD)


def post_json(client: Client, path: str, body: Any, **headers: str) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- built-in tokens ------------------------------------------------------------------------------


def test_token_endpoint_signs_in_a_built_in_user(client: Client, alice: Any) -> None:
    """POST /api/auth/token with a username and password returns Cognito-shaped tokens."""
    response = post_json(client, "/api/auth/token", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"IdToken", "AccessToken", "RefreshToken", "ExpiresIn", "TokenType"}
    assert (body["TokenType"], body["ExpiresIn"]) == ("Bearer", 3600)
    me = client.get("/api/auth/me", headers=bearer(body["AccessToken"]))
    assert me.json() == {"userId": str(alice.pk), "username": "alice", "isStaff": False, "isModerator": False}
    assert "sessionid" not in response.cookies  # tokens, not a session


@pytest.mark.parametrize(
    "body",
    [{"username": "alice", "password": "wrong"}, {"username": "nobody", "password": PASSWORD}],
    ids=["wrong password", "unknown user"],
)
def test_token_endpoint_refuses_bad_credentials(client: Client, alice: Any, body: dict[str, str]) -> None:
    """A wrong password or unknown user is a 401 that does not say which."""
    response = post_json(client, "/api/auth/token", body)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_credentials")


@pytest.mark.parametrize(
    "raw", ["not json", "[1]", json.dumps({"username": "alice"}), json.dumps({"username": 1, "password": "x"})]
)
def test_token_endpoint_refuses_malformed_requests(client: Client, raw: str) -> None:
    """A body that is not a JSON object with string username and password is a 400."""
    response = client.post("/api/auth/token", data=raw, content_type="application/json")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_token_endpoint_is_post_only(client: Client) -> None:
    """GET on the token endpoint is refused; a CORS preflight is answered."""
    assert client.get("/api/auth/token").status_code == 405
    assert client.options("/api/auth/token").status_code == 204


def test_refresh_endpoint_gives_new_tokens_for_a_refresh_token(client: Client, alice: Any) -> None:
    """POST /api/auth/refresh turns a refresh token into new ID and access tokens."""
    tokens = post_json(client, "/api/auth/token", {"username": "alice", "password": PASSWORD}).json()
    response = post_json(client, "/api/auth/refresh", {"refreshToken": tokens["RefreshToken"]})
    assert response.status_code == 200
    assert {"IdToken", "AccessToken", "ExpiresIn", "TokenType"} <= set(response.json())
    bad = post_json(client, "/api/auth/refresh", {"refreshToken": "made-up"})
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_grant")


def test_token_endpoint_works_with_csrf_enforced(alice: Any) -> None:
    """A non-browser client without cookies or a CSRF token can sign in."""
    client = Client(enforce_csrf_checks=True)
    assert post_json(client, "/api/auth/token", {"username": "alice", "password": PASSWORD}).status_code == 200


def test_cors_headers_only_for_allowed_origins(client: Client, alice: Any, settings: Settings) -> None:
    """A browser app on an allowed origin may call the token API; other origins get no CORS grant."""
    settings.CHAT_ALLOWED_ORIGINS = ["https://app.example"]
    body = {"username": "alice", "password": PASSWORD}
    allowed = post_json(client, "/api/auth/token", body, Origin="https://app.example")
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example"
    other = post_json(client, "/api/auth/token", body, Origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in other


# --- Bearer on /api/ ------------------------------------------------------------------------------


def test_id_and_access_tokens_both_work_as_bearer(client: Client, alice: Any) -> None:
    """By default both ID and access tokens are accepted as Bearer tokens."""
    tokens = post_json(client, "/api/auth/token", {"username": "alice", "password": PASSWORD}).json()
    for token in (tokens["IdToken"], tokens["AccessToken"]):
        assert client.get("/api/auth/me", headers=bearer(token)).json()["username"] == "alice"


def test_bad_bearer_token_is_401_with_a_logged_reason(
    client: Client, alice: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad Bearer token is a 401 naming the reason, logged without the token; no session fallback."""
    tokens = post_json(client, "/api/auth/token", {"username": "alice", "password": PASSWORD}).json()
    forged = tokens["AccessToken"][:-6] + ("AAAAAA" if not tokens["AccessToken"].endswith("AAAAAA") else "BBBBBB")
    client.force_login(alice)  # a valid session does not rescue a bad token
    with caplog.at_level(logging.WARNING, logger="accounts.auth"):
        response = client.get("/api/auth/me", headers=bearer(forged))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "reason": "bad_signature"}
    assert response["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert "via=bearer reason=bad_signature" in caplog.text
    assert forged not in caplog.text and forged[:40] not in caplog.text


def test_me_without_credentials_is_401(client: Client) -> None:
    """An anonymous caller of a JSON endpoint gets a JSON 401, not a login page."""
    response = client.get("/api/auth/me")
    assert response.status_code == 401 and response.json()["reason"] == "missing_credentials"


def test_bearer_write_needs_no_csrf_token_but_a_session_write_does(alice: Any) -> None:
    """On /api/, a Bearer-authenticated POST needs no CSRF token; a cookie-authenticated one still does."""
    client = Client(enforce_csrf_checks=True)
    tokens = post_json(client, "/api/auth/token", {"username": "alice", "password": PASSWORD}).json()
    by_token = post_json(client, "/api/rooms", {"name": "by-token"}, **bearer(tokens["AccessToken"]))
    assert by_token.status_code in (200, 201), by_token.content
    client.force_login(alice)
    by_session = post_json(client, "/api/rooms", {"name": "by-session"})
    assert by_session.status_code == 403


def test_bearer_is_ignored_outside_the_api(client: Client, alice: Any) -> None:
    """Pages and the admin are not reachable with a Bearer token: it is an API credential."""
    tokens = post_json(client, "/api/auth/token", {"username": "alice", "password": PASSWORD}).json()
    response = client.get("/", headers=bearer(tokens["AccessToken"]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_access_only_setting_refuses_id_tokens(client: Client, alice: Any, settings: Settings) -> None:
    """With AUTH_TOKEN_USE=access, an ID token is refused as a Bearer token."""
    tokens = post_json(client, "/api/auth/token", {"username": "alice", "password": PASSWORD}).json()
    settings.AUTH_TOKEN_USES = ["access"]
    assert client.get("/api/auth/me", headers=bearer(tokens["AccessToken"])).status_code == 200
    response = client.get("/api/auth/me", headers=bearer(tokens["IdToken"]))
    assert (response.status_code, response.json()["reason"]) == (401, "wrong_token_use")


# --- the built-in JWKS ----------------------------------------------------------------------------


def test_jwks_endpoint_publishes_the_built_in_key(client: Client, alice: Any) -> None:
    """/.well-known/jwks.json holds the key that signs the built-in tokens."""
    tokens = post_json(client, "/api/auth/token", {"username": "alice", "password": PASSWORD}).json()
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200 and "max-age=300" in response["Cache-Control"]
    (key,) = response.json()["keys"]
    assert jwt.get_unverified_header(tokens["IdToken"])["kid"] == key["kid"] == issuer.signing_key().kid
    assert "d" not in key


def test_jwks_endpoint_is_absent_with_cognito(client: Client, cognito_pool: CognitoPool, settings: Settings) -> None:
    """With Cognito, Chatsite signs nothing: its own JWKS is a 404 (the pool publishes the keys)."""
    for name, value in cognito_pool.settings().items():
        setattr(settings, name, value)
    assert client.get("/.well-known/jwks.json").status_code == 404


# --- Cognito: API and password form (moto) --------------------------------------------------------


@pytest.fixture
def with_cognito(cognito_pool: CognitoPool, aws_env: dict[str, str], settings: Settings) -> CognitoPool:
    for name, value in cognito_pool.settings().items():
        setattr(settings, name, value)
    return cognito_pool


def test_token_endpoint_uses_cognito_when_configured(client: Client, with_cognito: CognitoPool) -> None:
    """With Cognito configured, /api/auth/token answers with the pool's tokens (InitiateAuth)."""
    pool = with_cognito
    response = post_json(client, "/api/auth/token", {"username": pool.username, "password": pool.password})
    assert response.status_code == 200
    tokens = response.json()
    assert jwt.decode(tokens["IdToken"], options={"verify_signature": False})["iss"] == pool.issuer
    me = client.get("/api/auth/me", headers=bearer(tokens["AccessToken"]))
    assert me.status_code == 200
    assert me.json()["username"] == pool.username and me.json()["isModerator"] is True  # the moderators group
    refreshed = post_json(client, "/api/auth/refresh", {"refreshToken": tokens["RefreshToken"]})
    assert refreshed.status_code == 200 and refreshed.json()["AccessToken"]
    wrong = post_json(client, "/api/auth/token", {"username": pool.username, "password": "Wr0ng-password!"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_credentials")


def test_built_in_users_cannot_use_the_token_api_when_cognito_is_on(
    client: Client, with_cognito: CognitoPool, alice: Any
) -> None:
    """With Cognito on, local passwords are not a way in: the pool decides."""
    response = post_json(client, "/api/auth/token", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 401


def test_cognito_sign_in_form_starts_a_session(client: Client, with_cognito: CognitoPool) -> None:
    """The sign-in page sends the password to Cognito and signs the browser in with a session."""
    pool = with_cognito
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b"Accounts are managed in Amazon Cognito" in page.content
    response = client.post(
        "/accounts/login/", {"username": pool.username, "password": pool.password, "next": "/rooms/general/"}
    )
    assert (response.status_code, response["Location"]) == (302, "/rooms/general/")
    user = get_user_model().objects.get(username=pool.username)
    assert client.session["_auth_user_id"] == str(user.pk)
    assert ExternalIdentity.objects.get(user=user).issuer == pool.issuer


def test_cognito_sign_in_form_refuses_a_wrong_password(client: Client, with_cognito: CognitoPool) -> None:
    """A wrong password shows an error and starts no session."""
    response = client.post("/accounts/login/", {"username": with_cognito.username, "password": "Wr0ng-password!"})
    assert response.status_code == 401 and b"Wrong username or password" in response.content
    assert "_auth_user_id" not in client.session


def test_sign_up_goes_to_cognito_when_configured(client: Client, with_cognito: CognitoPool) -> None:
    """Local sign-up is off with Cognito: accounts live in the user pool."""
    assert client.get("/accounts/signup/")["Location"] == "/accounts/login/"


def test_open_redirects_are_refused(client: Client, with_cognito: CognitoPool) -> None:
    """A `next` that points off-site is replaced by the room list."""
    pool = with_cognito
    response = client.post(
        "/accounts/login/", {"username": pool.username, "password": pool.password, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


# --- Cognito Hosted UI: authorization code + PKCE (a local stand-in for the Cognito domain) ----------

HOSTED_POOL = "us-east-1_HostedUi"
HOSTED_CLIENT = "hosted-ui-client"


class HostedUi:
    """Cognito's domain in miniature: /oauth2/authorize, /oauth2/token (checks PKCE), the JWKS."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pending: dict[str, dict[str, str]] = {}  # code -> authorize parameters
        self.token_requests: list[dict[str, str]] = []
        self.nonce_override: str | None = None
        self.issuer = f"https://cognito-idp.us-east-1.amazonaws.com/{HOSTED_POOL}"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ui = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/jwks.json":
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ui.key.public_key()))
                    self._send(200, {"keys": [{**jwk, "kid": "hosted", "alg": "RS256", "use": "sig"}]})
                elif url.path == "/oauth2/authorize" and query.get("client_id") == HOSTED_CLIENT:
                    code = secrets.token_urlsafe(16)
                    ui.pending[code] = query
                    target = (
                        f"{query['redirect_uri']}?{urllib.parse.urlencode({'code': code, 'state': query['state']})}"
                    )
                    self._send(302, headers={"Location": target})
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                ui.token_requests.append(form)
                asked = ui.pending.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if (
                    asked is None
                    or form.get("grant_type") != "authorization_code"
                    or form.get("client_id") != HOSTED_CLIENT
                    or form.get("redirect_uri") != asked["redirect_uri"]
                    or asked.get("code_challenge_method") != "S256"
                    or challenge != asked.get("code_challenge")
                ):
                    self._send(400, {"error": "invalid_grant"})
                    return
                now = int(time.time())
                claims = {
                    "sub": "hosted-sub-1",
                    "iss": ui.issuer,
                    "aud": HOSTED_CLIENT,
                    "token_use": "id",
                    "cognito:username": "hana",
                    "nonce": ui.nonce_override or asked["nonce"],
                    "iat": now,
                    "exp": now + 3600,
                }
                access = {**claims, "token_use": "access", "client_id": HOSTED_CLIENT, "username": "hana"}
                del access["aud"], access["nonce"], access["cognito:username"]
                sign = lambda c: jwt.encode(c, ui.key, algorithm="RS256", headers={"kid": "hosted"})  # noqa: E731
                self._send(
                    200,
                    {
                        "id_token": sign(claims),
                        "access_token": sign(access),
                        "refresh_token": "opaque",
                        "expires_in": 3600,
                        "token_type": "Bearer",
                    },
                )

        return Handler

    def follow_authorize(self, url: str) -> str:
        """What the browser does at Cognito: sign in, and come back with the redirect."""

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        try:
            urllib.request.build_opener(NoRedirect()).open(url, timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 302
            return str(exc.headers["Location"])
        raise AssertionError("the authorize endpoint did not redirect")


@pytest.fixture
def hosted_ui(settings: Settings) -> Iterator[HostedUi]:
    ui = HostedUi()
    thread = threading.Thread(target=ui.server.serve_forever, daemon=True)
    thread.start()
    settings.COGNITO_ENABLED = True
    settings.COGNITO_REGION = "us-east-1"
    settings.COGNITO_USER_POOL_ID = HOSTED_POOL
    settings.COGNITO_APP_CLIENT_ID = HOSTED_CLIENT
    settings.COGNITO_APP_CLIENT_SECRET = ""
    settings.COGNITO_DOMAIN = ui.url
    settings.COGNITO_JWKS_URL = ui.url + "/jwks.json"
    yield ui
    ui.server.shutdown()
    ui.server.server_close()


def start_hosted_sign_in(client: Client, hosted_ui: HostedUi, next_url: str = "/rooms/general/") -> str:
    response = client.get("/accounts/cognito/authorize/", {"next": next_url})
    assert response.status_code == 302 and response["Location"].startswith(hosted_ui.url + "/oauth2/authorize?")
    callback = hosted_ui.follow_authorize(response["Location"])
    assert callback.startswith("http://testserver/accounts/cognito/callback/?")
    return callback.removeprefix("http://testserver")


def test_hosted_ui_code_flow_with_pkce_signs_in(client: Client, hosted_ui: HostedUi) -> None:
    """Authorize at Cognito, come back with a code, trade it with the PKCE verifier: a session follows."""
    callback = start_hosted_sign_in(client, hosted_ui)
    response = client.get(callback)
    assert (response.status_code, response["Location"]) == (302, "/rooms/general/")
    user = get_user_model().objects.get(username="hana")
    assert client.session["_auth_user_id"] == str(user.pk)
    (request,) = hosted_ui.token_requests
    assert request["redirect_uri"] == "http://testserver/accounts/cognito/callback/"
    assert 43 <= len(request["code_verifier"]) <= 128


def test_hosted_ui_callback_refuses_a_forged_or_replayed_state(client: Client, hosted_ui: HostedUi) -> None:
    """A callback whose state this session did not start, or one used twice, signs nobody in."""
    callback = start_hosted_sign_in(client, hosted_ui)
    forged = callback.replace("state=", "state=x")
    assert client.get(forged).status_code == 400
    assert client.get(callback).status_code == 400  # the pending sign-in was consumed by the forgery
    assert "_auth_user_id" not in client.session
    other_browser = Client()
    assert other_browser.get(start_hosted_sign_in(client, hosted_ui)).status_code == 400


def test_hosted_ui_refuses_an_id_token_with_another_nonce(client: Client, hosted_ui: HostedUi) -> None:
    """An ID token minted for another sign-in (wrong nonce) is refused."""
    hosted_ui.nonce_override = "someone-elses-nonce"
    response = client.get(start_hosted_sign_in(client, hosted_ui))
    assert response.status_code == 400 and b"could not be verified" in response.content
    assert "_auth_user_id" not in client.session


def test_hosted_ui_error_is_shown(client: Client, hosted_ui: HostedUi) -> None:
    """When Cognito answers with an error instead of a code, the page says so."""
    client.get("/accounts/cognito/authorize/")
    response = client.get("/accounts/cognito/callback/", {"error": "access_denied", "state": "x"})
    assert response.status_code == 400 and b"did not sign you in" in response.content


def test_sign_out_ends_the_session_and_offers_the_hosted_ui_logout(client: Client, hosted_ui: HostedUi) -> None:
    """Signing out ends the Django session and links to Cognito's logout for its own session."""
    client.get(start_hosted_sign_in(client, hosted_ui))
    assert "_auth_user_id" in client.session
    response = client.post("/accounts/logout/")
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    logout = response.context["hosted_logout"]
    parsed = urllib.parse.urlsplit(logout)
    assert f"{parsed.scheme}://{parsed.netloc}{parsed.path}" == hosted_ui.url + "/logout"
    assert dict(urllib.parse.parse_qsl(parsed.query)) == {
        "client_id": HOSTED_CLIENT,
        "logout_uri": "http://testserver/accounts/login/",
    }


def test_built_in_sign_out_redirects_to_sign_in(client: Client, alice: Any) -> None:
    """Without Cognito, sign-out is a POST that ends the session and goes to the sign-in page."""
    client.force_login(alice)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response["Location"] == "/accounts/login/" and "_auth_user_id" not in client.session
