"""Pages: the room list (with room creation) and a room."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render

from accounts.identity import identity_from_user
from accounts.refusals import refusal_for
from chat import people, services
from chat.errors import ChatError, ErrorCode
from chat.forms import RoomForm


@login_required
def rooms(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        refusal = refusal_for(request.user)
        if refusal is not None:  # a banned user creates no room (the /api/ answer, as a page)
            return HttpResponseForbidden(f"{refusal.message}. Reason: {refusal.reason}", content_type="text/plain")
        form = RoomForm(request.POST)
        identity = identity_from_user(request.user)
        if form.is_valid() and identity is not None:
            try:
                room = people.room_create_named(
                    identity=identity, name=form.cleaned_data["name"], private=form.cleaned_data["private"]
                )
            except ChatError as error:
                on_name = error.code in (ErrorCode.ROOM_NAME_TAKEN, ErrorCode.EMPTY_ROOM_NAME, ErrorCode.INVALID_FIELD)
                form.add_error("name" if on_name else None, error.message)
            else:
                return redirect("chat:room", room_id=room.room_id)
    else:
        form = RoomForm()
    identity = identity_from_user(request.user)
    rooms = services.sidebar_rooms(identity=identity) if identity is not None else []
    context = {"rooms": rooms, "form": form, "max_message_length": settings.CHAT_MAX_MESSAGE_LENGTH}
    return render(request, "chat/rooms.html", context)


@login_required
def room(request: HttpRequest, room_id: str) -> HttpResponse:
    found = services.room_get(room_id)
    # A private room is not there for a non-member (its name included).
    identity = identity_from_user(request.user)
    if found is None or not services.room_readable(room=found, identity=identity):
        # A page with a way back, not Django's 404 page; still a 404 (issue 20).
        missing = {"room": None, "rooms": services.sidebar_rooms(identity=identity) if identity is not None else []}
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
