from __future__ import annotations

from django import forms

from chat.protocol import ROOM_ID_RE


class RoomForm(forms.Form):
    room_id = forms.RegexField(
        regex=ROOM_ID_RE,
        max_length=64,
        label="Room id",
        help_text="Lowercase letters, digits, '-' and '_'.",
        error_messages={"invalid": "Use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit."},
    )
    name = forms.CharField(max_length=100, required=False, label="Display name")
