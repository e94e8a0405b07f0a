"""The baseline: the cheapest ASGI application uvicorn can serve.

Every HTTP request gets ``200`` with an empty body, whatever its path or method, so a run
against it measures uvicorn + uvloop + httptools + the load generator, and nothing else.
"""

from __future__ import annotations

from typing import Any

_START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
_BODY = {"type": "http.response.body", "body": b""}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer 200 with an empty body; complete the lifespan handshake."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send(_START)
        await send(_BODY)
