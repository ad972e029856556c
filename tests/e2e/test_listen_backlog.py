"""daphne's listening socket takes a backlog a reconnect storm does not overflow
(chat.daphne_adapt.listening): Twisted's 50 dropped the handshakes of thousands of sockets
reconnecting at once, and some hung until the balancer's 60 s timeout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from chat.daphne_adapt.listening import BACKLOG
from tests.e2e.conftest import start_module_server

pytestmark = pytest.mark.timeout(60)


def test_daphne_listens_with_the_storm_sized_backlog(
    tmp_path_factory: pytest.TempPathFactory, migrated_db: Path
) -> None:
    """The kernel reports the listening socket's backlog as 4096 (or net.core.somaxconn, if lower), not 50."""
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("no `ss` (iproute2) to read a listening socket's backlog")
    server = start_module_server(tmp_path_factory, migrated_db)
    try:
        listing = subprocess.run(
            [ss, "-Hltn", f"sport = :{server.port}"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.split()
    finally:
        server.stop()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert listing[0] == "LISTEN", listing
    assert int(listing[2]) == min(BACKLOG, somaxconn), listing  # Send-Q of a listening socket: its backlog
