"""DynamoDB and the JWKS endpoint failing under a running daphne, through fault proxies.

One daphne process on the DynamoDB backend (the moto server process) reaches DynamoDB
through one fault proxy and the Cognito pool's JWKS through another. botocore's timeouts and
attempts are shortened (DYNAMODB_*), so each fault costs seconds, not minutes.

DynamoDB throttled, slow, refusing or silent: a send is answered with a retryable error
frame (or, when merely slow, a late ack), never acked without a durable write, never shown
to anyone unless stored; its retry with the same clientMessageId stores it exactly once.
The JWKS unreachable on a cold cache: token sign-in fails closed (4401), then recovers.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import websockets
from websockets.typing import Origin, Subprotocol

from chat.storage import schema
from chat.storage.dynamodb import ensure_tables
from tests.e2e.client import new_client_message_id, timeout
from tests.faults.harness import FaultClient, Stored, check_invariants, set_up
from tests.fixtures.aws import REGION, MotoServer
from tests.fixtures.cognito import CognitoPool
from tests.fixtures.faultproxy import FaultProxy
from tests.fixtures.servers import DaphneServer, base_env

pytestmark = pytest.mark.timeout(90)

THROTTLED = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
    b'"message":"Rate of requests exceeds the allowed throughput."}'
)
JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "fault-proxy"}
ROOMS = ["throttled", "slow", "timeout", "refused", "silent", "jwks"]


@dataclass
class Site:
    server: DaphneServer
    dynamodb: FaultProxy  # between daphne and DynamoDB
    jwks: FaultProxy  # between daphne and the pool's JWKS
    cookies: dict[str, str]
    tables: schema.TableNames
    moto: MotoServer

    def read_store(self, room_id: str) -> list[Stored]:
        """The room's messages, read straight from moto (not through the proxy)."""
        client = boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=self.moto.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self.tables.messages,
            "FilterExpression": "#room = :room",
            "ExpressionAttributeNames": {"#room": "roomId"},
            "ExpressionAttributeValues": {":room": {"S": room_id}},
        }
        for _page in range(100):
            page = client.scan(**request)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        stored = [
            Stored(
                seq=int(i["seq"]["N"]),
                message_id=i["messageId"]["S"],
                client_message_id=i.get("clientMessageId", {}).get("S"),
                user_id=i["userId"]["S"],
                text=i["message"]["S"],
            )
            for i in items
        ]
        return sorted(stored, key=lambda m: m.seq)

    async def clients(self, *names: str, room: str) -> list[FaultClient]:
        clients = []
        for name in names:
            client = await FaultClient.open(
                self.server.ws_url, cookie=self.cookies[name], origin=self.server.origin, name=name
            )
            await client.join(room)
            clients.append(client)
        return clients


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    migrated_db: Path,
    moto_server: MotoServer,
    cognito_pool: CognitoPool,
    fault_proxy_factory: Any,
) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("faults-dynamodb")
    shutil.copy(migrated_db, data_dir / "db.sqlite3")
    tables = schema.TableNames.with_prefix(f"faults-{uuid.uuid4().hex[:8]}-")
    moto_port = int(moto_server.endpoint_url.rsplit(":", 1)[1])
    dynamodb, jwks = fault_proxy_factory("127.0.0.1", moto_port), fault_proxy_factory("127.0.0.1", moto_port)
    jwks.refuse()  # the process starts with a cold key cache and no way to fill it
    boto = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=moto_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ensure_tables(boto, tables, poll_seconds=0.1)
    env = base_env(
        data_dir,
        **cognito_pool.env(
            AWS_ENDPOINT_URL=f"http://{dynamodb.address}",
            COGNITO_JWKS_URL=f"http://{jwks.address}/{cognito_pool.pool_id}/.well-known/jwks.json",
        ),
        CHAT_STORAGE_BACKEND="dynamodb",
        DYNAMODB_CONNECTIONS_TABLE=tables.connections,
        DYNAMODB_MESSAGES_TABLE=tables.messages,
        DYNAMODB_ROOMS_TABLE=tables.rooms,
        DYNAMODB_CONNECT_TIMEOUT="0.5",
        DYNAMODB_READ_TIMEOUT="1",
        DYNAMODB_MAX_ATTEMPTS="2",
        AUTH_JWKS_REFETCH_INTERVAL="1",
    )
    server = DaphneServer(data_dir, env)
    with ThreadPoolExecutor(2) as pool:
        cookies = pool.submit(set_up, env, users={"alice": [], "bob": []}, rooms=ROOMS)
        server.start()
        running = Site(server, dynamodb, jwks, cookies.result(), tables, moto_server)
    try:
        yield running
    finally:
        server.stop()


@pytest.fixture
async def healthy(site: Site) -> AsyncIterator[Site]:
    site.dynamodb.heal()
    yield site
    site.dynamodb.heal()


