from __future__ import annotations

from django.urls import path

from uploads import views

app_name = "uploads"

urlpatterns = [
    path("api/uploads", views.slots, name="slots"),
    path("api/uploads/<str:upload_id>", views.detail, name="detail"),
    path("api/uploads/<str:upload_id>/data", views.receive, name="receive"),
    path("api/uploads/<str:upload_id>/complete", views.complete, name="complete"),
    path("api/uploads/<str:upload_id>/<str:kind>", views.download, name="download"),
]
