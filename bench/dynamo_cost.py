"""What Chatsite asks of DynamoDB: requests and capacity units per message sent, per socket
connected and per idle socket-hour (issue 22, goal 4).

Not part of `make bench`: run it on its own.

    python -m bench.dynamo_cost                  # 20 rooms of 10, 400 messages
    python -m bench.dynamo_cost --rooms 5 --members 4 --messages 50 --json out.json

It starts a moto server process on a free loopback port (the AWS stand-in the tests use),
creates the three tables, and runs Chatsite's real ASGI application in this process on the
DynamoDB backend (sessions and users in a scratch SQLite database, the in-memory channel
layer), driven through channels' WebsocketCommunicator. bench.dynamo_meter counts every
request the store's boto3 client makes, at the boto3 level, and computes the capacity units
AWS would bill from the items' sizes (see that module for the rules).

Three stretches are counted apart:

1. Connect: every member opens a socket signed in by its session cookie and joins its room
   (a fresh join, no lastSeq): per socket.
2. Messages: senders drawn at random from each room's members send one message each, with a
   clientMessageId, one at a time; the stretch ends once every member socket has every
   message (so gap reads by the fan-out, if any, are in it): per message.
3. Idle: the sockets stay open and silent for a simulated hour: the connection keeper's
   heartbeat is run as it would be over an hour on a clock the bench drives
   (`LocalSockets.tick`), every CHAT_CONNECTION_HEARTBEAT_SECONDS; per socket-hour. On a
   keeper without a tick of its own (before issue 22.4), one heartbeat is counted and
   multiplied by the heartbeats in an hour. The keeper's own timer is off throughout, so no
   heartbeat lands in the other stretches; the bench runs the process's first beat before
   the sockets open (a live process has beaten before: its cost is per process, not per
   socket, and is in the idle hour).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.dynamo_meter import DynamoMeter, Tally

ROOT = Path(__file__).resolve().parent.parent
MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))
REGION = "us-east-1"
WAIT = 30.0  # seconds any one frame may take to arrive before the bench gives up


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    log = (log_dir / "moto.log").open("wb")
    proc = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}; see {log_dir / 'moto.log'}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError("moto_server did not answer within 60 s")


def setup_django(data_dir: Path, endpoint: str, prefix: str) -> None:
    for key in [k for k in os.environ if k.startswith(("CHAT_", "REDIS_", "DYNAMODB_", "DATABASE_"))]:
        del os.environ[key]
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "CHATSITE_DATA_DIR": str(data_dir),
            "LOG_LEVEL": "WARNING",
            "CHAT_STORAGE_BACKEND": "dynamodb",
            "DYNAMODB_CONNECTIONS_TABLE": f"{prefix}Connections",
            "DYNAMODB_MESSAGES_TABLE": f"{prefix}Messages",
            "DYNAMODB_ROOMS_TABLE": f"{prefix}Rooms",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_users(count: int) -> list[bytes]:
    """`count` users, each with a session cookie header value."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    cookies = []
    for i in range(count):
        user = get_user_model().objects.create_user(username=f"bench-{i}")
        client = Client()
        client.force_login(user)
        cookies.append(f"sessionid={client.cookies['sessionid'].value}".encode())
    return cookies


# The highest message seq each socket has seen, per room (acks of its own sends included:
# a sender gets no message frame of its own message).
seen: dict[int, dict[str, int]] = {}


async def receive_until(comm: Any, kind: str, **fields: Any) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        while True:
            frame: dict[str, Any] = await comm.receive_json_from(timeout=WAIT)
            if frame.get("type") in {"message", "ack"} and "seq" in frame:
                mine = seen.setdefault(id(comm), {})
                mine[frame["roomId"]] = max(mine.get(frame["roomId"], 0), frame["seq"])
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame


