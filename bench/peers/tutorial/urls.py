"""No HTTP pages: the peer serves only its WebSocket."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
