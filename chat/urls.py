from __future__ import annotations

from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.rooms, name="rooms"),
    path("rooms/<slug:room_id>/", views.room, name="room"),
]
