"""HTTP edges of file sharing (docs/protocol.md "Files"): thin, the work is in uploads.services.

POST /api/uploads                 {roomId, name, size, contentType} -> a slot {uploadId, url, fields, expiresAt}
POST /api/uploads/<id>/data       the embedded default's one-time multipart POST (fields + part `file`)
POST /api/uploads/<id>/complete   the browser's upload is done: verify -> the attachment
GET  /api/uploads/<id>            fresh download URLs, for a reader of the upload's room
GET  /api/uploads/<id>/file       (signed) the file: a redirect to the uploads distribution (CloudFront
                                  signed URL), or streamed from here without one
GET  /api/uploads/<id>/thumbnail  (signed) an image's thumbnail
"""

from __future__ import annotations

import math
from typing import Final

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.identity import Identity, identity_from_user
from chat import api
from chat import services as chat_services
from chat.errors import ChatError, ErrorCode
from chat.protocol import validate_room_id
from chat.storage import get_store
from uploads import rules, selectors, services, signing, store
from uploads.models import Upload
from uploads.provider import UploadsProvider

MULTIPART_OVERHEAD: Final = 64 * 1024  # the fields and part headers around the file
_STATUS: Final = {
    ErrorCode.UNKNOWN_ROOM: 404,
    ErrorCode.UNKNOWN_UPLOAD: 404,
    ErrorCode.UPLOAD_TOO_LARGE: 413,
    ErrorCode.UPLOAD_TYPE_NOT_ALLOWED: 415,
    ErrorCode.UPLOAD_TYPE_MISMATCH: 415,
    ErrorCode.UPLOAD_USED: 409,
    ErrorCode.UPLOAD_NOT_RECEIVED: 409,
    ErrorCode.UPLOAD_EXPIRED: 410,
    ErrorCode.UPLOAD_BAD_IMAGE: 422,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.ROOM_ARCHIVED: 403,
    ErrorCode.READ_ONLY: 403,
    ErrorCode.MUTED: 403,
    ErrorCode.FORBIDDEN: 403,
}


def _refusal(error: ChatError) -> JsonResponse:
    response = JsonResponse({"error": error.code.value, "message": error.message}, status=_STATUS.get(error.code, 400))
    if error.retry_after is not None:
        response["Retry-After"] = str(math.ceil(error.retry_after))
    return response


@api.api_view
def slots(request: HttpRequest, identity: Identity) -> HttpResponse:
    if request.method != "POST":
        return api._error(405, "method_not_allowed", "use POST")
    body = api._json_body(request)
    if body is None:
        return api._error(400, ErrorCode.INVALID_JSON.value, "the body must be a JSON object")
    room_id, name, size, kind = body.get("roomId"), body.get("name"), body.get("size"), body.get("contentType")
    if not isinstance(name, str) or not isinstance(kind, str):
        return api._error(400, ErrorCode.INVALID_FIELD.value, "'name' and 'contentType' are required strings")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return api._error(400, ErrorCode.INVALID_FIELD.value, "'size' must be a whole number of bytes")
    try:
        slot = services.upload_slot(
            identity=identity, room_id=validate_room_id(room_id), name=name, size=size, content_type=kind
        )
    except ChatError as error:
        return _refusal(error)
    return JsonResponse(slot.as_json(), status=201)


@csrf_exempt  # the slot's signed token is the credential, as a presigned POST's policy is
def receive(request: HttpRequest, upload_id: str) -> HttpResponse:
    if request.method == "OPTIONS":
        return api._cors(request, HttpResponse(status=204))
    if request.method != "POST":
        return api._error(405, "method_not_allowed", "use POST")
    # Refused before Django reads a byte of the body: no slot takes more.
    length = str(request.META.get("CONTENT_LENGTH") or "0")
    if not length.isdigit() or int(length) > settings.CHAT_MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD:
        return api._cors(request, _refusal(ChatError(ErrorCode.UPLOAD_TOO_LARGE, "the file is too large")))
    try:
        services.upload_receive(
            upload_id=upload_id, token=request.POST.get("token", ""), file=request.FILES.get("file")
        )
    except ChatError as error:
        return api._cors(request, _refusal(error))
    return api._cors(request, HttpResponse(status=204))


@api.api_view
def complete(request: HttpRequest, identity: Identity, upload_id: str) -> HttpResponse:
    if request.method != "POST":
        return api._error(405, "method_not_allowed", "use POST")
    try:
        upload = services.upload_complete(identity=identity, upload_id=upload_id)
    except ChatError as error:
        return _refusal(error)
    return JsonResponse({"attachment": _entry(upload)})


def _entry(upload: Upload) -> dict[str, object]:
    return UploadsProvider().urls(services.attachment_record(upload))


def _shared(upload: Upload | None, identity: Identity | None) -> Upload | None:
    """The upload if it is on a live message that `identity` (None: anyone holding a
    signed URL) may read; else None, whatever the reason (a non-member learns nothing)."""
    if upload is None or upload.status != Upload.ATTACHED or not upload.message_id:
        return None
    room = chat_services.room_get(upload.room_id)
    if room is None or (identity is not None and not chat_services.room_readable(room=room, identity=identity)):
        return None
    message = chat_services.store_call(
        get_store().get_message, room_id=upload.room_id, message_id=upload.message_id, now=chat_services.utcnow()
    )
    if message is None or message.removed is not None:
        return None
    return upload


@api.api_view
def detail(request: HttpRequest, identity: Identity, upload_id: str) -> HttpResponse:
    upload = _shared(selectors.upload_of(upload_id=upload_id), identity)
    if upload is None:
        return api._error(404, ErrorCode.UNKNOWN_UPLOAD.value, "no such file")
    return JsonResponse({"attachment": _entry(upload)})


def download(request: HttpRequest, upload_id: str, kind: str) -> HttpResponseBase:
    """A file or thumbnail for a signed URL from a frame, while its message lives."""
    if not signing.valid(upload_id, kind, request.GET.get("e"), request.GET.get("s")):
        return api._error(403, ErrorCode.FORBIDDEN.value, "this link is not valid (or has expired): reload the room")
    identity = identity_from_user(request.user) if request.user.is_authenticated else None
    upload = _shared(selectors.upload_of(upload_id=upload_id), identity)
    if upload is None or (kind == "thumbnail" and not upload.thumbnail_type):
        return api._error(404, ErrorCode.UNKNOWN_UPLOAD.value, "no such file")
    key, content_type = (
        (upload.thumbnail_key, upload.thumbnail_type) if kind == "thumbnail" else (upload.file_key, upload.content_type)
    )
    if store.has_cdn():
        # The distribution serves the object with its own headers and adds nosniff (store.py).
        response: HttpResponseBase = HttpResponseRedirect(
            store.cdn_url(key, expires_in=settings.CHAT_UPLOAD_REDIRECT_SECONDS)
        )
        response["Cache-Control"] = "no-store"  # the redirect is minted per request
    else:
        # The embedded default, or S3 without a distribution (a developer's moto): a download,
        # streamed from the storage; never in production on S3 (settings refuse it).
        response = FileResponse(store.open_stream(key), content_type=content_type)
        response["Content-Disposition"] = rules.content_disposition(upload.name, content_type)
        response["Cache-Control"] = store.CACHE_CONTROL
    for header, value in rules.DOWNLOAD_HEADERS.items():
        response[header] = value
    return response
