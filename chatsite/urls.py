"""URL configuration."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("", include("accounts.api_urls")),  # /api/auth/*, /.well-known/jwks.json
    path("", include("chat.client_urls")),
    path("", include("chat.urls")),
]
