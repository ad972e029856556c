"""Django admin with Chatsite's moderation pages: INSTALLED_APPS names this in place of
"django.contrib.admin", so `admin.site` is `chat.admin_site.ModerationAdminSite`.

A module of its own: INSTALLED_APPS imports it before any model is loaded, so it may not
import the site (which imports models) itself; Django imports `default_site` later.
"""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class ChatAdminConfig(AdminConfig):
    default_site = "chat.admin_site.ModerationAdminSite"
