"""Short-lived download URLs for the embedded default and the site's own download path.

A frame's URL is `/api/uploads/<id>/file?e=<expiry>&s=<signature>` (or `/thumbnail`): an
HMAC of the id, the kind and the expiry under the site's SECRET_KEY. It is minted only into
frames for the room's readers; the view also refuses a signed-in reader of another room.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.signing import Signer
from django.utils.crypto import constant_time_compare

_signer = Signer(salt="uploads.download")
KINDS = ("file", "thumbnail")


def _value(upload_id: str, kind: str, expires: int) -> str:
    return f"{upload_id}:{kind}:{expires}"


def signed_url(upload_id: str, kind: str, *, now: float | None = None) -> str:
    expires = int((now or time.time()) + settings.CHAT_UPLOAD_URL_SECONDS)
    signature = _signer.signature(_value(upload_id, kind, expires))
    return f"/api/uploads/{upload_id}/{kind}?e={expires}&s={signature}"


def valid(upload_id: str, kind: str, expires: str | None, signature: str | None, *, now: float | None = None) -> bool:
    if not expires or not signature or not expires.isdigit() or kind not in KINDS:
        return False
    if int(expires) < (now or time.time()):
        return False
    return constant_time_compare(signature, _signer.signature(_value(upload_id, kind, int(expires))))
