"""The JSON API for non-browser clients: Cognito-shaped tokens, refresh, who am I, and the JWKS.

POST /api/auth/token    {"username", "password"} -> {"IdToken", "AccessToken", "RefreshToken",
                        "ExpiresIn", "TokenType"}: Cognito's InitiateAuth when Cognito is
                        configured, the built-in issuer otherwise.
POST /api/auth/refresh  {"refreshToken"[, "username"]} -> the same without RefreshToken.
POST /api/auth/revoke   {"refreshToken"} -> {"revoked": true}: a token client signs out (built-in).
GET  /api/auth/me       the caller, by Bearer token or session.
GET  /.well-known/jwks.json  the built-in issuer's public key (404 with Cognito: use the pool's).

A banned user gets no tokens from either endpoint: 403 {"error": "banned", "message",
"until", "reason"} (accounts.refusals), as on every other /api/ endpoint.

A browser app on an origin listed in CHAT_ALLOWED_ORIGINS may call the /api/auth endpoints
(CORS without credentials: they take JSON and return tokens, no cookie is involved).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from accounts import auth, cognito, demo, issuer, revocation, sessions, throttle
from accounts.middleware import bearer_token, unauthorized
from accounts.refusals import refusal_for, refused_response
from accounts.tokens import Rejection, TokenRejected, TokenSet
from accounts.users import is_moderator
from chatsite.text import storable

log = logging.getLogger(__name__)

MAX_FIELD = 1024
MAX_REFRESH_TOKEN = 8192


def _error(status: int, error: str, message: str) -> JsonResponse:
    return JsonResponse({"error": error, "message": message}, status=status)


def _body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _string(body: dict[str, Any], name: str, limit: int) -> str | None:
    """The field when it is a string of 1..limit characters that every database can store
    (a NUL in a username used to reach PostgreSQL and answer 500)."""
    value = body.get(name)
    return value if isinstance(value, str) and 0 < len(value) <= limit and storable(value) else None


View = Callable[[HttpRequest], HttpResponse]


def json_endpoint(*methods: str) -> Callable[[View], View]:
    """Allow `methods`, answer CORS preflights, and add CORS headers for CHAT_ALLOWED_ORIGINS.

    CSRF-exempt: these endpoints read no cookie and set none, so a forged cross-site request
    gains nothing (a password or refresh token is needed, and the answer goes to its sender).
    """
    allowed = [*methods, "OPTIONS"]

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest) -> HttpResponse:
            response: HttpResponse
            if request.method == "OPTIONS":
                response = HttpResponse(status=204)
            elif request.method not in methods:
                response = HttpResponseNotAllowed(allowed)
            else:
                response = view(request)
            origin = request.headers.get("Origin")
            if origin and origin in settings.CHAT_ALLOWED_ORIGINS:
                response["Access-Control-Allow-Origin"] = origin
                response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                response["Access-Control-Allow-Methods"] = ", ".join(allowed)
                response["Access-Control-Max-Age"] = "600"
            patch_vary_headers(response, ["Origin"])
            return response

        return csrf_exempt(wrapper)

    return decorate


def _cognito_failure(error: cognito.CognitoError) -> JsonResponse:
    if isinstance(error, cognito.ChallengeRequired):
        return _error(401, "challenge_required", f"{error.message}; complete the sign-in in the Hosted UI")
    if error.bad_credentials:
        return _error(401, "invalid_credentials", "wrong username or password")
    if error.code == "UsernameRequired":
        return _error(400, "invalid_request", error.message)
    log.warning("Cognito sign-in failed: %s", error.code)
    return _error(502, "cognito_unavailable", "the identity provider did not answer, retry shortly")


def _refused_cognito_user(tokens: TokenSet, request: HttpRequest) -> HttpResponse | None:
    """403 if Cognito's tokens are for a user Chatsite refuses (banned): they are not handed out."""
    use_id = "id" in settings.AUTH_TOKEN_USES
    client = request.META.get("REMOTE_ADDR")
    try:
        verified = auth.verify(tokens.id_token if use_id else tokens.access_token, via="api", client=client)
        user = auth.user_for(verified, via="api", client=client)
    except TokenRejected as error:
        if error.reason is Rejection.KEYS_UNAVAILABLE:
            return _error(502, "cognito_unavailable", "the identity provider's keys could not be read, retry shortly")
        return _error(401, "invalid_token", f"the identity provider's tokens were refused: {error.reason.value}")
    refusal = refusal_for(user)
    return refused_response(refusal) if refusal is not None else None


@json_endpoint("POST")
def token(request: HttpRequest) -> HttpResponse:
    body = _body(request)
    if body is None:
        return _error(400, "invalid_request", "send a JSON object")
    username, password = _string(body, "username", MAX_FIELD), _string(body, "password", MAX_FIELD)
    if username is None or password is None:
        return _error(400, "invalid_request", "'username' and 'password' are required strings")
    address = throttle.client_address(request)
    refused = throttle.check(username=username, address=address)
    if refused is not None:
        return _throttled(refused)
    config = cognito.CognitoConfig.from_settings()
    if config is not None:
        try:
            tokens = cognito.password_auth(config, username=username, password=password)
        except cognito.CognitoError as error:
            if error.bad_credentials:
                throttle.failed(username=username, address=address)
            return _cognito_failure(error)
        throttle.succeeded(username=username)
        return _refused_cognito_user(tokens, request) or JsonResponse(tokens.as_json())
    user = authenticate(request, username=username, password=password)
    if user is None:
        throttle.failed(username=username, address=address)
        return _error(401, "invalid_credentials", "wrong username or password")
    refusal = refusal_for(user)
    if refusal is not None:
        return refused_response(refusal)
    throttle.succeeded(username=username)
    return JsonResponse(issuer.issue_tokens(user).as_json())


