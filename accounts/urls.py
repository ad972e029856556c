from __future__ import annotations

from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", views.sign_in, name="login"),
    path("logout/", views.sign_out, name="logout"),
    path("logout/everywhere/", views.sign_out_everywhere, name="logout_everywhere"),
    path("signup/", views.signup, name="signup"),
    path("cognito/authorize/", views.hosted_ui, name="cognito_authorize"),
    path("cognito/callback/", views.hosted_ui_callback, name="cognito_callback"),
]
