"""Test files made here: images with EXIF (a GPS position), a PDF, markup posing as an image."""

from __future__ import annotations

import io
import struct
import zlib

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
HTML_AS_PNG = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
GPS_TAG = 0x8825


def png_with_gps(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (width, height), (200, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[GPS_TAG] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    out = io.BytesIO()
    image.save(out, format="PNG", exif=exif.tobytes())
    return out.getvalue()


def jpeg_with_gps(width: int = 80, height: int = 60) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (width, height), (20, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[GPS_TAG] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_header_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG that claims a canvas of width x height (10 G pixels by default) in 100 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def has_gps(data: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        return GPS_TAG in exif or bool(image.info.get("exif"))
