"""The benchmark measures what it says: run with `.venv/bin/pytest bench/tests`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import run
from bench.loadgen import percentile, room_names

ROOT = Path(__file__).resolve().parents[2]


def test_percentile_is_nearest_rank_in_ms() -> None:
    """p50/p99 of ns samples are nearest-rank values in milliseconds; none for no samples."""
    samples = sorted(i * 1_000_000 for i in range(1, 101))  # 1..100 ms
    assert percentile(samples, 0.50) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile(samples, 1.0) == 100.0
    assert percentile([], 0.5) is None


def test_room_names_are_valid_chatsite_room_ids() -> None:
    """Every room the plan needs is a valid Chatsite room id, distinct per shape."""
    from chat.protocol import ROOM_ID_RE

    names = room_names(10, 10) + room_names(1, 1000)
    assert len(set(names)) == 11
    assert all(ROOM_ID_RE.match(n) for n in names)


def test_profile_summary_charges_samples_per_unit(tmp_path: Path) -> None:
    """Collapsed stacks become µs per delivery: share of samples times CPU per delivery."""
    raw = tmp_path / "p.raw"
    raw.write_text(
        "run (daphne/server.py:1);send (channels/layers.py:10) 3\n"
        "run (daphne/server.py:1);dumps (json/__init__.py:5) 1\n"
    )
    text = run.summarise_profile(raw, cpu_s=0.4, units=1000)  # 400 µs per delivery
    assert "400.0 µs each" in text
    assert "300.0  75.0%  send (channels/layers.py)" in text
    assert "100.0  25.0%  dumps (json/__init__.py)" in text


def test_profile_summary_charges_a_trip_to_the_function_sent_off_the_loop(tmp_path: Path) -> None:
    """On a worker thread a sample belongs to the function sent there (past the store-call wrappers); on the
    loop to the innermost Chatsite frame; anything else is marked as outside Chatsite."""
    thread = "_WorkItem.run (concurrent/futures/thread.py:58);run_child (asgiref/sync.py:560)"
    raw = tmp_path / "p.raw"
    raw.write_text(
        f"{thread};_guarded (chat/services.py:68);_connection_admit (chat/services.py:9);execute (django/db/a.py:1) 2\n"
        "run (daphne/server.py:1);connect (chat/consumers.py:5);encode (chat/protocol.py:7);dumps (json/a.py:1) 1\n"
        "run (daphne/server.py:1);select (selectors.py:3) 1\n"
    )
    text = run.summarise_profile(raw, cpu_s=4.0, units=1000, unit="connect")  # 4 ms per connect
    assert "2000.0  50.0%  thread: _connection_admit (chat/services.py)" in text
    assert "1000.0  25.0%  loop: encode (chat/protocol.py)" in text
    assert "1000.0  25.0%  loop: (not Chatsite) select (selectors.py)" in text


def _row(server: str, kind: str, rate: float, **values: Any) -> dict[str, Any]:
    load = {"kind": kind, "rooms": 1, "members_per_room": 1000, "senders": 10, "target_rate": rate}
    return {"server": server, "load": load, **values}


def test_ratios_compare_chatsite_with_both_peers_at_the_same_load() -> None:
    """Ratios pair rows by shape and rate; Chatsite over the tutorial peer and over bare."""
    rows = [
        _row("chatsite", "ramp_step", 1.0, deliveries_per_s=500.0),
        _row("tutorial", "ramp_step", 1.0, deliveries_per_s=250.0),
        _row("bare", "ramp_step", 1.0, deliveries_per_s=1000.0),
        _row("bare", "ramp_step", 16.0, deliveries_per_s=16000.0),
    ]
    items = [i for i in run.ratios(rows) if i["metric"] == "deliveries_per_s"]
    assert items == [
        {
            "load": "fixed 1x1000 @1",
            "metric": "deliveries_per_s",
            "server": "chatsite",
            "value": 500.0,
            "tutorial": 250.0,
            "bare": 1000.0,
            "vs_tutorial": 2.0,
            "vs_bare": 0.5,
        }
    ]


def test_the_search_feed_table_compares_each_on_run_with_its_pairs_off_run() -> None:
    """--search-feed runs off, on, on, off: each on run against the off run of its own pair
    (the first on against the first off, the second against the last), the database's CPU
    added to daphne's."""
    runs = [(False, 500.0, None), (True, 600.0, None), (True, 440.0, 110.0), (False, 400.0, 100.0)]
    rows = [
        {"server": "chatsite", "search_feed": feed, "server_cpu_us_per_delivery": cpu, "db_cpu_us_per_delivery": db}
        for feed, cpu, db in runs
    ]
    lines = run.search_feed_table(rows).splitlines()[1:]
    assert [line.split()[1] for line in lines] == ["off", "on", "on", "off"]
    assert lines[1].endswith("+20.0 %") and lines[2].endswith("+10.0 %")
    assert not lines[0].endswith("%") and not lines[3].endswith("%")


