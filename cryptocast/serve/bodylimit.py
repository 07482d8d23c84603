"""A ceiling on request bodies, enforced before anything buffers them.

Without it a client can make the router hold any body it sends in memory (FastAPI reads the whole
body before validating it). The largest valid body is an on-demand forecast's window of
``MAX_WINDOW`` (2,000) candles: about 340 KB of JSON, 440 KB indented. The ceiling leaves room
for that and nothing near the sizes that cost memory. A declared ``Content-Length`` over it is
refused before a byte is read; a body sent in chunks is counted as it is read and refused at the
chunk that crosses it. Either way the answer is 413 with the API's error body.
"""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryptocast.serve.errors import ApiError

MAX_BODY_BYTES = 1024 * 1024


def too_large(limit: int) -> str:
    return f"the request body is larger than this API accepts ({limit:,} bytes at most)"


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of request body, or 413."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            error = ApiError(413, too_large(self.max_bytes))
            await JSONResponse(error.body(), error.status)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # FastAPI passes HTTPException on; errors.py answers it
                    raise HTTPException(413, too_large(self.max_bytes))
            return message

        await self.app(scope, counted, send)
