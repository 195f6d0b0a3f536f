"""Reading request bodies under a size limit: refused early, never read whole when too big."""

from __future__ import annotations

from starlette.requests import Request

from daemon.http.errors import ApiError

DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: a webhook or a contract request is a few KB.


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, or 413 as soon as ``Content-Length`` or the bytes read pass ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError(400, "Content-Length is not a number")
        if int(declared) > max_bytes:
            raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"the request body is larger than {max_bytes} bytes")
