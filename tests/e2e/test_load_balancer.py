"""Chatsite behind a load balancer: a real HAProxy in front of daphne processes.

HAProxy (Debian package `haproxy`) gets a config generated here on free loopback ports. It
replaces whatever X-Forwarded-* headers a client sent with its own, as docs/operations.md
asks of any balancer, because daphne --proxy-headers believes the leftmost X-Forwarded-For.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.client import ChatClient, create_room, timeout
from tests.fixtures.servers import DaphneServer, base_env, free_port, wait_for_port

HAPROXY = shutil.which("haproxy") or next(
    (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
)
pytestmark = pytest.mark.skipif(
    HAPROXY is None, reason="HAProxy is not installed (Debian: apt-get install -y haproxy); CI installs it"
)

# What every balancer in front of daphne must do: drop the client's forwarding headers and
# set its own. `option forwardfor` alone appends to a client-sent X-Forwarded-For, whose
# leftmost (forged) entry daphne would then take as the client address.
HAPROXY_CONFIG = """\
global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # An upgraded WebSocket is a tunnel: idle for this long, the balancer cuts it. Clients
    # ping every 25 s, below this and below an AWS ALB's 60 s default.
    timeout tunnel 1h
    timeout client-fin 5s
    retries 3
    option redispatch

frontend chat
    bind 127.0.0.1:{port}
    http-request del-header X-Forwarded-For
    http-request del-header Forwarded
    http-request set-header X-Forwarded-Port %[src_port]
    http-request set-header X-Forwarded-Proto http
    option forwardfor
    default_backend daphne

