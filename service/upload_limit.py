"""A size limit on uploads, enforced while the body streams in (pure ASGI middleware).

A request to a limited path whose ``Content-Length`` is over the limit is answered 413 at
once; one that sends more than the limit without saying so (chunked) is cut off as soon as
the limit is passed, and answered 413, without the body ever being held whole. Whatever
the route had started is dropped: it raises inside its body read and nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class UploadTooLarge(Exception):
    """Raised inside the route's body read once the limit is passed."""


class UploadLimit:
    def __init__(self, app: ASGIApp, *, paths: tuple[str, ...], max_bytes: int) -> None:
        self.app = app
        self.paths = paths
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(send)
            return
        seen = 0
        over = False

        async def limited() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise UploadTooLarge
            return message

        async def guarded(message: Message) -> None:
            if not over:  # the route's answer to the failed read is replaced by the 413
                await send(message)

        try:
            await self.app(scope, limited, guarded)
        except UploadTooLarge:
            pass
        except Exception:
            if not over:
                raise
        if over:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        limit_mb = self.max_bytes / 1e6
        body = json.dumps(
            {"detail": f"upload larger than {limit_mb:g} MB (HPS_MAX_UPLOAD_MB)"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


__all__ = ["UploadLimit", "UploadTooLarge"]
