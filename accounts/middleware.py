"""`Authorization: Bearer <token>` on the JSON endpoints (paths under /api/).

A request with a Bearer token is that token's user, verified by the same function as a
WebSocket's token; a bad token is a 401 with the reason, never a silent fall-back to the
session. The admin and the pages are not reachable with a token: it is a credential for
API clients, and only the session carries CSRF protection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts import auth
from accounts.refusals import refusal_for, refused_response
from accounts.tokens import TokenRejected

API_PREFIX: Final = "/api/"


def bearer_token(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


def unauthorized(reason: str, *, status: int = 401) -> JsonResponse:
    response = JsonResponse({"error": "invalid_token", "reason": reason}, status=status)
    response["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{reason}"'
    return response


class BearerTokenMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = bearer_token(request) if request.path.startswith(API_PREFIX) else None
        if token is None:
            return self.get_response(request)
        client = request.META.get("REMOTE_ADDR")
        try:
            verified = auth.verify(token, via="bearer", client=client)
            user = auth.user_for(verified, via="bearer", client=client)
        except TokenRejected as error:
            return unauthorized(error.reason.value)
        request.user = user
        # A Bearer token is not an ambient credential a browser attaches on its own, so
        # there is no cross-site request to forge.
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        return self.get_response(request)


class RefusedUserMiddleware:
    """A refused (banned) user calls no /api/ endpoint: 403 with the reason and until when,
    whether they came by session or by Bearer token. After the authentication middlewares."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIX) and request.method != "OPTIONS":
            refusal = refusal_for(getattr(request, "user", None))
            if refusal is not None:
                return refused_response(refusal)
        return self.get_response(request)
