"""The web console: plain static files (ES modules, one stylesheet, no build step) served
by the registry at /ui/, where the browser talks only to the registry's /v1 JSON API with
the API key typed at login, and by `algorail dev` at /ui/, read-only, for its one pipeline
(its /v1/dev routes, no login). ``mode.json`` tells the page which of the two it is in."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
MODE_FILE = "mode.json"

# Scripts and styles come from the console's own files only; nothing is framed or leaked.
HEADERS = {
    b"content-security-policy": b"default-src 'self'; img-src 'self' data:; "
                                b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-cache",  # revalidated by ETag, so an upgrade shows at once
}


class ConsoleFiles(StaticFiles):
    """The console's files, `index.html` at the root, with the security headers above."""

    def __init__(self, mode: str = "registry") -> None:
        super().__init__(directory=STATIC_DIR, html=True)
        self.mode = mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message["headers"]}
                extra = [(k, v) for k, v in HEADERS.items() if k not in names]
                message = {**message, "headers": [*message["headers"], *extra]}
            await send(message)

        if self.get_path(scope) == MODE_FILE:
            await JSONResponse({"mode": self.mode})(scope, receive, send_with_headers)
        else:
            await super().__call__(scope, receive, send_with_headers)
