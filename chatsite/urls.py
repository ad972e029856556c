"""URL configuration."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from chatsite.ops.prometheus import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),  # Prometheus: bearer METRICS_TOKEN or staff
    path("accounts/", include("accounts.urls")),
    path("", include("accounts.api_urls")),  # /api/auth/*, /.well-known/jwks.json
    path("", include("chat.client_urls")),
    path("", include("search.urls")),  # /api/search (issue 19)
    path("", include("chat.urls")),
    path("", include("unread.urls")),  # /api/notifications
    path("", include("uploads.urls")),  # /api/uploads (issue 18)
]
