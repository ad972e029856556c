"""The Python limit: a bare `websockets` broadcast server in one process.

It speaks the Channels tutorial's protocol, so the load generator drives it exactly like
the tutorial peer: a socket at /ws/chat/<room>/ joins <room>; a text frame {"message": m}
is sent to every socket in the room (the sender's included) as {"message": m}. The frame
is serialised once and written to every transport with `websockets.broadcast`; nothing is
stored, nothing is acknowledged, no Django. Run: python -m bench.peers.bare_ws --port N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve

ROOMS: dict[str, set[ServerConnection]] = {}


def room_of(path: str) -> str | None:
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if len(parts) == 3 and parts[:2] == ["ws", "chat"]:
        return parts[2]
    return None


async def handler(ws: ServerConnection) -> None:
    room = room_of(ws.request.path if ws.request else "")
    if room is None:
        await ws.close(4404, "no such path")
        return
    members = ROOMS.setdefault(room, set())
    members.add(ws)
    try:
        async for text in ws:
            try:
                message = json.loads(text)["message"]
            except (ValueError, KeyError, TypeError):
                continue
            broadcast(members, json.dumps({"message": message}))
    finally:
        members.discard(ws)
        if not members:
            ROOMS.pop(room, None)


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=2**20):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
