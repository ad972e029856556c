from __future__ import annotations

from django import forms

from chat.people_rules import ROOM_NAME_MAX


class RoomForm(forms.Form):
    """A room by its name alone: the server derives its id (docs/protocol.md, "Rooms users make")."""

    name = forms.CharField(
        max_length=ROOM_NAME_MAX,
        label="Room name",
        help_text="Its address is made from the name and a few random letters.",
    )
    private = forms.BooleanField(required=False, label="Private: invited people only")
