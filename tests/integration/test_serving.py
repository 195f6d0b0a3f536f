"""The serving helper answers on the port it reports, and stops when the block ends."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from daemon.serving import serving


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@pytest.mark.anyio
async def test_serves_on_the_reported_port_then_stops() -> None:
    """A request to the yielded url is answered; after the block the port refuses."""
    app = Starlette(routes=[Route("/", hello)])
    async with serving(app) as url:
        async with httpx.AsyncClient() as client:
            response = await client.get(url + "/")
        assert response.text == "hello"
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url + "/")
