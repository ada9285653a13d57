"""A cap on the size of HTTP request bodies, checked before the app reads them.

Gradio reads a whole request body into memory before it looks at it, so without a cap one request
of a few gigabytes takes the server's memory. Questions and contexts have their own, much smaller,
limits with clear messages (``medalpaca_core.engine``); this cap sits above them so that those
messages still come back for a megabyte-sized question, and refuses only bodies no page would send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MiB = 1024**2
# Any API call: a question and a context of a megabyte each fit even with every character JSON-escaped.
MAX_BODY_BYTES = 16 * MiB
UPLOAD_PATH_SUFFIX = "/upload"


class _TooLarge(Exception):
    """Raised inside ``receive`` once a body streamed without Content-Length passes the cap."""


class BodySizeLimit:
    """ASGI middleware: 413 for a body over ``max_bytes`` (``upload_max_bytes`` for Gradio's upload route)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, upload_max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes, self.upload_max_bytes = app, max_bytes, upload_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_max_bytes if scope["path"].rstrip("/").endswith(UPLOAD_PATH_SUFFIX) else self.max_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > limit:
            await refuse(send, limit)
            return
        received, started = 0, False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await refuse(send, limit)


async def refuse(send: Send, limit: int) -> None:
    body = f"Request body too large: the limit is {limit // MiB} MiB.".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
