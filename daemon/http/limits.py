"""Reading request bodies under a size limit: refused early, never read whole when too big."""

from __future__ import annotations

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from daemon.http.errors import ApiError

DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: a webhook or a contract request is a few KB.

# A refused body is still read and thrown away, up to this much and this long: a server
# that closes a connection with unread bytes makes the kernel reset it, and the client
# loses the 413 with it. Memory stays bounded by the chunk size; bigger bodies are cut.
DRAIN_BYTES = 4 << 20
DRAIN_SECONDS = 2.0


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, or 413 as soon as ``Content-Length`` or the bytes read pass ``max_bytes``."""
    return await receive_body(request.receive, request.headers.get("content-length"), max_bytes)


async def receive_body(receive: Receive, declared: str | bytes | None, max_bytes: int) -> bytes:
    """``read_body`` on the ASGI messages themselves, for a route that has no Request.

    ``declared`` is the request's ``Content-Length`` header, if it has one.
    """
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError(400, "Content-Length is not a number")
        if int(declared) > max_bytes:
            if int(declared) <= DRAIN_BYTES:
                await _discard(receive, 0)
            raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            await _discard(receive, size)
            raise _too_large(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _discard(receive: Receive, already: int) -> None:
    """Read what is left of a refused body without keeping it, within the drain bounds."""
    drained = already
    with anyio.move_on_after(DRAIN_SECONDS):
        while drained <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"the request body is larger than {max_bytes} bytes")
