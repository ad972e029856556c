"""GET /api/search: the search box's endpoint (both UIs), thin over search.services.

Authenticated like every /api/ endpoint (chat.api.api_view: the session or a bearer
token). `q` is the query (search.query), `cursor` the `nextCursor` of the previous page,
`limit` the page size (at most search.services.MAX_PAGE). A query that cannot be read is a
400 with the code invalid_query and a reason; a failing store a 503.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.identity import Identity
from chat import protocol
from chat.api import api_view
from chat.errors import ChatError, ErrorCode
from search import services


def result_json(result: services.SearchResult) -> dict[str, Any]:
    message = result.message
    return {
        "messageId": message.message_id,
        "roomId": message.room_id,
        "roomName": result.room.name,
        "seq": message.seq,
        "userId": message.user_id,
        "username": message.username,
        "timestamp": protocol.format_timestamp(message.timestamp),
        "message": message.text,
        "snippet": [{"text": text, "match": match} for text, match in result.snippet],
    }


@api_view
def search(request: HttpRequest, identity: Identity) -> HttpResponse:
    if request.method not in {"GET", "HEAD"}:
        return JsonResponse({"error": "method_not_allowed", "message": "use GET"}, status=405)
    limit_text = request.GET.get("limit")
    try:
        limit = int(limit_text) if limit_text else None
    except ValueError:
        limit = None
    try:
        page = services.messages_search(
            identity=identity, q=request.GET.get("q", ""), cursor=request.GET.get("cursor") or None, limit=limit
        )
    except ChatError as error:
        status = 503 if error.code == ErrorCode.STORAGE_UNAVAILABLE else 400
        response = JsonResponse({"error": error.code.value, "message": error.message}, status=status)
        if error.retry_after is not None:
            response["Retry-After"] = "1"
        return response
    return JsonResponse(
        {"results": [result_json(r) for r in page.results], "nextCursor": page.next_cursor},
    )