backend daphne
    balance roundrobin
    # The target check an ALB makes: liveness plus "not draining" (chatsite/ops/health.py).
    option httpchk GET /healthz
{servers}
"""


class HAProxy:
    def __init__(self, backends: list[DaphneServer], workdir: Path) -> None:
        self.port = free_port()
        self.config_path = workdir / f"haproxy-{self.port}.cfg"
        self.log_path = workdir / f"haproxy-{self.port}.log"
        servers = "\n".join(
            f"    server d{i} 127.0.0.1:{b.port} check inter 200ms fall 1 rise 2" for i, b in enumerate(backends)
        )
        # Without `timeout check` a check may take `inter` (200 ms): a busy machine's slow but
        # healthy daphne was taken out of rotation, and round robin sent every socket to the
        # other. A draining or stopped process still fails its check at once (503, refused).
        servers = "    timeout check 3s\n" + servers
        self.config_path.write_text(HAPROXY_CONFIG.format(port=self.port, servers=servers))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    @property
    def origin(self) -> str:
        return self.base_url

    def start(self) -> HAProxy:
        assert HAPROXY is not None
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(self.config_path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config_path)], stdout=log, stderr=log)
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def haproxy_factory(tmp_path: Path) -> Iterator[Callable[[list[DaphneServer]], HAProxy]]:
    started: list[HAProxy] = []

    def start(backends: list[DaphneServer]) -> HAProxy:
        proxy = HAProxy(backends, tmp_path).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[tuple[DaphneServer, HAProxy, str]]:
    """One daphne with --proxy-headers behind HAProxy, an allow-listed app origin, and a signed-in cookie."""
    data_dir = tmp_path_factory.mktemp("proxied")
    shutil.copy(migrated_db, data_dir / "db.sqlite3")
    env = base_env(data_dir, CHAT_ALLOWED_ORIGINS="https://app.example.com")
    server = DaphneServer(data_dir, env, args=("--proxy-headers",)).start()
    proxy = HAProxy([server], data_dir)
    try:
        proxy.start()
        yield server, proxy, server.signup("alice")
    finally:
        proxy.stop()
        server.stop()


def access_log_clients(server: DaphneServer, path: str) -> set[str]:
    """Client addresses daphne logged for requests to `path` (its access log, verbosity 1)."""
    pattern = re.compile(r"^(\S+):\d+ - - \[[^\]]+\] \"\S+ " + re.escape(path) + r"\"", re.MULTILINE)
    return set(pattern.findall(server.log()))


async def test_a_forged_x_forwarded_for_never_becomes_the_client_address(
    proxied: tuple[DaphneServer, HAProxy, str],
) -> None:
    """Behind the balancer daphne sees the address the balancer saw, whatever X-Forwarded-For a client sends."""
    server, proxy, cookie = proxied
    # The client connects from 127.0.0.2 (loopback too), so the address the balancer
    # reports differs from the balancer's own 127.0.0.1 and from the forged one.
    async with websockets.connect(
        proxy.ws_url,
        origin=proxy.origin,  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie, "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Port": "1"},
        local_addr=("127.0.0.2", 0),
        open_timeout=timeout(10),
    ) as ws:
        await ws.send('{"action": "ping"}')
        assert await asyncio.wait_for(ws.recv(), timeout(10)) == '{"type":"pong"}'
    deadline = asyncio.get_running_loop().time() + timeout(5)
    while "127.0.0.2" not in access_log_clients(server, "/ws/"):  # logged as the socket closes
        assert asyncio.get_running_loop().time() < deadline, server.log()[-2000:]
        await asyncio.sleep(0.05)
    assert "203.0.113.9" not in server.log()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("https://app.example.com.evil.example", False),
        ("https://evil-app.example.com", False),
        ("http://app.example.com", False),
        ("https://app.example.com:8443", False),
        ("http://127.0.0.1.evil.example", False),
        ("null", False),
    ],
)
async def test_only_allow_listed_origins_may_open_the_socket(
    proxied: tuple[DaphneServer, HAProxy, str], origin: str, allowed: bool
) -> None:
    """A browser origin opens the chat socket only if it is exactly on the allow-list; look-alikes get 403."""
    _, proxy, cookie = proxied
    connect = websockets.connect(
        proxy.ws_url,
        origin=origin,  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie},
        open_timeout=timeout(10),
    )
    if allowed:
        async with connect as ws:
            await ws.send('{"action": "ping"}')
            assert await asyncio.wait_for(ws.recv(), timeout(10)) == '{"type":"pong"}'
    else:
        with pytest.raises(InvalidStatus) as refused:
            async with connect:
                pass
        assert refused.value.response.status_code == 403


async def resume_until_joined(client: ChatClient, room: str, *, attempts: int = 20) -> None:
    """Reconnect through the balancer and resume, as a browser would, until a process takes us."""
    for attempt in range(attempts):
        with contextlib.suppress(ConnectionError, ConnectionClosed, OSError, TimeoutError, AssertionError):
            await client.reconnect(resume=False)
            await client.resume(room)
            return
        await asyncio.sleep(0.05 * (attempt + 1))
    pytest.fail(f"could not resume through the balancer after {attempts} attempts")


async def answers(client: ChatClient) -> bool:
    """Whether the socket is open and answers a ping (False once it is closed)."""
    try:
        await client.ping()
    except (ConnectionError, ConnectionClosed):
        return False
    return True


async def test_sigterm_closes_sockets_with_1001_and_clients_resume_on_the_other_process(
    daphne_factory: Callable[..., DaphneServer],
    haproxy_factory: Callable[[list[DaphneServer]], HAProxy],
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Stopping one daphne closes its sockets with 1001; they resume on the other with nothing lost."""
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {"REDIS_URL": redis_url, "daphne_args": ("--proxy-headers",), "shared_dir": shared}
    one = daphne_factory(CHAT_INSTANCE_ID="daphne-0", **env)
    two = daphne_factory(CHAT_INSTANCE_ID="daphne-1", **env)
    proxy = haproxy_factory([one, two])
    cookie = one.signup("alice")
    room = f"lb-{uuid.uuid4().hex[:10]}"
    room = create_room(one.base_url, cookie, room)
    # Round robin: consecutive sockets alternate between the two processes.
    clients = [await ChatClient.connect(proxy.ws_url, cookie=cookie, origin=proxy.origin) for _ in range(4)]
    try:
        for client in clients:
            await client.join(room)
        acked: list[int] = []
        for n in range(5):
            ack = await clients[n % 4].send_message(room, f"before {n}")
            acked.append(ack["seq"])

        await asyncio.to_thread(one.stop)  # SIGTERM, and wait for the process to exit

        # A socket of the stopped process is closed, or closes when it is used (its close frame
        # may still be on its way through the balancer); one of the other process answers.
        answered = await asyncio.gather(*map(answers, clients))
        closed = [c for c, alive in zip(clients, answered, strict=True) if not alive]
        assert closed and len(closed) < len(clients), "round robin should have put sockets on both processes"
        assert {c.close_code for c in closed} == {1001}
        for client in closed:
            await resume_until_joined(client, room)
        for n in range(5):
            ack = await clients[n % 4].send_message(room, f"after {n}")
            assert ack["type"] == "ack", ack
            acked.append(ack["seq"])
        for client in clients:
            log = await client.wait_for_seq(room, max(acked))
            assert log.seqs == list(range(1, max(acked) + 1))
            assert log.duplicates == []
    finally:
        for client in clients:
            await client.close()