async def _no_keeper(self: Any) -> None:
    await asyncio.Event().wait()  # a keeper task that never ticks (cancelled at the end)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.conf import settings

    from chat import connections, services
    from chat.storage import get_store, schema
    from chat.storage.dynamodb import ensure_tables, make_client
    from chatsite.asgi import application

    names = schema.TableNames(
        connections=settings.DYNAMODB_CONNECTIONS_TABLE,
        messages=settings.DYNAMODB_MESSAGES_TABLE,
        rooms=settings.DYNAMODB_ROOMS_TABLE,
    )
    await sync_to_async(ensure_tables)(make_client(region=REGION), names, poll_seconds=0.05)
    rooms = [f"room-{r}" for r in range(args.rooms)]
    for room in rooms:
        await sync_to_async(services.room_create)(room_id=room, name=room)
    cookies = await sync_to_async(make_users)(args.rooms * args.members)
    # The keeper's own timer stays off: a heartbeat in the middle of the messages would be
    # counted as theirs (the stretches take minutes against moto). The bench runs it.
    connections.LocalSockets._keep = _no_keeper  # type: ignore[method-assign]
    registry = connections.local_sockets()
    if hasattr(registry, "tick"):
        await registry.tick()  # the process's first beat, as its first socket would start it
    store = get_store()
    meter = DynamoMeter(store.client, tables=names, shadow=make_client(region=REGION))
    meter.take()  # the setup is not counted

    # 1. Connect and join.
    members: dict[str, list[Any]] = {room: [] for room in rooms}
    sockets = []
    for i, cookie in enumerate(cookies):
        room = rooms[i % args.rooms]
        comm = WebsocketCommunicator(
            application,
            "/ws/",
            headers=[(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), (b"cookie", cookie)],
        )
        connected, _ = await comm.connect(timeout=WAIT)
        assert connected, "socket refused"
        await comm.send_json_to({"action": "ping"})
        await receive_until(comm, "pong")  # the socket's row is written once it answers
        sockets.append(comm)
        members[room].append(comm)
    connected_tally = meter.take()
    for room, comms in members.items():
        for comm in comms:
            await comm.send_json_to({"action": "joinRoom", "roomId": room})
            await receive_until(comm, "joined", roomId=room)
    joined_tally = meter.take()

    # 2. Messages.
    rng = random.Random(22)
    last: dict[str, int] = {}
    for n in range(args.messages):
        room = rooms[n % args.rooms]
        sender = rng.choice(members[room])
        await sender.send_json_to(
            {"action": "sendMessage", "roomId": room, "message": f"message {n} " + "x" * 60, "clientMessageId": f"c{n}"}
        )
        ack = await receive_until(sender, "ack", clientMessageId=f"c{n}")
        last[room] = ack["seq"]
    for room, comms in members.items():
        for comm in comms:
            while seen.get(id(comm), {}).get(room, 0) < last.get(room, 0):
                await receive_until(comm, "message", roomId=room)
    message_tally = meter.take()
    if hasattr(registry, "tick"):
        # The keeper's timer was off during the messages; a live process has beaten all along.
        await registry.tick()
        meter.take()

    # 3. Idle for an hour.
    heartbeat = settings.CHAT_CONNECTION_HEARTBEAT_SECONDS
    ticks = int(3600 / heartbeat)
    if hasattr(registry, "tick"):
        start = time.time()
        for i in range(1, ticks + 1):
            await registry.tick(now=start + i * heartbeat)
        idle_tally = meter.take()
        idle_method = f"{ticks} keeper ticks on a driven clock, {heartbeat:g} s apart"
    else:
        await registry._heartbeat()  # type: ignore[attr-defined]
        one = meter.take()
        idle_tally = Tally(
            requests=type(one.requests)({op: n * ticks for op, n in one.requests.items()}),
            rcu=one.rcu * ticks,
            wcu=one.wcu * ticks,
            gsi_wcu=one.gsi_wcu * ticks,
        )
        idle_method = f"one heartbeat x {ticks} (every {heartbeat:g} s)"

    for comm in sockets:
        await comm.disconnect(timeout=WAIT)
    closed_tally = meter.take()
    meter.detach()
    count = len(sockets)
    return {
        "shape": {"rooms": args.rooms, "members": args.members, "messages": args.messages, "sockets": count},
        "per_socket_connected": connected_tally.per(count),
        "per_socket_joined": joined_tally.per(count),
        "per_message": message_tally.per(args.messages),
        "per_idle_socket_hour": idle_tally.per(count),
        "idle_method": idle_method,
        "per_socket_closed": closed_tally.per(count),
    }


def print_report(result: dict[str, Any]) -> None:
    shape = result["shape"]
    print(
        f"DynamoDB cost, {shape['rooms']} rooms of {shape['members']}, {shape['messages']} messages, "
        f"{shape['sockets']} sockets (moto; units computed from item sizes)"
    )
    print(f"{'':24} {'reads':>6} {'writes':>6} {'RCU':>7} {'WCU':>7} {'GSI WCU':>8}  requests")
    for label in (
        "per_message",
        "per_socket_connected",
        "per_socket_joined",
        "per_idle_socket_hour",
        "per_socket_closed",
    ):
        row = result[label]
        ops = ", ".join(f"{op} {n:g}" for op, n in row["requests"].items())
        print(
            f"{label:24} {row['read_requests']:6.2f} {row['write_requests']:6.2f} "
            f"{row['rcu']:7.2f} {row['wcu']:7.2f} {row['gsi_wcu']:8.2f}  {ops}"
        )
    print(f"idle hour: {result['idle_method']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dynamo-cost-") as scratch:
        data_dir = Path(scratch)
        proc, endpoint = start_moto(data_dir)
        try:
            setup_django(data_dir, endpoint, prefix=f"cost-{uuid.uuid4().hex[:8]}-")
            result = asyncio.run(run(args))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
