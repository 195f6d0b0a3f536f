"""Bearer-token authentication of the ``/v1`` routes, compared in constant time."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from daemon.http.errors import ApiError

Endpoint = Callable[[Request], Awaitable[Response]]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="spotsync"'}


def check_bearer(request: Request, token: bytes | None) -> None:
    """Raise 401 unless the request carries ``Authorization: Bearer <token>``.

    ``token=None`` means the operator chose to run without one (``--insecure-local``).
    """
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "a bearer token is required", headers=_CHALLENGE)
    # Headers arrive as latin-1; compare bytes so any presented value is comparable.
    if not hmac.compare_digest(presented.strip().encode("latin-1"), token):
        raise ApiError(
            401,
            "the bearer token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="spotsync", error="invalid_token"'},
        )


def protected(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` behind the bearer check; the token lives in ``app.state.api_token``."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        check_bearer(request, request.app.state.api_token)
        return await endpoint(request)

    return guarded
