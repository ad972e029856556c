"""The exact-origin rule (chat.origins), with no server: who may open the chat socket."""

from __future__ import annotations

import pytest

from chat.origins import OriginPolicy, allowed_origin_set, normalize_origin, site_origin

SITE = "http://chat.example:8000"
POLICY = OriginPolicy(allowed=allowed_origin_set(["https://app.example", "http://localhost:5173"]))


def permits(origin: str | None, *, cookie: bool = True, site: str | None = SITE) -> bool:
    return POLICY.permits(origin, site=normalize_origin(site) if site else None, ambient_credential=cookie)


@pytest.mark.parametrize(
    "origin",
    ["http://chat.example:8000", "HTTP://Chat.Example:8000", "https://app.example", "https://app.example:443"],
)
def test_the_site_itself_and_listed_origins_are_accepted_with_the_session_cookie(origin: str) -> None:
    """The page's own origin (case, default ports aside) or an exact CHAT_ALLOWED_ORIGINS entry may use the cookie."""
    assert permits(origin)


@pytest.mark.parametrize(
    "origin",
    [
        "http://chat.example:8001",  # another port of the same host
        "https://chat.example:8000",  # https vs http
        "http://chat.example",  # default port 80 is another origin
        "http://chat.example.evil.example:8000",  # a look-alike host
        "http://sub.chat.example:8000",  # a sub-domain
        "http://app.example",  # a listed origin's http twin
        "https://app.example:8443",  # a listed origin on another port
        "https://evil.app.example",
        "null",
        "",
        "http://chat.example:8000/path",
        "http://user@chat.example:8000",
        "ws://chat.example:8000",
        "file://",
        "http://chat.example:99999",
    ],
)
def test_look_alikes_are_refused_whatever_the_credential(origin: str) -> None:
    """Another port, scheme, host or sub-domain, `null`, or a malformed origin is refused, with a cookie or a token."""
    assert not permits(origin, cookie=True)
    assert not permits(origin, cookie=False)


def test_no_origin_is_refused_with_the_cookie_and_accepted_without() -> None:
    """No Origin: a browser page cannot be told apart, so the session cookie needs one; a token client needs none."""
    assert not permits(None, cookie=True)
    assert permits(None, cookie=False)


def test_a_host_the_site_does_not_answer_to_makes_no_site_origin() -> None:
    """With no valid Host the only allowed origins are the listed ones."""
    assert not permits("http://chat.example:8000", site=None)
    assert permits("https://app.example", site=None)


def test_the_site_origin_is_the_handshake_url_as_a_page_origin() -> None:
    assert site_origin("ws", "chat.example:8000") == "http://chat.example:8000"
    assert site_origin("wss", "chat.example") == "https://chat.example:443"
    assert site_origin("ws", "[::1]:8000") == "http://[::1]:8000"
    assert site_origin("ws", None) is None
    assert site_origin("gopher", "chat.example") is None


@pytest.mark.parametrize("entry", ["*", ".example.com", "example.com", "https://example.com/app", "null"])
def test_a_setting_entry_that_is_not_an_exact_origin_is_refused(entry: str) -> None:
    """Host patterns and wildcards are not origins: the setting is refused at start-up, naming the entry."""
    with pytest.raises(ValueError, match="not an exact origin"):
        allowed_origin_set([entry])