async def test_a_drain_spreads_1001_closes_and_every_client_resumes_on_the_other_process(
    daphne_factory: Callable[..., DaphneServer],
    haproxy_factory: Callable[[list[DaphneServer]], HAProxy],
    redis_url: str,
    tmp_path: Path,
) -> None:
    """SIGUSR1 drains one process: /healthz goes 503, its sockets close with 1001 spread over the
    window (not at once), and each client resumes on the other process with no gap and no error frame."""
    window = 4.0
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {"REDIS_URL": redis_url, "daphne_args": ("--proxy-headers",), "shared_dir": shared}
    one = daphne_factory(CHAT_INSTANCE_ID="daphne-0", CHAT_DRAIN_SECONDS=str(window), **env)
    two = daphne_factory(CHAT_INSTANCE_ID="daphne-1", CHAT_DRAIN_SECONDS=str(window), **env)
    proxy = haproxy_factory([one, two])
    cookie = one.signup("alice")
    room = f"drain-{uuid.uuid4().hex[:10]}"
    room = create_room(one.base_url, cookie, room)
    clients = [await ChatClient.connect(proxy.ws_url, cookie=cookie, origin=proxy.origin) for _ in range(8)]
    sender = await ChatClient.connect(two.ws_url, cookie=cookie, origin=two.origin)  # never drained
    loop = asyncio.get_running_loop()
    closes: list[tuple[float, int | None]] = []
    error_frames: list[object] = []

    async def follow(client: ChatClient) -> None:
        """Wait for the server to close this socket (if it is on the drained process), then resume."""
        with contextlib.suppress(TimeoutError):
            await client.wait_closed(timeout(3 * window))
        if not client.closed:
            return
        closes.append((loop.time(), client.close_code))
        error_frames.extend(f for f in client.frames if f.get("type") == "error")
        await resume_until_joined(client, room)

    try:
        await sender.join(room)
        for client in clients:
            await client.join(room)
        acked = [(await sender.send_message(room, f"before {n}"))["seq"] for n in range(3)]

        started = loop.time()
        assert one.proc is not None
        one.proc.send_signal(signal.SIGUSR1)
        followers = asyncio.gather(*(follow(c) for c in clients))
        while not followers.done():  # messages keep flowing through the drain
            acked.append((await sender.send_message(room, f"during {len(acked)}"))["seq"])
            await asyncio.sleep(0.2)
        await followers
        for n in range(3):
            acked.append((await clients[n].send_message(room, f"after {n}"))["seq"])

        assert 0 < len(closes) < len(clients), "round robin should have put sockets on both processes"
        assert {code for _, code in closes} == {1001}
        times = sorted(t for t, _ in closes)
        # 4 sockets over 4 s close about a second apart; never all in one burst.
        assert times[-1] - times[0] >= window / 4, [round(t - started, 2) for t in times]
        assert times[-1] - started < window + timeout(3)
        with pytest.raises(urllib.error.HTTPError) as draining:
            urllib.request.urlopen(f"{one.base_url}/healthz", timeout=timeout(5))
        assert draining.value.code == 503
        for client in [*clients, sender]:
            error_frames.extend(f for f in client.frames if f.get("type") == "error")
            log = await client.wait_for_seq(room, max(acked))
            assert log.seqs == list(range(1, max(acked) + 1))
            assert log.duplicates == []
        assert error_frames == []
    finally:
        for client in [*clients, sender]:
            await client.close()
