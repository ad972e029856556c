"""/metrics in Prometheus text format, for a scraper with a token or a staff user.

Access: `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time), or a signed-in
staff user's session. There is no default token: with METRICS_TOKEN unset only staff see
the page. Metric counts reveal traffic, so the page is never public.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import chat.metrics  # noqa: F401 - registers Chatsite's metrics with the default registry


def _bearer_ok(request: HttpRequest) -> bool:
    expected: str = settings.METRICS_TOKEN
    if not expected:
        return False
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def _staff_ok(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not (_bearer_ok(request) or _staff_ok(request)):
        return HttpResponse(
            "metrics need a bearer token or a staff session\n",
            status=401,
            content_type="text/plain; charset=utf-8",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
