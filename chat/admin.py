"""Admin lists of the moderation records: bans, mutes, reports, the audit log. Read-only.

Every change goes through `chat.moderation` (the pages of chat.admin_views), so it is
audited and reaches live sockets; nothing here adds, edits or deletes a row. Rooms and
messages have pages of their own (the storage adapter holds them, not necessarily the ORM).
Only moderators see any of this: staff without moderator rights do not.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from accounts.users import is_moderator
from chat.moderation_models import AuditLog, Ban, Mute, Report


class ReadOnlyModerationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Visible to moderators only, and never writable from admin's generic views."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff and is_moderator(request.user))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyModerationAdmin):
    list_display = ["at", "actor_username", "action", "room_id", "target", "short_reason"]
    list_filter = ["action"]
    search_fields = ["actor_username", "target", "room_id", "reason"]
    date_hierarchy = "at"
    readonly_fields = ["at", "actor", "actor_username", "action", "room_id", "target", "reason", "details"]

    @admin.display(description="reason")
    def short_reason(self, entry: AuditLog) -> str:
        return Truncator(entry.reason).chars(80)


def _user_link(user: Any) -> str:
    url = reverse("admin:chat_moderation_users") + f"?username={user.get_username()}"
    return format_html('<a href="{}">{}</a>', url, user.get_username())


@admin.register(Ban)
class BanAdmin(ReadOnlyModerationAdmin):
    list_display = ["banned_user", "created_at", "created_by", "expires_at", "lifted_at", "reason"]
    list_filter = ["lifted_at"]
    search_fields = ["user__username", "reason"]
    readonly_fields = ["user", "reason", "created_at", "created_by", "expires_at", "lifted_at", "lifted_by"]

    @admin.display(description="user")
    def banned_user(self, ban: Ban) -> str:
        return _user_link(ban.user)


@admin.register(Mute)
class MuteAdmin(ReadOnlyModerationAdmin):
    list_display = ["muted_user", "room_id", "created_at", "created_by", "expires_at", "lifted_at", "reason"]
    search_fields = ["user__username", "room_id", "reason"]
    readonly_fields = ["user", "room_id", "reason", "created_at", "created_by", "expires_at", "lifted_at", "lifted_by"]

    @admin.display(description="user")
    def muted_user(self, mute: Mute) -> str:
        return _user_link(mute.user)


@admin.register(Report)
class ReportAdmin(ReadOnlyModerationAdmin):
    """The report queue: open reports first, each with a link to the page that works it."""

    list_display = [
        "work",
        "created_at",
        "status",
        "room_id",
        "seq",
        "author_username",
        "excerpt",
        "reporter",
        "reason",
    ]
    list_filter = ["status", "room_id"]
    search_fields = ["author_username", "text", "reason", "reporter__username"]
    ordering = ["-status", "-created_at"]  # "open" sorts after "dismissed"/"resolved": descending puts it first

    @admin.display(description="report")
    def work(self, report: Report) -> str:
        url = reverse("admin:chat_moderation_report", args=[report.pk])
        label = "Work on it" if report.status == Report.OPEN else "View"
        return format_html('<a href="{}">{} #{}</a>', url, label, report.pk)

    @admin.display(description="message")
    def excerpt(self, report: Report) -> str:
        return Truncator(report.text).chars(80)
