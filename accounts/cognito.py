"""Amazon Cognito user pools: the only module that talks to cognito-idp.

- InitiateAuth with USER_PASSWORD_AUTH (the sign-in form and POST /api/auth/token) and
  REFRESH_TOKEN_AUTH (POST /api/auth/refresh), with SECRET_HASH when the app client has a
  secret. InitiateAuth is an unsigned API: no AWS credentials are needed to sign users in.
- The Hosted UI: the authorization code flow with PKCE (S256), and its logout URL.

boto3 reads AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_COGNITO_IDP) itself, so a local stand-in
such as moto serves the API in development and tests. Everything here is synchronous; views
call it from Django's thread pool.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from django.conf import settings

from accounts.tokens import TokenSet

HOSTED_UI_SCOPES: Final = ("openid", "email", "profile")
# Errors that mean "these credentials are wrong", as opposed to "Cognito is unreachable".
CREDENTIAL_ERRORS: Final = frozenset(
    {"NotAuthorizedException", "UserNotFoundException", "UserNotConfirmedException", "PasswordResetRequiredException"}
)


@dataclass(frozen=True, slots=True)
class CognitoConfig:
    region: str
    user_pool_id: str
    client_id: str
    client_secret: str | None = None
    domain: str | None = None  # Hosted UI base URL, https://<prefix>.auth.<region>.amazoncognito.com
    jwks_url: str | None = None

    @property
    def issuer(self) -> str:
        """The iss of the pool's tokens: always the AWS URL, even when a stand-in serves the API."""
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    @property
    def keys_url(self) -> str:
        return self.jwks_url or f"{self.issuer}/.well-known/jwks.json"

    @classmethod
    def from_settings(cls) -> CognitoConfig | None:
        if not settings.COGNITO_ENABLED:
            return None
        return cls(
            region=settings.COGNITO_REGION,
            user_pool_id=settings.COGNITO_USER_POOL_ID,
            client_id=settings.COGNITO_APP_CLIENT_ID,
            client_secret=settings.COGNITO_APP_CLIENT_SECRET or None,
            domain=hosted_ui_base(settings.COGNITO_DOMAIN) if settings.COGNITO_DOMAIN else None,
            jwks_url=settings.COGNITO_JWKS_URL or None,
        )


def hosted_ui_base(domain: str) -> str:
    """COGNITO_DOMAIN as a base URL: a bare host gets https://, a trailing slash goes."""
    domain = domain.strip().rstrip("/")
    return domain if "://" in domain else f"https://{domain}"


