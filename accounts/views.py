"""Sign-in pages: built-in accounts, or Cognito (a password form and the Hosted UI).

Without Cognito, sign-in and sign-out are Django's own views and sign-up makes a local
account. With Cognito, the sign-in form sends the password to InitiateAuth, the Hosted UI
runs the authorization code flow with PKCE, and either way the tokens are verified like
any other, mapped to a user by `accounts.users`, and a Django session follows.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts import auth, cognito, demo, sessions, throttle
from accounts.forms import CognitoSignInForm, SignUpForm
from accounts.tokens import Rejection, TokenRejected, TokenSet

SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"
OAUTH_SESSION_KEY = "cognito_oauth"


def _next_url(request: HttpRequest, candidate: str | None = None) -> str:
    candidate = candidate or request.POST.get("next") or request.GET.get("next")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _user_from(tokens: TokenSet, *, via: str, client: str | None, nonce: str | None = None) -> Any:
    """Verify Cognito's answer like any other token, then map it to a user."""
    use_id = "id" in settings.AUTH_TOKEN_USES
    verified = auth.verify(tokens.id_token if use_id else tokens.access_token, via=via, client=client)
    if use_id and nonce is not None and verified.claims.get("nonce") != nonce:
        raise TokenRejected(Rejection.MALFORMED, "the ID token's nonce is not the one this session sent")
    return auth.user_for(verified, via=via, client=client)


