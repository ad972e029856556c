"""The admin site: Django's, plus the moderation pages (chat.admin_views).

Rooms and messages are not ORM rows with the DynamoDB backend, so they get pages of their
own that read and write through `chat.moderation` (and so the storage adapter), not
ModelAdmins. Every page here goes through `admin_view`: staff only, CSRF-protected,
never cached; each view then requires moderator rights as well.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse

from accounts.users import is_moderator


class ModerationAdminSite(AdminSite):
    site_header = "Chatsite administration"
    site_title = "Chatsite admin"
    index_title = "Administration"
    index_template = "admin/analytics/index.html"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        """The admin index is the dashboard (analytics.views): figures first, then the apps."""
        from analytics import views as dashboard

        response = super().index(request, {**dashboard.dashboard_context(request), **(extra_context or {})})
        response["Content-Security-Policy"] = dashboard.CONTENT_SECURITY_POLICY
        return response

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from analytics import views as dashboard
        from chat import admin_views as views

        pages = [
            path("analytics/live/", self.admin_view(dashboard.live), name="analytics_live"),
            path("analytics/csv/<slug:chart>/", self.admin_view(dashboard.chart_csv), name="analytics_csv"),
            path("moderation/rooms/", self.admin_view(views.rooms), name="chat_moderation_rooms"),
            path("moderation/rooms/<slug:room_id>/", self.admin_view(views.room), name="chat_moderation_room"),
            path("moderation/users/", self.admin_view(views.users), name="chat_moderation_users"),
            path("moderation/reports/<int:report_id>/", self.admin_view(views.report), name="chat_moderation_report"),
        ]
        # Before Django's own: its catch-all app index would take "moderation/".
        return pages + super().get_urls()

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        if app_label is None and is_moderator(request.user):
            rooms = reverse("admin:chat_moderation_rooms", current_app=self.name)
            entries = [
                ("Rooms and messages", "moderationrooms", rooms),
                ("Users: bans and mutes", "moderationusers", reverse("admin:chat_moderation_users")),
            ]
            apps.insert(
                0,
                {
                    "name": "Moderation",
                    "app_label": "moderation",
                    "app_url": rooms,
                    "has_module_perms": True,
                    "models": [
                        {
                            "name": name,
                            "object_name": object_name,
                            "admin_url": url,
                            "add_url": None,
                            "view_only": False,
                            "perms": {"view": True},
                        }
                        for name, object_name, url in entries
                    ],
                },
            )
        return apps
