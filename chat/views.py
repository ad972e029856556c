"""Pages: the room list (with room creation) and a room."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from chat import services
from chat.forms import RoomForm


@login_required
def rooms(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = RoomForm(request.POST)
        if form.is_valid():
            room = services.room_create(
                room_id=form.cleaned_data["room_id"],
                name=form.cleaned_data["name"] or None,
                created_by=str(request.user.pk),
            )
            return redirect("chat:room", room_id=room.room_id)
    else:
        form = RoomForm()
    return render(request, "chat/rooms.html", {"rooms": services.room_list(), "form": form})


@login_required
def room(request: HttpRequest, room_id: str) -> HttpResponse:
    found = services.room_get(room_id)
    if found is None:
        raise Http404("No such room")
    return render(request, "chat/room.html", {"room": found})
