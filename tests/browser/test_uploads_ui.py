"""Sharing files in both UIs in Chromium (issue 18): attach button, drag and drop, paste,
progress, previews, a failed upload that can be retried or dropped and blocks no message,
images as thumbnails that open full size, other files as cards with download links. On
the embedded default (files through the site) and on S3 with DynamoDB (a moto server: the
browser posts straight to the bucket, with CORS).
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from tests.browser.conftest import SCREENSHOTS, BrowserUser, NewUser, skip_reason, timeout_ms
from tests.browser.test_react_ui import react_build  # noqa: F401 - the session's build of frontend/dist
from tests.e2e.test_moderation import dynamodb_tables
from tests.fixtures.servers import DaphneServer

_reason = skip_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(240),
]
if _reason is None:
    from playwright.async_api import FilePayload, expect

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), colour)
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass
class Ui:
    """Where each UI keeps what a test touches."""

    name: str
    path: str  # the room's page
    live: str  # the element whose data-state says live
    input: str
    tray: str
    stored: str  # a stored message line

    async def open(self, user: BrowserUser, server: DaphneServer) -> None:
        await user.page.goto(server.base_url + self.path)
        await expect(user.page.locator(self.live)).to_have_attribute("data-state", "live")


TEMPLATE = Ui("template", "/rooms/general/", "#status", "#message-input", "#upload-tray", "#messages li.msg[data-seq]")
REACT = Ui(
    "react",
    "/app/#/rooms/general",
    ".connection",
    "#composer-text",
    ".upload-tray",
    ".message-list li.message[data-seq]",
)


@pytest.fixture(params=["files", "s3"])
def server(request: pytest.FixtureRequest, daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    if request.param == "files":
        return daphne_factory()
    moto = request.getfixturevalue("moto_server")
    bucket = f"uploads-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)
    # As in production: files in S3, messages in DynamoDB (both moto).
    return daphne_factory(CHAT_UPLOADS_BUCKET=bucket, **dynamodb_tables(moto), **moto.env)


async def drop_files(user: BrowserUser, target: str, files: list[tuple[str, str, bytes]]) -> None:
    """Drag files from the desktop onto `target` (a DataTransfer made in the page)."""
    payload = [(name, kind, base64.b64encode(data).decode()) for name, kind, data in files]
    await user.page.evaluate(
        """([selector, files]) => {
            const dt = new DataTransfer();
            for (const [name, type, b64] of files) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], name, { type }));
            }
            const target = document.querySelector(selector);
            for (const kind of ['dragenter', 'dragover', 'drop']) {
                target.dispatchEvent(new DragEvent(kind, { dataTransfer: dt, bubbles: true, cancelable: true }));
            }
        }""",
        [target, payload],
    )


async def paste_image(user: BrowserUser, selector: str, data: bytes) -> None:
    """Paste a screenshot into the composer (a clipboard holding one image file)."""
    await user.page.evaluate(
        """([selector, b64]) => {
            const dt = new DataTransfer();
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            dt.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
            const event = new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true });
            document.querySelector(selector).dispatchEvent(event);
        }""",
        [selector, base64.b64encode(data).decode()],
    )


async def image_loaded(user: BrowserUser, selector: str) -> bool:
    loaded: bool = await user.page.locator(selector).evaluate("(img) => img.complete && img.naturalWidth > 0")
    return loaded


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    """Wait for an async condition, a bounded time."""
    deadline = asyncio.get_running_loop().time() + timeout_ms(seconds) / 1000
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def fetch(user_cookies: Sequence[Mapping[str, Any]], url: str) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(
        url, headers={"Cookie": "; ".join(f"{c['name']}={c['value']}" for c in user_cookies)}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}


@pytest.mark.parametrize("ui", [TEMPLATE, REACT], ids=["template", "react"])
async def test_an_image_and_a_pdf_are_shared_in_the_room(
    ui: Ui,
    server: DaphneServer,
    new_user: NewUser,
    react_build: Path,  # noqa: F811
) -> None:
    """Alice attaches an image and a PDF with the button, sends them without text; Bob sees
    the thumbnail (which opens the full image) and a card for the PDF that downloads it."""
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    await ui.open(alice, server)
    await ui.open(bob, server)
    page = alice.page
    send = page.locator("form.composer button[type=submit]")
    await expect(send).to_be_disabled()  # nothing to send yet
    await page.locator("#file-input").set_input_files(
        [
            FilePayload(name="sunset.png", mimeType="image/png", buffer=png(640, 400, (220, 90, 40))),
            FilePayload(name="minutes.pdf", mimeType="application/pdf", buffer=PDF),
        ]
    )
    tray = page.locator(f"{ui.tray} li")
    await expect(tray).to_have_count(2)
    await expect(page.locator(f"{ui.tray} li[data-status=done]")).to_have_count(2, timeout=20_000)
    await expect(send).to_be_enabled()  # files alone are something to send
    await expect(page.locator(f"{ui.tray} .upload-preview")).to_have_count(1)  # the image's own preview
    await expect(tray.nth(1)).to_contain_text("PDF")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"uploads-{ui.name}-tray.png"))
    await page.locator(ui.input).press("Enter")
    await expect(page.locator(f"{ui.tray} li")).to_have_count(0)

    line = bob.page.locator(ui.stored).filter(has=bob.page.locator(".attachments")).last
    image = line.locator(".attachment-image img")
    await expect(image).to_have_attribute("alt", "sunset.png")
    await until(lambda: image_loaded(bob, f"{ui.stored} .attachment-image img"))
    card = line.locator(".attachment-file")
    await expect(card).to_contain_text("minutes.pdf")
    await expect(card).to_contain_text("PDF")
    await expect(card).to_have_attribute("download", "minutes.pdf")
    await bob.page.screenshot(path=str(SCREENSHOTS / f"uploads-{ui.name}-shared.png"))

    # The full image and the PDF, as the links give them (S3: through the bucket).
    cookies = await bob.context.cookies()
    full = await line.locator(".attachment-image").get_attribute("href")
    pdf = await card.get_attribute("href")
    assert full and pdf
    status, body, headers = fetch(cookies, server.base_url + full if full.startswith("/") else full)
    assert status == 200 and body.startswith(b"\x89PNG") and headers["content-type"] == "image/png"
    status, body, headers = fetch(cookies, server.base_url + pdf if pdf.startswith("/") else pdf)
    assert status == 200 and body == PDF and headers["content-disposition"].startswith("attachment")
    assert alice.page_errors == [] and bob.page_errors == []


@pytest.mark.parametrize("ui", [TEMPLATE, REACT], ids=["template", "react"])
async def test_drop_paste_and_a_failed_upload_that_blocks_nothing(
    ui: Ui,
    server: DaphneServer,
    new_user: NewUser,
    react_build: Path,  # noqa: F811
) -> None:
    """A text file dropped on the room, a pasted screenshot, and a `.png` that is HTML:
    refused with its reason, retried (refused again) and dropped, while a text message and
    the good files go out."""
    alice = await new_user(server, "alice")
    await ui.open(alice, server)
    page = alice.page
    await drop_files(alice, "main.room, #room", [("notes.txt", "text/plain", b"bring snacks\n")])
    await paste_image(alice, ui.input, png(120, 80, (40, 120, 200)))
    await page.locator("#file-input").set_input_files(
        [FilePayload(name="cat.png", mimeType="image/png", buffer=b"<!DOCTYPE html><script>alert(1)</script>")]
    )
    await expect(page.locator(f"{ui.tray} li")).to_have_count(3)
    failed = page.locator(f"{ui.tray} li[data-status=failed]")
    await expect(failed).to_have_count(1, timeout=20_000)
    await expect(failed).to_contain_text("cat.png")
    await expect(failed).to_contain_text("not image/png")
    await expect(page.locator(f"{ui.tray} li[data-status=done]")).to_have_count(2, timeout=20_000)
    await expect(page.locator(f"{ui.tray} li[data-status=done]").nth(1)).to_contain_text("pasted-")
    await page.screenshot(path=str(SCREENSHOTS / f"uploads-{ui.name}-failed.png"))

    await failed.get_by_role("button", name="Retry").click()
    await expect(page.locator(f"{ui.tray} li[data-status=failed]")).to_have_count(1, timeout=20_000)
    # The failed file blocks nothing: the message and the two good files go out.
    await page.locator(ui.input).fill("the plan")
    await page.locator(ui.input).press("Enter")
    sent = page.locator(ui.stored).filter(has_text="the plan")
    await expect(sent.locator(".attachment")).to_have_count(2, timeout=15_000)
    await expect(sent.locator(".attachment-file")).to_contain_text("notes.txt")
    await expect(page.locator(f"{ui.tray} li")).to_have_count(1)  # the failed one stays, to retry or drop
    await page.locator(f"{ui.tray} li").get_by_role("button", name="Remove cat.png").click()
    await expect(page.locator(f"{ui.tray} li")).to_have_count(0)
    assert alice.page_errors == []


def _link_end(href: str) -> int:
    return int(parse_qs(urlsplit(href).query)["e"][0])


@pytest.mark.parametrize("ui", [TEMPLATE, REACT], ids=["template", "react"])
async def test_a_file_whose_link_has_expired_still_opens_with_a_fresh_link(
    ui: Ui,
    daphne_factory: Callable[..., DaphneServer],
    new_user: NewUser,
    react_build: Path,  # noqa: F811
) -> None:
    """Links in frames live minutes (here ten seconds). Once they have expired, a click on a
    file card downloads it and a click on an image opens it full size (the UI fetches fresh
    links first), and an image that loads only then (a lazy one scrolled to late) shows."""
    server = daphne_factory(CHAT_UPLOAD_URL_SECONDS="10")
    alice = await new_user(server, "alice")
    await ui.open(alice, server)
    page = alice.page
    await page.locator("#file-input").set_input_files(
        [
            FilePayload(name="sunset.png", mimeType="image/png", buffer=png(320, 200, (220, 90, 40))),
            FilePayload(name="minutes.pdf", mimeType="application/pdf", buffer=PDF),
        ]
    )
    await expect(page.locator(f"{ui.tray} li[data-status=done]")).to_have_count(2, timeout=20_000)
    await page.locator(ui.input).press("Enter")
    line = page.locator(ui.stored).filter(has=page.locator(".attachment-file")).last
    card, picture = line.locator(".attachment-file"), line.locator(".attachment-image")
    await expect(card).to_contain_text("minutes.pdf", timeout=15_000)
    old = await card.get_attribute("href")
    assert old
    while time.time() < _link_end(old) + 1:  # bounded: the link ends ten seconds after it was minted
        await asyncio.sleep(0.25)

    async with page.expect_download() as download_info:
        await card.click()
    download = await download_info.value
    assert await download.failure() is None
    saved = await download.path()
    assert saved is not None and Path(saved).read_bytes() == PDF
    assert _link_end(await card.get_attribute("href") or "") > _link_end(old)

    async with alice.context.expect_page() as popup_info:
        await picture.click()
    popup = await popup_info.value
    await popup.wait_for_load_state()
    assert await popup.evaluate("document.contentType") == "image/png"
    await popup.close()

    # The thumbnail loads only now, with its frame's expired link: the UI fetches a fresh one.
    img = line.locator(".attachment-image img")
    await img.evaluate("(img) => { img.src = img.src + '&late=1'; }")
    await until(lambda: image_loaded(alice, f"{ui.stored} .attachment-image img"))
    assert "late=1" not in (await img.get_attribute("src") or "")
    assert alice.page_errors == []
