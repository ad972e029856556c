"""JSON endpoints for the React client: the room list (with who is asking) and room creation.

Thin like every edge: the work is in `chat.services`. A request is authenticated by the
Django session (the app served at /app/ by this site; unsafe methods then need Django's
CSRF token) or by an `Authorization: Bearer` token, which accounts' middleware turns into
`request.user` for paths under /api/ (an app on another origin; no cookies, no CSRF).
Origins in CHAT_ALLOWED_ORIGINS may call these from a browser (CORS, without credentials).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from accounts.identity import Identity, identity_from_user
from chat import people, services
from chat.errors import ChatError, ErrorCode
from chat.storage.base import Room
from chatsite.text import storable

MAX_BODY_BYTES: Final = 4096
ROOM_NAME_MAX: Final = 100


def room_json(room: Room) -> dict[str, Any]:
    return {"roomId": room.room_id, "name": room.name, "lastSeq": room.last_seq}


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


def _csrf_rejected(request: HttpRequest) -> bool:
    """Django's own CSRF check. A request that accounts' bearer middleware authenticated is
    marked exempt there (a token is no ambient credential), so only session writes need it."""
    checker = CsrfViewMiddleware(lambda _request: HttpResponse())
    checker.process_request(request)
    return checker.process_view(request, lambda _request: HttpResponse(), (), {}) is not None


def _cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    origin = request.headers.get("Origin")
    if origin and origin in settings.CHAT_ALLOWED_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Max-Age"] = "600"
    response["Vary"] = "Origin"
    return response


def api_view(handler: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Authenticate (request.user: the session, or a bearer token through accounts'
    middleware), check CSRF for session writes, add CORS headers."""

    @csrf_exempt  # checked below, answering JSON rather than Django's HTML 403 page
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:  # URL arguments follow identity
        if request.method == "OPTIONS":
            return _cors(request, HttpResponse(status=204))
        identity = identity_from_user(request.user)
        if identity is None:
            response = _error(401, "unauthorized", "sign in first")
            response["WWW-Authenticate"] = "Bearer"
            return _cors(request, response)
        if request.method not in {"GET", "HEAD"} and _csrf_rejected(request):
            return _cors(request, _error(403, "csrf_failed", "CSRF token missing or incorrect"))
        return _cors(request, handler(request, identity, *args, **kwargs))

    return view


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    if len(request.body) > MAX_BODY_BYTES:
        return None
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


@api_view
def rooms(request: HttpRequest, identity: Identity) -> HttpResponse:
    """GET: the rooms and who is asking. POST {name, private?, topic?}: create a room (its id
    derived from the name; a name a room the caller can see has is refused with 409, never opened)."""
    if request.method in {"GET", "HEAD"}:
        return JsonResponse(
            {
                "user": {"userId": identity.user_id, "username": identity.username, "moderator": identity.is_moderator},
                "rooms": [room_json(room) for room in services.room_list(identity=identity)],
            }
        )
    if request.method != "POST":
        return _error(405, "method_not_allowed", "use GET or POST")
    body = _json_body(request)
    if body is None:
        return _error(400, ErrorCode.INVALID_JSON.value, "the body must be a JSON object")
    if "roomId" in body:
        # Ids are derived, never chosen: a chosen id could only be refused by telling that a
        # room the caller may not see holds it (docs/auth.md).
        return _error(400, ErrorCode.INVALID_FIELD.value, "a room is created by its 'name'; its id is derived")
    name, private, topic = body.get("name"), body.get("private", False), body.get("topic", "")
    if not isinstance(name, str) or len(name) > ROOM_NAME_MAX or not storable(name):
        return _error(
            400, ErrorCode.INVALID_FIELD.value, f"'name' is required: a string of at most {ROOM_NAME_MAX} characters"
        )
    if not isinstance(private, bool) or not isinstance(topic, str) or not storable(topic):
        return _error(400, ErrorCode.INVALID_FIELD.value, "'private' must be true or false, 'topic' a string")
    try:
        room = people.room_create_named(identity=identity, name=name, private=private, topic=topic)
    except ChatError as error:
        response = _error(_STATUS.get(error.code, 400), error.code.value, error.message)
        if error.retry_after is not None:
            response["Retry-After"] = str(math.ceil(error.retry_after))
        return response
    return JsonResponse({"room": room_json(room)}, status=201)


_STATUS: Final = {ErrorCode.ROOM_NAME_TAKEN: 409, ErrorCode.QUOTA_EXCEEDED: 429}
