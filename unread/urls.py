from __future__ import annotations

from django.urls import path

from unread import views

urlpatterns = [
    path("api/notifications", views.settings_view, name="notifications"),
    path("api/notifications/subscriptions", views.subscribe, name="notifications-subscribe"),
    path("api/notifications/subscriptions/remove", views.unsubscribe, name="notifications-unsubscribe"),
    path("api/notifications/devices", views.device, name="notifications-device"),
    path("api/notifications/rooms", views.room_level, name="notifications-room"),
]
