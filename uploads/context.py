"""Template context: the origin shared files come from and go to (S3's, or none), for the
pages' Content-Security-Policy (templates/base.html)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def uploads(request: HttpRequest) -> dict[str, str]:
    return {"uploads_origin": settings.CHAT_UPLOADS_ORIGIN}
