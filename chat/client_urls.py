"""URLs of the React client: the built app at /app/ and the JSON API it calls."""

from __future__ import annotations

from django.urls import path, re_path

from chat import api, spa

urlpatterns = [
    path("api/rooms", api.rooms, name="api-rooms"),
    re_path(r"^app/(?P<path>.*)$", spa.app, name="app"),
]