class CognitoError(Exception):
    """Cognito refused or could not answer. `code` is Cognito's error code, or our own."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def bad_credentials(self) -> bool:
        return self.code in CREDENTIAL_ERRORS


class ChallengeRequired(CognitoError):
    """Cognito wants another step (a new password, MFA) that only the Hosted UI offers here."""

    def __init__(self, challenge: str) -> None:
        super().__init__("ChallengeRequired", f"Cognito asks for {challenge}")
        self.challenge = challenge


def secret_hash(username: str, client_id: str, client_secret: str) -> str:
    """Base64(HMAC-SHA256(secret, username + client id)), as Cognito defines SECRET_HASH."""
    digest = hmac.new(client_secret.encode(), (username + client_id).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@cache
def _client(region: str, endpoint: str | None) -> Any:
    # boto3 is imported on first use: it is about 0.17 s of every process's start, and a
    # site signing in with Django's own accounts never uses it.
    import boto3
    from botocore.config import Config

    return boto3.client(
        "cognito-idp",
        region_name=region,
        endpoint_url=endpoint,
        config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}),
    )


def client(config: CognitoConfig) -> Any:
    # The endpoint is part of the cache key so tests (and a changed environment) get a
    # client pointed at the right place.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDP") or os.environ.get("AWS_ENDPOINT_URL") or None
    return _client(config.region, endpoint)


def _initiate_auth(config: CognitoConfig, flow: str, parameters: dict[str, str]) -> TokenSet:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client(config).initiate_auth(ClientId=config.client_id, AuthFlow=flow, AuthParameters=parameters)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CognitoError(str(error.get("Code", "ClientError")), str(error.get("Message", ""))) from None
    except BotoCoreError as exc:
        raise CognitoError("Unavailable", type(exc).__name__) from None
    if "ChallengeName" in response:
        raise ChallengeRequired(str(response["ChallengeName"]))
    result = response.get("AuthenticationResult") or {}
    if "IdToken" not in result or "AccessToken" not in result:
        raise CognitoError("InvalidResponse", "no tokens in the AuthenticationResult")
    return TokenSet(
        id_token=result["IdToken"],
        access_token=result["AccessToken"],
        expires_in=int(result.get("ExpiresIn", 3600)),
        refresh_token=result.get("RefreshToken"),
    )


def password_auth(config: CognitoConfig, *, username: str, password: str) -> TokenSet:
    """Sign in with a username and password (USER_PASSWORD_AUTH must be allowed on the client)."""
    parameters = {"USERNAME": username, "PASSWORD": password}
    if config.client_secret:
        parameters["SECRET_HASH"] = secret_hash(username, config.client_id, config.client_secret)
    return _initiate_auth(config, "USER_PASSWORD_AUTH", parameters)


def refresh_auth(config: CognitoConfig, *, refresh_token: str, username: str | None = None) -> TokenSet:
    """New ID and access tokens for a refresh token.

    With a client secret Cognito wants SECRET_HASH here too, computed over the user's
    username (cognito:username) or sub: the caller must supply it.
    """
    parameters = {"REFRESH_TOKEN": refresh_token}
    if config.client_secret:
        if not username:
            raise CognitoError("UsernameRequired", "this app client has a secret: the refresh needs the username")
        parameters["SECRET_HASH"] = secret_hash(username, config.client_id, config.client_secret)
    return _initiate_auth(config, "REFRESH_TOKEN_AUTH", parameters)


# --- Hosted UI: authorization code flow with PKCE ------------------------------------


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(64)  # 86 characters, within 43..128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(config: CognitoConfig, *, redirect_uri: str, state: str, code_challenge: str, nonce: str) -> str:
    assert config.domain, "the Hosted UI needs COGNITO_DOMAIN"
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(HOSTED_UI_SCOPES),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{config.domain}/oauth2/authorize?{query}"


def logout_url(config: CognitoConfig, *, logout_uri: str) -> str:
    assert config.domain, "the Hosted UI needs COGNITO_DOMAIN"
    query = urllib.parse.urlencode({"client_id": config.client_id, "logout_uri": logout_uri})
    return f"{config.domain}/logout?{query}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def exchange_code(config: CognitoConfig, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
    """POST the authorization code and the PKCE verifier to the token endpoint."""
    assert config.domain, "the Hosted UI needs COGNITO_DOMAIN"
    form = {
        "grant_type": "authorization_code",
        "client_id": config.client_id,
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if config.client_secret:
        basic = base64.b64encode(f"{config.client_id}:{config.client_secret}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    request = urllib.request.Request(  # noqa: S310 - the Hosted UI domain from settings
        f"{config.domain}/oauth2/token", data=urllib.parse.urlencode(form).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.build_opener(_NoRedirect()).open(request, timeout=10) as response:
            body = json.loads(response.read(1 << 20))
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read(4096)).get("error", "invalid_grant")
        except ValueError:
            error = f"HTTP {exc.code}"
        finally:
            exc.close()
        raise CognitoError(str(error), "the token endpoint refused the code") from None
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise CognitoError("Unavailable", type(exc).__name__) from None
    if not isinstance(body, dict) or "id_token" not in body or "access_token" not in body:
        raise CognitoError("InvalidResponse", "no tokens from the token endpoint")
    return TokenSet(
        id_token=str(body["id_token"]),
        access_token=str(body["access_token"]),
        expires_in=int(body.get("expires_in", 3600)),
        refresh_token=body.get("refresh_token"),
    )
