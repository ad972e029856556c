"""A daphne process sets Python's garbage collector for thousands of long-lived sockets at
start (chatsite.ops.collector): start-up's objects frozen out of every collection, full
collections ten times rarer. With the defaults, full collections were about a quarter of a
process's CPU while a restarted peer's sockets reconnected to it."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from chatsite.ops.collector import FULL_EVERY, MIDDLE_EVERY, YOUNG
from tests.e2e.conftest import start_module_server

pytestmark = pytest.mark.timeout(60)

SET = re.compile(r"garbage collector: (\d+) start-up objects frozen; thresholds \((\d+), (\d+), (\d+)\)")


def test_daphne_freezes_its_start_up_objects_and_spaces_out_full_collections(
    tmp_path_factory: pytest.TempPathFactory, migrated_db: Path
) -> None:
    server = start_module_server(tmp_path_factory, migrated_db, LOG_LEVEL="INFO")
    try:
        found = None
        deadline = time.monotonic() + 20
        while found is None and time.monotonic() < deadline:
            found = SET.search(server.log())
            if found is None:
                time.sleep(0.1)
    finally:
        server.stop()
    assert found is not None, server.log()[-2000:]
    frozen, *thresholds = (int(group) for group in found.groups())
    assert frozen > 10_000  # Django, the app and the libraries: hundreds of thousands of objects
    assert thresholds == [YOUNG, MIDDLE_EVERY, FULL_EVERY] and FULL_EVERY > 10
