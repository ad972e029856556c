"""A server close reaches a client that is slow to answer it (issue 24).

autobahn gives a client 1 s to answer the server's close frame and then resets the
connection; a reset discards whatever is still queued, the close frame included, so a busy
client saw 1006 instead of 4429 (or 4401, 4403, 1001, which take the same path). Here a
client with a small receive buffer has a backlog of room messages queued towards it when
the server closes it with 4429, and reads nothing for longer than autobahn's default.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.client import ChatClient, create_room, timeout
from tests.faults.rawws import PING, TEXT, RawSocket
from tests.fixtures.servers import DaphneServer

pytestmark = pytest.mark.timeout(90)

BIG = 60_000  # characters per message: a few of them are a backlog no 4 KiB buffer takes
FRAME_LIMIT = 6  # frames per socket per minute (the slow client's join, then pings to pass it)


async def test_a_close_code_reaches_a_client_slow_to_answer_the_close(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path
) -> None:
    """A 4429 queued behind a backlog reaches a client that reads nothing for 2.5 s: it gets 4429, not 1006."""
    server = daphne_factory(
        shared_dir=tmp_path,
        CHAT_RATE_LIMIT_FRAMES_PER_CONNECTION=f"{FRAME_LIMIT}/60",
        CHAT_RATE_LIMIT_STRIKES="1",
        CHAT_MAX_MESSAGE_LENGTH=str(BIG),
    )
    cookie = server.signup("slowpoke")
    room = create_room(server.base_url, cookie, "backlog")
    slow = await RawSocket.open(server.port, headers={"Origin": server.origin, "Cookie": cookie}, receive_buffer=4096)
    sender = await ChatClient.connect(server.ws_url, cookie=server.signup("sender"), origin=server.origin)
    try:
        await slow.send_json({"action": "joinRoom", "roomId": room})
        joined = await slow.next_data()
        assert joined is not None and joined.json()["type"] == "joined", joined
        await sender.join(room)
        for n in range(4):
            ack = await sender.send_message(room, str(n) * BIG)
            assert ack["type"] == "ack", ack
        # Past the frame limit: refused, and with one strike allowed, closed with 4429,
        # the close frame queued behind about 240 KB the client has not read.
        for _ in range(FRAME_LIMIT + 1):
            await slow.send(TEXT, json.dumps({"action": "ping"}).encode())
        await asyncio.sleep(2.5)  # longer than autobahn's default close handshake timeout (1 s)
        texts = []
        code = None
        async with asyncio.timeout(timeout(20)):
            while True:
                frame = await slow.read_frame()
                if frame is None or frame.close_code is not None:
                    code = None if frame is None else frame.close_code
                    break
                if frame.opcode == TEXT:
                    texts.append(frame.json()["type"])
                elif frame.opcode == PING:
                    continue
        assert code == 4429, f"the close frame was lost (got {code}, frames {texts})"
        assert texts.count("message") == 4, texts
        print(f"\nobserved slow client closed behind a backlog: close code {code} after {len(texts)} frames")
    finally:
        await slow.close()
        await sender.close()