class ThrottledLoginView(auth_views.LoginView):
    """Django's sign-in page, throttled (accounts/throttle.py): a throttled attempt gets the
    form back with 429 and Retry-After before its password is checked."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", ""))[:150]
        refused = throttle.check(username=username or None, address=throttle.client_address(request))
        if refused is not None:
            form = self.get_form_class()(request, initial={"username": username})
            response = self.render_to_response(self.get_context_data(form=form, throttled=refused.message))
            response.status_code = 429
            response["Retry-After"] = str(refused.retry_after)
            return response
        return super().post(request, *args, **kwargs)  # type: ignore[no-any-return]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        # The embedded default's demo accounts, named with their password (never in production).
        return {**super().get_context_data(**kwargs), "demo_hint": demo.sign_in_hint()}

    def form_invalid(self, form: Any) -> HttpResponse:
        # A sign-in that got as far as a password check and failed (a form without both
        # fields never reached the hasher, and is not counted).
        username = form.cleaned_data.get("username")
        if username and form.cleaned_data.get("password"):
            throttle.failed(username=username, address=throttle.client_address(self.request))
        return super().form_invalid(form)  # type: ignore[no-any-return]

    def form_valid(self, form: Any) -> HttpResponse:
        throttle.succeeded(username=form.get_user().get_username())
        return super().form_valid(form)  # type: ignore[no-any-return]


def sign_in(request: HttpRequest) -> HttpResponseBase:
    config = cognito.CognitoConfig.from_settings()
    if config is None:
        return ThrottledLoginView.as_view()(request)
    form = CognitoSignInForm(request.POST if request.method == "POST" else None)
    error = None
    refused = None
    if request.method == "POST" and form.is_valid():
        refused = throttle.check(username=form.cleaned_data["username"], address=throttle.client_address(request))
    if refused is not None:
        error = refused.message
    elif request.method == "POST" and form.is_valid():
        client = request.META.get("REMOTE_ADDR")
        try:
            tokens = cognito.password_auth(
                config, username=form.cleaned_data["username"], password=form.cleaned_data["password"]
            )
            user = _user_from(tokens, via="signin", client=client)
        except cognito.ChallengeRequired as exc:
            error = f"Cognito asks for one more step ({exc.challenge})."
            error += " Use the Hosted UI to finish signing in." if config.domain else ""
        except cognito.CognitoError as exc:
            error = "Wrong username or password." if exc.bad_credentials else "Sign-in is unavailable, retry shortly."
            if exc.bad_credentials:
                throttle.failed(username=form.cleaned_data["username"], address=throttle.client_address(request))
        except TokenRejected:
            error = "The identity provider's answer could not be verified."
        else:
            throttle.succeeded(username=form.cleaned_data["username"])
            login(request, user, backend=SESSION_BACKEND)
            return redirect(_next_url(request))
    response = render(
        request,
        "accounts/cognito_login.html",
        {"form": form, "error": error, "hosted_ui": bool(config.domain), "next": request.GET.get("next", "")},
        status=429 if refused is not None else 401 if error else 200,
    )
    if refused is not None:
        response["Retry-After"] = str(refused.retry_after)
    return response


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    config = cognito.CognitoConfig.from_settings()
    if config is not None and config.domain:
        # The Hosted UI keeps its own session; ending it is a navigation to Cognito. A page
        # with a link, not a redirect: the pages' CSP (form-action 'self') would block a
        # redirect to another origin at the end of this form post.
        logout_uri = request.build_absolute_uri(reverse("login"))
        return render(
            request, "accounts/signed_out.html", {"hosted_logout": cognito.logout_url(config, logout_uri=logout_uri)}
        )
    return redirect(settings.LOGOUT_REDIRECT_URL)


@require_POST
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    """End every session of this user (this one too), every refresh token, every socket."""
    if request.user.is_authenticated:
        sessions.sign_out_everywhere(request)
    return redirect(settings.LOGOUT_REDIRECT_URL)


def signup(request: HttpRequest) -> HttpResponse:
    if cognito.CognitoConfig.from_settings() is not None:
        # Accounts live in the user pool; the Hosted UI has its own sign-up page.
        return redirect("login")
    if request.method == "POST":
        form = SignUpForm(request.POST)
        refused = throttle.signup_check(address=throttle.client_address(request))
        if refused is not None:
            # Before the form is validated: no password is hashed for a refused sign-up.
            response = render(
                request, "registration/signup.html", {"form": SignUpForm(), "throttled": refused.signup_message}
            )
            response.status_code = 429
            response["Retry-After"] = str(refused.retry_after)
            return response
        if form.is_valid():
            user = form.save()
            throttle.signed_up(address=throttle.client_address(request))
            login(request, user, backend=SESSION_BACKEND)
            return redirect("chat:rooms")
    else:
        form = SignUpForm()
    return render(request, "registration/signup.html", {"form": form})


def _callback_uri(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("cognito_callback"))


@require_GET
def hosted_ui(request: HttpRequest) -> HttpResponse:
    """Start the authorization code flow: remember state, nonce and PKCE verifier, go to Cognito."""
    config = cognito.CognitoConfig.from_settings()
    if config is None or not config.domain:
        return redirect("login")
    verifier, challenge = cognito.pkce_pair()
    pending = {
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "verifier": verifier,
        "next": _next_url(request),
    }
    request.session[OAUTH_SESSION_KEY] = pending
    return redirect(
        cognito.authorize_url(
            config,
            redirect_uri=_callback_uri(request),
            state=pending["state"],
            code_challenge=challenge,
            nonce=pending["nonce"],
        )
    )


@require_GET
def hosted_ui_callback(request: HttpRequest) -> HttpResponse:
    config = cognito.CognitoConfig.from_settings()
    if config is None or not config.domain:
        return redirect("login")
    pending = request.session.pop(OAUTH_SESSION_KEY, None)

    def failed(message: str) -> HttpResponse:
        return render(request, "accounts/cognito_error.html", {"message": message}, status=400)

    if request.GET.get("error"):
        return failed("Cognito did not sign you in.")
    state, code = request.GET.get("state", ""), request.GET.get("code", "")
    if not isinstance(pending, dict) or not state or not constant_time_compare(state, pending.get("state", "")):
        return failed("This sign-in link is stale or was not started here. Please try again.")
    if not code or len(code) > 2048:
        return failed("Cognito sent no authorization code.")
    client = request.META.get("REMOTE_ADDR")
    try:
        tokens = cognito.exchange_code(
            config, code=code, code_verifier=pending["verifier"], redirect_uri=_callback_uri(request)
        )
        user = _user_from(tokens, via="hosted-ui", client=client, nonce=pending["nonce"])
    except cognito.CognitoError:
        return failed("Cognito refused the sign-in. Please try again.")
    except TokenRejected:
        return failed("The identity provider's answer could not be verified.")
    login(request, user, backend=SESSION_BACKEND)
    return redirect(_next_url(request, pending.get("next")))
