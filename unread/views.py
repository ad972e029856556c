"""/api/notifications: what a user asked to be told and where (thin: the work is in
unread.subscriptions). Authenticated like every /api/ endpoint (chat.api.api_view: a
session with CSRF, or a bearer token). Bad input answers 400 with the field named."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.identity import Identity
from chat.api import _error, _json_body, api_view
from unread import subscriptions
from unread.push import BadSubscription


def _bad(error: BadSubscription) -> JsonResponse:
    """400 naming the field that is wrong."""
    return JsonResponse({"error": "invalid_field", "field": error.field, "message": str(error)}, status=400)


def _post_json(request: HttpRequest) -> dict[str, Any] | HttpResponse:
    if request.method != "POST":
        return _error(405, "method_not_allowed", "use POST")
    body = _json_body(request)
    if body is None:
        return _error(400, "invalid_json", "the body must be a JSON object")
    return body


@api_view
def settings_view(request: HttpRequest, identity: Identity) -> HttpResponse:
    """GET: the VAPID key to subscribe with, receipts on or off, per-room levels.
    POST {"receipts": bool}: send read receipts or not."""
    if request.method in {"GET", "HEAD"}:
        return JsonResponse(subscriptions.notification_settings(user_id=identity.user_id))
    body = _post_json(request)
    if isinstance(body, HttpResponse):
        return body
    try:
        subscriptions.preferences_set(user_id=identity.user_id, body=body)
    except BadSubscription as error:
        return _bad(error)
    return JsonResponse(subscriptions.notification_settings(user_id=identity.user_id))


@api_view
def subscribe(request: HttpRequest, identity: Identity) -> HttpResponse:
    """POST a PushSubscription (its toJSON()): this browser gets Web Push."""
    body = _post_json(request)
    if isinstance(body, HttpResponse):
        return body
    try:
        subscriptions.subscription_add(user_id=identity.user_id, body=body)
    except BadSubscription as error:
        return _bad(error)
    return JsonResponse({"subscribed": True}, status=201)


@api_view
def unsubscribe(request: HttpRequest, identity: Identity) -> HttpResponse:
    """POST {"endpoint"}: this browser gets no more Web Push."""
    body = _post_json(request)
    if isinstance(body, HttpResponse):
        return body
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str):
        return _bad(BadSubscription("endpoint", "'endpoint' is required"))
    return JsonResponse({"removed": subscriptions.subscription_remove(user_id=identity.user_id, endpoint=endpoint)})


@api_view
def device(request: HttpRequest, identity: Identity) -> HttpResponse:
    """POST {"platform": "apns"|"fcm", "token"}: a phone gets push through Amazon SNS."""
    body = _post_json(request)
    if isinstance(body, HttpResponse):
        return body
    try:
        arn = subscriptions.device_add(user_id=identity.user_id, body=body)
    except BadSubscription as error:
        return _bad(error)
    return JsonResponse({"endpointArn": arn}, status=201)


@api_view
def room_level(request: HttpRequest, identity: Identity) -> HttpResponse:
    """POST {"roomId", "level": "all"|"mentions"|"nothing", "muted": bool}: one room's notifications."""
    body = _post_json(request)
    if isinstance(body, HttpResponse):
        return body
    try:
        subscriptions.room_level_set(identity=identity, body=body)
    except BadSubscription as error:
        return _bad(error)
    return JsonResponse(subscriptions.notification_settings(user_id=identity.user_id))
