from __future__ import annotations

from django.urls import path

from search import api

urlpatterns = [
    path("api/search", api.search, name="api-search"),
]
