"""Error answers: every failure is ``{"error": {"code", "message"}}`` with a fitting status.

ApiError                 raised by endpoints; carries status, code, message, fields
handlers                 turn ApiError, starlette's HTTPException (404, 405) and store
                         failures (503) into that body
CatchAllMiddleware       an unexpected exception becomes a 500 body, never a traceback
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventstore import EventStoreError

log = structlog.get_logger("spotsync.http")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    503: "unavailable",
}


class ORJSONResponse(JSONResponse):
    """JSON rendered by orjson: fast, and strict about what it can encode."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """An answer other than success; ``fields`` names each bad input of a 422."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        fields: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.fields = list(fields) if fields else None
        self.headers = dict(headers or {})


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    fields: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    error: dict[str, Any] = {"code": code or _CODES.get(status, "error"), "message": message}
    if fields:
        error["fields"] = [dict(f) for f in fields]
    return ORJSONResponse({"error": error}, status_code=status, headers=dict(headers or {}))


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status, exc.message, code=exc.code, fields=exc.fields, headers=exc.headers
    )


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {
        404: "no such resource",
        405: f"method {request.method} is not allowed here",
    }
    message = messages.get(exc.status_code) or str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


async def store_error_handler(request: Request, exc: Exception) -> Response:
    # The store's messages name no secrets, but they are internal: say only what to do.
    log.error("event store failed", path=request.url.path, error=type(exc).__name__)
    return error_response(
        503,
        "the event store is unavailable; retry later",
        headers={"Retry-After": "1"},
    )


EXCEPTION_HANDLERS = {
    ApiError: api_error_handler,
    HTTPException: http_exception_handler,
    EventStoreError: store_error_handler,
}


class CatchAllMiddleware:
    """The outermost layer: an unexpected exception is logged and answered 500 in JSON.

    starlette's own ServerErrorMiddleware re-raises after answering, which the server
    then reports as a crash; here a bug in one request stays one 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unexpected error", path=scope.get("path"))
            if not started:
                response = error_response(500, "internal error; the failure is logged")
                await response(scope, receive, send)