async def fault_then_retry(site: Site, room: str, fault: Any) -> dict[str, Any]:
    """alice sends during the fault, bob listens; then the fault ends and alice retries.

    Returns the error frame alice got during the fault."""
    alice, bob = await site.clients("alice", "bob", room=room)
    try:
        before = await alice.send_reliably(room, "before")
        await bob.wait_for_seq(room, before["seq"])
        fault()
        cmid = new_client_message_id()
        started = time.monotonic()
        reply = await alice.send_message(room, "during the fault", client_message_id=cmid, wait=timeout(20))
        took = time.monotonic() - started
        assert reply["type"] == "error", f"acked while the store was failing: {reply}"
        assert (reply["code"], reply["retryable"], reply["clientMessageId"]) == ("storage_unavailable", True, cmid)
        assert reply["retryAfter"] > 0
        assert not [m for m in bob.room(room).messages if m["clientMessageId"] == cmid], "shown but not stored"

        site.dynamodb.heal()
        ack = await alice.send_reliably(room, "during the fault", client_message_id=cmid)
        stored = [m for m in site.read_store(room) if m.client_message_id == cmid]
        assert [(m.seq, m.message_id) for m in stored] == [(ack["seq"], ack["messageId"])], "stored exactly once"
        report = await check_invariants(room, [alice, bob], site.read_store, recover=False)
        print(f"\nobserved DynamoDB {room}: error after {took:.1f} s; retry acked seq {ack['seq']}; {report}")
        return reply
    finally:
        site.dynamodb.heal()
        await asyncio.gather(alice.close(), bob.close())


async def test_a_throttled_table_gets_a_retryable_error_and_the_retry_stores_once(healthy: Site) -> None:
    """DynamoDB throttling every call: storage_unavailable with retryAfter, nothing shown; the retry stores once."""
    await fault_then_retry(healthy, "throttled", lambda: healthy.dynamodb.http_error(400, THROTTLED, JSON_HEADERS))


async def test_a_refused_connection_gets_a_retryable_error_and_the_retry_stores_once(healthy: Site) -> None:
    """DynamoDB unreachable (connection refused): storage_unavailable, nothing shown; the retry stores once."""
    await fault_then_retry(healthy, "refused", healthy.dynamodb.refuse)


async def test_a_silent_dynamodb_gets_a_retryable_error_within_the_timeouts(healthy: Site) -> None:
    """DynamoDB answering nothing (a partition): storage_unavailable within the read timeouts; the retry stores once."""
    await fault_then_retry(healthy, "silent", healthy.dynamodb.blackhole)


async def test_a_dynamodb_slower_than_its_timeout_is_an_error_not_a_hang(healthy: Site) -> None:
    """Every DynamoDB answer 1.5 s late (read timeout 1 s): storage_unavailable; after it, the retry stores once."""
    await fault_then_retry(healthy, "timeout", lambda: healthy.dynamodb.latency(1.5))


async def test_a_slow_dynamodb_delays_acks_but_acks_only_stored_messages(healthy: Site) -> None:
    """100 ms each way on every DynamoDB call: each send is acked late, in order, and everyone sees each once."""
    alice, bob = await healthy.clients("alice", "bob", room="slow")
    try:
        healthy.dynamodb.latency(0.1)
        took = []
        for n in range(2):
            started = time.monotonic()
            ack = await alice.send_message("slow", f"slow {n}", wait=timeout(20))
            took.append(time.monotonic() - started)
            assert ack["type"] == "ack", ack
        assert min(took) >= 0.2, took  # at least one call's round trip
        healthy.dynamodb.heal()
        report = await check_invariants("slow", [alice, bob], healthy.read_store, recover=False)
        print(f"\nobserved slow DynamoDB: acks after {', '.join(f'{t:.1f}' for t in took)} s; {report}")
    finally:
        healthy.dynamodb.heal()
        await asyncio.gather(alice.close(), bob.close())


async def test_an_unreachable_jwks_on_a_cold_cache_fails_closed_then_recovers(
    site: Site, cognito_pool: CognitoPool
) -> None:
    """No keys cached, the JWKS refused, then answering 503: a valid token gets 4401; once it answers, it opens."""
    token = cognito_pool.sign_in()["IdToken"]

    async def handshake() -> tuple[int | None, str | None]:
        async with websockets.connect(
            site.server.ws_url,
            origin=Origin(site.server.origin),
            subprotocols=[Subprotocol("chatsite"), Subprotocol(token)],
            open_timeout=timeout(10),
        ) as ws:
            try:
                first: str | None = str(await asyncio.wait_for(ws.recv(), timeout(10)))
            except websockets.ConnectionClosed:
                first = None  # closed before any frame
        return ws.close_code, first

    assert (await handshake())[0] == 4401  # refused
    site.jwks.http_error(503, b"unavailable")
    await asyncio.sleep(1.1)  # the refetch limit (AUTH_JWKS_REFETCH_INTERVAL=1)
    assert (await handshake())[0] == 4401  # an error page is no key set
    site.jwks.heal()
    await asyncio.sleep(1.1)
    code, first = await handshake()
    assert first is not None and '"type":"authenticated"' in first, (code, first)
    assert "JWKS fetch failed" in site.server.log()
    clients = await site.clients("alice", "bob", room="jwks")  # sessions never needed the keys
    await check_invariants("jwks", clients, site.read_store, recover=False)
    await asyncio.gather(*(c.close() for c in clients))