@pytest.fixture
def bare_server(tmp_path: Path) -> Iterator[run.Server]:
    server = run.start_server("bare", tmp_path, None, None)
    yield server
    server.stop()


def test_loadgen_counts_every_delivery_against_the_bare_server(bare_server: run.Server, tmp_path: Path) -> None:
    """Against a server that loses nothing, every message reaches every member once, timed."""
    loads = [
        {"kind": "idle", "rooms": 2, "members": 5, "keep": True},
        {"kind": "fixed", "rooms": 2, "members": 5, "senders": 2, "rate": 20, "duration": 0.5, "drain_s": 3},
    ]
    rows = run.run_loadgen(bare_server, loads, tmp_path, pin=False, budget_s=30, settle_max_s=2)
    idle, fixed = rows
    assert idle["connections"] == 10 and idle["connect_failures"] == 0
    assert idle["rss_per_idle_conn_kb"] is not None and idle["connect_per_s"] > 0
    assert fixed["messages_sent"] == 10
    assert fixed["expected"] == 50  # 10 messages, each to the 5 members of its room
    assert (fixed["received"], fixed["lost"], fixed["duplicates"]) == (50, 0, 0)
    assert 0 < fixed["p50_ms"] <= fixed["p99_ms"] < 1000
    assert fixed["held"] is True


def test_loadgen_reports_loss_when_nobody_answers(tmp_path: Path) -> None:
    """A server that accepts sockets but never delivers shows every delivery as lost."""
    script = tmp_path / "mute.py"
    script.write_text(
        "import asyncio, sys\n"
        "from websockets.asyncio.server import serve\n"
        "async def handler(ws):\n"
        "    async for _ in ws:\n"
        "        pass\n"
        "async def main():\n"
        "    async with serve(handler, '127.0.0.1', int(sys.argv[1])):\n"
        "        await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    port = run.free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port)])
    try:
        run.wait_for_port(port, proc)
        server = run.Server(name="mute", protocol="tutorial", procs=[proc], ports=[port])
        loads = [{"kind": "fixed", "rooms": 1, "members": 3, "senders": 1, "rate": 10, "duration": 0.3, "drain_s": 1}]
        (row,) = run.run_loadgen(server, loads, tmp_path, pin=False, budget_s=30, settle_max_s=1)
    finally:
        run.stop(proc)
    assert row["received"] == 0
    assert row["lost"] == row["expected"] == 3 * row["messages_sent"]
    assert row["held"] is False
    json.dumps(row)  # rows are plain JSON


def test_the_typing_profile_types_as_the_typing_plan_does(tmp_path: Path) -> None:
    """`--profile --typing`: the profiled load is goal 5's, every member typing once per 2 s."""
    connect, deliver = run.profile_plan(1, tmp_path, 20, 10, 1, 100, typing=True)
    typing = next(load for load in run.typing_plan() if "typing_every_s" in load)
    assert "typing_every_s" not in connect
    assert deliver["typing_every_s"] == typing["typing_every_s"]
    assert "typing_every_s" not in run.profile_plan(1, tmp_path, 20, 10, 1, 100)[1]
