"""Routes outside /accounts/: the JSON API and the built-in issuer's JWKS."""

from __future__ import annotations

from django.urls import path

from accounts import api

urlpatterns = [
    path("api/auth/token", api.token, name="api_auth_token"),
    path("api/auth/refresh", api.refresh, name="api_auth_refresh"),
    path("api/auth/revoke", api.revoke, name="api_auth_revoke"),
    path("api/auth/signout-everywhere", api.sign_out_everywhere, name="api_auth_signout_everywhere"),
    path("api/auth/me", api.me, name="api_auth_me"),
    path("api/auth/demo", api.demo_accounts, name="api_auth_demo"),
    path(".well-known/jwks.json", api.jwks, name="jwks"),
]
