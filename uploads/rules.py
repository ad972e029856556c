"""What a shared file may be: names, types from a file's own bytes, and how it is served.

Pure code (no Django, no I/O), so settings can check CHAT_UPLOAD_TYPES against it and the
rules are tested alone (uploads/tests/test_rules.py). A file's type is what its first bytes
say, never the client's claim: the claim and the name's extension must agree with them.
HTML, SVG, XML and executables are never a type here, so never served, inline or not.
"""

from __future__ import annotations

import unicodedata
from typing import Final
from urllib.parse import quote

MAX_NAME_CHARS: Final = 200
HEAD_BYTES: Final = 4096  # what sniffing reads of a file

# Types that can be recognised from their bytes, and the extensions each goes by.
KNOWN_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg"),
    "image/gif": ("gif",),
    "image/webp": ("webp",),
    "application/pdf": ("pdf",),
    "text/plain": ("txt", "log", "md", "csv"),
    "application/zip": ("zip",),
    "application/gzip": ("gz", "tgz"),
    "application/x-7z-compressed": ("7z",),
}
IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# What every download carries besides its type and disposition: from the site (uploads.views)
# and, through its response-headers policy, from the uploads distribution (deploy/stack.py).
# No sniffing a type the file did not declare; nothing a file could run or load if opened.
DOWNLOAD_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox",
    "Referrer-Policy": "no-referrer",
}
_EXTENSIONS: Final = {ext: kind for kind, exts in KNOWN_TYPES.items() for ext in exts}

_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    # Never allowed: named so that a refusal says what the file is.
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
    (b"\xca\xfe\xba\xbe", "application/x-mach-binary"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"#!", "application/x-sh"),
)
_MARKUP: Final = (b"<!doctype", b"<html", b"<head", b"<body", b"<script", b"<svg", b"<?xml", b"<iframe", b"<!--")


class NameError_(ValueError):
    """A file name that cannot be a file's name here."""


def clean_name(name: str) -> str:
    """The name as shown and offered for saving: NFC, trimmed. Refuses a path (any
    separator, `.` or `..`), control characters, and names longer than MAX_NAME_CHARS; the
    storage key never holds the name anyway."""
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned or len(cleaned) > MAX_NAME_CHARS:
        raise NameError_(f"a file name is 1-{MAX_NAME_CHARS} characters")
    if "/" in cleaned or "\\" in cleaned or cleaned in {".", ".."} or cleaned.startswith(".."):
        raise NameError_("a file name cannot be a path")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"} for ch in cleaned):
        raise NameError_("a file name cannot hold control characters")
    return cleaned


def type_of_name(name: str) -> str | None:
    """The type a name's extension says, or None for an extension not known here."""
    if "." not in name:
        return None
    return _EXTENSIONS.get(name.rsplit(".", 1)[1].lower())


def sniff(head: bytes) -> str | None:
    """The type a file's first bytes say; "text/plain" for UTF-8 text that is not markup;
    "text/html" for markup (never allowed); None when nothing is recognised."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if not head:
        return "text/plain"  # an empty text file
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith(b"<") and any(mark in lowered[:512] for mark in _MARKUP):
        return "text/html"
    if any(mark in lowered for mark in (b"<script", b"<html", b"<svg", b"<iframe")):
        return "text/html"  # markup a browser might still sniff, even if not at the start
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the head is still text.
        if exc.start < len(head) - 3:
            return None
        text = head[: exc.start].decode("utf-8")
    if any(ord(ch) < 32 and ch not in "\t\n\r\f" for ch in text):
        return None
    return "text/plain"


def is_image(content_type: str) -> bool:
    return content_type in IMAGE_TYPES


def content_disposition(name: str, content_type: str) -> str:
    """Images inline (they are shown in the page); anything else is a download."""
    kind = "inline" if is_image(content_type) else "attachment"
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in name) or "file"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
