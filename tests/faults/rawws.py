"""A raw WebSocket client over a plain socket: frames no well-behaved library would send.

It speaks just enough RFC 6455 to open a socket and then send any frame at all (invalid
UTF-8, bad opcodes, unmasked frames, oversize lengths) and read what comes back. It never
answers pings unless asked to, and it can stop reading altogether (a small receive buffer
makes the kernel push back at once), which is how the fault tests play a dead or slow client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"handshake answered with HTTP {status}")
        self.status = status


@dataclass
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True
    masked: bool = False

    @property
    def close_code(self) -> int | None:
        if self.opcode != CLOSE:
            return None
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else 1005

    def json(self) -> dict[str, Any]:
        assert self.opcode == TEXT, self
        value: dict[str, Any] = json.loads(self.payload)
        return value


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if length < 4096 else _mask(payload, key)
    return head + key + masked


def _mask(payload: bytes, key: bytes) -> bytes:
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


class RawSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls,
        port: int,
        *,
        headers: dict[str, str],
        path: str = "/ws/",
        receive_buffer: int | None = None,
        timeout: float = 10.0,
    ) -> RawSocket:
        """Open a WebSocket to 127.0.0.1:port; `receive_buffer` shrinks SO_RCVBUF before connecting."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, ("127.0.0.1", port))
            # A small StreamReader limit: once the test stops reading, the pause reaches the kernel soon.
            reader, writer = await asyncio.open_connection(sock=sock, limit=receive_buffer or 2**16)
            key = base64.b64encode(os.urandom(16)).decode()
            lines = [
                f"GET {path} HTTP/1.1",
                f"Host: 127.0.0.1:{port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                *(f"{k}: {v}" for k, v in headers.items()),
            ]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            writer.close()
            raise HandshakeRefused(status)
        return cls(reader, writer)

    async def send(self, opcode: int, payload: bytes, **options: Any) -> None:
        self.writer.write(encode_frame(opcode, payload, **options))
        await self.writer.drain()

    async def send_json(self, frame: dict[str, Any]) -> None:
        await self.send(TEXT, json.dumps(frame).encode())

    async def read_frame(self, timeout: float = 10.0) -> Frame | None:
        """The next frame (fragments are not joined), or None at EOF / a reset."""
        try:
            async with asyncio.timeout(timeout):
                first, second = await self.reader.readexactly(2)
                length = second & 0x7F
                if length == 126:
                    length = struct.unpack("!H", await self.reader.readexactly(2))[0]
                elif length == 127:
                    length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
                payload = await self.reader.readexactly(length)
                return Frame(first & 0x0F, payload, fin=bool(first & 0x80), masked=bool(second & 0x80))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def next_data(self, timeout: float = 10.0, *, pong: bool = True) -> Frame | None:
        """The next text, binary or close frame (answering pings unless `pong` is False)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.read_frame(timeout)
                if frame is None or frame.opcode in (TEXT, BINARY, CLOSE):
                    return frame
                if frame.opcode == PING and pong:
                    await self.send(PONG, frame.payload)

    async def close_code(self, timeout: float = 10.0) -> int | None:
        """Read until the server closes: its close code, or None if it dropped the connection."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.read_frame(timeout)
                if frame is None:
                    return None
                if frame.opcode == CLOSE:
                    return frame.close_code

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (TimeoutError, ConnectionError, OSError):
            pass
