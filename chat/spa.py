"""The React client (frontend/) served by Django at /app/, for the embedded default.

`make frontend` builds it into frontend/dist (settings.FRONTEND_DIST), which this view
serves and deploy/push_static.py pushes to S3 for CloudFront. Nothing built is
committed and `make run` needs no Node, so when there is no build the page says how to
make one instead.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Final

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

# Vite's asset names carry a content hash: cache them for good. index.html and
# config.json name those assets and the deployment: always revalidate them.
IMMUTABLE: Final = "public, max-age=31536000, immutable"
REVALIDATE: Final = "no-cache"
# No path of the build is longer; a longer one is no page of the app either (404).
MAX_PATH: Final = 1024

# Defence in depth for the app's pages: only the build's own scripts and styles run. The
# socket and the API may be on another origin (config.json), so connections are open to
# ws(s) and https; Cognito's Hosted UI is reached by navigation, which this does not limit.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # blob: previews a file before it is sent; the bucket serves shared files (issue 18).
        f"img-src 'self' data: blob: {settings.CHAT_UPLOADS_ORIGIN}".rstrip(),
        f"connect-src 'self' ws: wss: https: {settings.CHAT_UPLOADS_ORIGIN}".rstrip(),
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

MISSING_BUILD_PAGE: Final = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chatsite app not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem">
<h1>The React app has not been built yet</h1>
<p>Chatsite's second client lives in <code>frontend/</code> and needs a build step, which
<code>make run</code> leaves out so that it never needs Node.js. To build it, with Node.js 20
(20.19 or later) and npm installed:</p>
<pre>make frontend</pre>
<p>(that runs <code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>), then reload this page.
On Debian or Ubuntu, <code>apt-get install -y nodejs npm</code> installs Node.js if your
release ships version 20 or later.</p>
<p>The site's own pages work without it: <a href="/">open the chat</a>.</p>
</body>
</html>
"""


def build_dir() -> Path | None:
    """The directory holding the built app, or None when it has not been built."""
    candidate = Path(settings.FRONTEND_DIST)
    return candidate if (candidate / "index.html").is_file() else None


def _resolve(root: Path, path: str) -> Path | None:
    """The file under root that `path` names, never anything outside root."""
    if len(path) > MAX_PATH:
        raise Http404("No such file in the app build")
    if "\\" in path or "\x00" in path:
        return None
    try:
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None
    except OSError:
        # A name too long for the file system, say: no file of the build, nor a page of it.
        raise Http404("No such file in the app build") from None
    return target


def _content_type(target: Path) -> str:
    if target.suffix in {".js", ".mjs"}:
        return "text/javascript; charset=utf-8"
    guessed, _ = mimetypes.guess_type(target.name)
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed in {"application/json", "image/svg+xml"}:
        return f"{guessed}; charset=utf-8"
    return guessed


@require_safe
@ensure_csrf_cookie  # session mode posts to the JSON API with Django's CSRF token
def app(request: HttpRequest, path: str = "") -> HttpResponseBase:
    root = build_dir()
    if root is None:
        response = HttpResponse(MISSING_BUILD_PAGE, status=503, content_type="text/html; charset=utf-8")
        response["Cache-Control"] = "no-store"
        return response
    root = root.resolve()
    target = _resolve(root, path or "index.html")
    if target is None:
        # Hash routing needs no server fallback; a path with no extension is still most
        # likely a page of the app, so give it the app rather than a 404.
        if path and "." not in path.rsplit("/", 1)[-1]:
            target = root / "index.html"
        else:
            raise Http404("No such file in the app build")
    file_response = FileResponse(target.open("rb"), content_type=_content_type(target))
    relative = target.relative_to(root).as_posix()
    file_response["Cache-Control"] = IMMUTABLE if relative.startswith("assets/") else REVALIDATE
    if target.suffix == ".html":
        file_response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        file_response["Referrer-Policy"] = "same-origin"
    return file_response
