"""Pages: the room list and a room."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.identity import identity_from_user
from chat import services
from chat.protocol import DEFAULT_ROOM


@login_required
@require_GET
def rooms(request: HttpRequest) -> HttpResponse:
    """The chat with no room open. Rooms are made in the "+ New room" dialog (people-ui.js, over
    the socket's createRoom), the one way in both UIs; this page once had a second form of its own."""
    identity = identity_from_user(request.user)
    rooms = services.sidebar_rooms(identity=identity) if identity is not None else []
    context = {"rooms": rooms, "max_message_length": settings.CHAT_MAX_MESSAGE_LENGTH}
    return render(request, "chat/rooms.html", context)


@login_required
def room(request: HttpRequest, room_id: str) -> HttpResponse:
    found = services.room_get(room_id)
    # A private room is not there for a non-member (its name included).
    identity = identity_from_user(request.user)
    if found is None or not services.room_readable(room=found, identity=identity):
        # A page with a way back, not Django's 404 page; still a 404 (issue 20).
        # The way back is the home room, as the page both UIs show when a room turns them away.
        missing = {
            "room": None,
            "rooms": services.sidebar_rooms(identity=identity) if identity is not None else [],
            "home_room": DEFAULT_ROOM,
        }
        return render(request, "chat/room_missing.html", missing, status=404)
    context = {
        "room": found,
        # The sidebar (issue 20), by the room list's rule (issue 15).
        "rooms": services.sidebar_rooms(identity=identity, open_room=found) if identity is not None else [],
        "max_message_length": settings.CHAT_MAX_MESSAGE_LENGTH,
        # The moderators' message actions (static/chat/moderate.js); the server checks each.
        "moderator": identity is not None and identity.is_moderator,
    }
    return render(request, "chat/room.html", context)
