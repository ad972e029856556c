"""chat.daphne_adapt: checked against the pinned versions, and refusing any other."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from chat import daphne_adapt

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def pinned(name: str) -> str | None:
    """The version requirements.txt pins for `name` (case-insensitive), or None."""
    for line in REQUIREMENTS.read_text().splitlines():
        found = re.match(rf"^\s*{re.escape(name)}==([^\s;#]+)", line, re.IGNORECASE)
        if found:
            return found.group(1)
    return None


def test_the_adaptations_were_checked_against_the_pinned_versions() -> None:
    """A new pin of daphne, Twisted or autobahn fails here until the adaptations are re-checked
    and CHECKED_VERSIONS says so."""
    assert {name: pinned(name) for name in daphne_adapt.CHECKED_VERSIONS} == daphne_adapt.CHECKED_VERSIONS


def test_the_installed_versions_are_the_checked_ones() -> None:
    """The environment runs what the adaptations were checked against (install would refuse otherwise)."""
    assert daphne_adapt.unchecked_versions(daphne_adapt.installed_versions()) == {}


def test_an_unknown_version_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under daphne, a version the adaptations were not checked against stops start-up with a clear message."""
    monkeypatch.setattr(daphne_adapt, "_installed", None)
    monkeypatch.setitem(sys.modules, "daphne.server", sys.modules.get("daphne.server") or object())
    monkeypatch.setattr(
        daphne_adapt, "installed_versions", lambda: {**daphne_adapt.CHECKED_VERSIONS, "Twisted": "99.1"}
    )
    with pytest.raises(ImproperlyConfigured, match=r"Twisted 99\.1"):
        daphne_adapt.install(on_shutdown=lambda: None)
    assert daphne_adapt._installed is None


def test_outside_daphne_nothing_is_adapted(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests and manage.py commands are not served by daphne: install does nothing."""
    monkeypatch.setattr(daphne_adapt, "_installed", None)
    monkeypatch.delitem(sys.modules, "daphne.server", raising=False)
    assert daphne_adapt.install(on_shutdown=lambda: None) is None


def test_a_missing_internal_turns_shared_frames_off_once(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    """A changed autobahn attribute logs one error for the process and sends the ASGI way, not an
    exception per socket per message."""
    from chat.daphne_adapt import frames

    monkeypatch.setattr(frames, "_enabled", True)

    class Protocol:  # an autobahn without the attributes the short way reads
        pass

    writers = [frames.FrameWriter(Protocol()) for _ in range(3)]
    with caplog.at_level("ERROR", logger="chat.daphne_adapt.frames"):
        results = [writer.write(frames.text_frame("hi")) for writer in writers for _ in range(2)]
    assert results == [False] * 6
    assert len([r for r in caplog.records if "shared frames turned off" in r.getMessage()]) == 1


def test_the_send_buffer_bound_says_when_it_cannot_measure(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    """A transport without Twisted's buffer attributes is reported (once per type), never skipped silently."""
    from types import SimpleNamespace

    from chat.daphne_adapt import sendbuffer

    monkeypatch.setattr(sendbuffer, "_unmeasured", set())

    class OddTransport:
        pass

    with caplog.at_level("ERROR", logger="chat.daphne_adapt.sendbuffer"):
        for _ in range(3):
            assert sendbuffer.over_limit(SimpleNamespace(transport=OddTransport())) is False
    assert len([r for r in caplog.records if "send-buffer bound off" in r.getMessage()]) == 1


def test_autobahns_per_connection_debug_line_is_formatted_only_when_shown() -> None:
    """The options autobahn logs at debug on every connection are pretty-printed only if the line is rendered."""
    import autobahn.websocket.protocol as autobahn_protocol

    from chat.daphne_adapt import lazylog

    assert lazylog.install()
    formatted: list[object] = []

    class Options(list[object]):
        def __repr__(self) -> str:
            formatted.append(self)
            return "options"

    value = autobahn_protocol.pformat(Options([1]))
    assert formatted == []  # nothing formatted for a line nobody shows
    assert f"\n{value}" == "\noptions" and len(formatted) == 1
    assert str(autobahn_protocol.Timings()) == "{}"  # its one other use still returns a str
