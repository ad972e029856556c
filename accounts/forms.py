from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User

from accounts.confusables import lookalike


class SignUpForm(UserCreationForm):  # type: ignore[type-arg]
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)

    def clean_username(self) -> str:
        """Refuse a name that passes for an existing user's (accounts/confusables.py)."""
        username: str | None = super().clean_username()
        if username is None:  # Django refused it already (the same name in another case)
            return username  # type: ignore[return-value]
        # Every name is read: sign-up is rare and rate-limited per address (docs/auth.md).
        taken = list(User.objects.values_list("username", flat=True))
        if lookalike(username, taken) is not None:
            raise forms.ValidationError(
                "This username looks too much like an existing one. Choose another.", code="confusable"
            )
        return username


class CognitoSignInForm(forms.Form):
    """Username and password, sent to Cognito's InitiateAuth (never checked or kept here)."""

    username = forms.CharField(max_length=128, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(
        max_length=256, strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