def _refresh_request(request: HttpRequest) -> tuple[dict[str, Any], str | JsonResponse]:
    """The JSON body and its `refreshToken`, or the 400 answer in the token's place."""
    body = _body(request)
    if body is None:
        return {}, _error(400, "invalid_request", "send a JSON object")
    refresh_token = _string(body, "refreshToken", MAX_REFRESH_TOKEN)
    if refresh_token is None:
        return body, _error(400, "invalid_request", "'refreshToken' is a required string")
    return body, refresh_token


def _throttled(refused: throttle.Throttled) -> JsonResponse:
    response = _error(429, "too_many_attempts", refused.message)
    response["Retry-After"] = str(refused.retry_after)
    return response


@json_endpoint("POST")
def refresh(request: HttpRequest) -> HttpResponse:
    body, refresh_token = _refresh_request(request)
    if isinstance(refresh_token, JsonResponse):
        return refresh_token
    # A refresh token names no account until it is found: failures count per address (and
    # per account when the client names one, as Cognito's secret hash needs).
    username, address = _string(body, "username", MAX_FIELD), throttle.client_address(request)
    refused = throttle.check(username=username, address=address)
    if refused is not None:
        return _throttled(refused)
    config = cognito.CognitoConfig.from_settings()
    if config is not None:
        try:
            tokens = cognito.refresh_auth(config, refresh_token=refresh_token, username=username)
        except cognito.CognitoError as error:
            if error.code == "NotAuthorizedException":
                throttle.failed(username=username, address=address)
                return _error(401, "invalid_grant", "the refresh token is invalid, expired or revoked")
            return _cognito_failure(error)
        return _refused_cognito_user(tokens, request) or JsonResponse(tokens.as_json())
    try:
        refusal = refusal_for(issuer.refresh_token_owner(refresh_token))
        if refusal is not None:
            return refused_response(refusal)
        tokens = issuer.refresh_tokens(refresh_token)
    except issuer.InvalidRefreshToken:
        throttle.failed(username=username, address=address)
        return _error(401, "invalid_grant", "the refresh token is invalid, expired or revoked")
    return JsonResponse(tokens.as_json())


@json_endpoint("POST")
def revoke(request: HttpRequest) -> HttpResponse:
    """Sign a token client out: its refresh token is revoked, the built-in ID and access tokens
    it gave are refused from now on, and the sockets they opened close with 4401."""
    _, refresh_token = _refresh_request(request)
    if isinstance(refresh_token, JsonResponse):
        return refresh_token
    if cognito.CognitoConfig.from_settings() is not None:
        return _error(400, "unsupported", "Cognito's refresh tokens are revoked with Cognito's RevokeToken")
    revoked = issuer.revoke_refresh_token_of(refresh_token)
    if revoked is not None:
        revocation.refresh_token_signed_out(user_id=revoked[0], digest=revoked[1])
    # As RFC 7009: an unknown or already revoked token is no error (nothing to tell an attacker).
    return JsonResponse({"revoked": True})


@json_endpoint("POST")
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    """A token client ends every sign-in of its user: all sessions, all refresh tokens, every
    socket (4401). Bearer only: this endpoint is CSRF-exempt, so a cookie must not reach it
    (a browser's session signs out everywhere through the page's form, which checks CSRF)."""
    if bearer_token(request) is None or not request.user.is_authenticated:
        return unauthorized("missing_credentials")
    if cognito.CognitoConfig.from_settings() is not None:
        return _error(400, "unsupported", "Cognito's sign-ins end with Cognito's GlobalSignOut")
    return JsonResponse({"signedOutEverywhere": True, "refreshTokensRevoked": sessions.sign_out_everywhere(request)})


@json_endpoint("GET")
def me(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.is_authenticated:
        return unauthorized("missing_credentials")
    return JsonResponse(
        {
            "userId": str(user.pk),
            "username": user.get_username(),
            "isStaff": bool(user.is_staff),
            "isModerator": is_moderator(user),
        }
    )


@require_GET
@cache_control(public=True, max_age=300)
def jwks(request: HttpRequest) -> HttpResponse:
    if cognito.CognitoConfig.from_settings() is not None:
        return _error(404, "not_found", "tokens come from Cognito: use the user pool's JWKS")
    return JsonResponse(issuer.key_ring().jwks())


@require_GET
def demo_accounts(request: HttpRequest) -> HttpResponse:
    """The demo accounts' sign-in hint for the React app's sign-in form: {"accounts": [...],
    "password": ...}, or {"accounts": []} in production or once they have passwords of their own."""
    return JsonResponse(demo.sign_in_hint() or {"accounts": []})
