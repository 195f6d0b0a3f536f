"""The serving helper answers on the port it reports, and stops when the block ends,
leaving no connection open."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from daemon.serving import bind, serve_app, serving


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


async def _connect_as_it_stops(app: Starlette, turns: int, clients: int) -> list[socket.socket]:
    """Serve ``app``; set the shutdown, let the loop turn ``turns`` times, then open
    ``clients`` connections that each send a request at once; return them once the
    server has stopped."""
    bound = bind()
    shutdown = anyio.Event()
    opened: list[socket.socket] = []
    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: serve_app(
                app, bound, shutdown=shutdown, graceful_timeout=2, task_status=task_status
            )
        )
        shutdown.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        for _ in range(clients):
            try:
                client = socket.create_connection((bound.host, bound.port), timeout=5)
            except OSError:
                break  # refused: the server has closed its socket
            opened.append(client)
            client.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
    return opened


def _outcome(client: socket.socket) -> str:
    with client:
        try:
            data = client.recv(64)
        except TimeoutError:
            return "left open"
        except ConnectionResetError:
            return "reset"
    return "answered" if data.startswith(b"HTTP/1.1 200") else "closed" if not data else repr(data)


@pytest.mark.anyio
async def test_a_connection_arriving_as_it_stops_is_answered_or_closed() -> None:
    """Connections that arrive in any of the loop's last turns before the server stops
    get an answer or a closed connection, and leave nothing open: asyncio once set such a
    connection up on the closed server, leaving its socket open with no one to close it.
    """
    app = Starlette(routes=[Route("/", hello)])
    for turns in range(12):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            outcomes = [_outcome(c) for c in await _connect_as_it_stops(app, turns, 10)]
            gc.collect()
        assert set(outcomes) <= {"answered", "closed", "reset"}, (turns, outcomes)
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert leaks == [], (turns, leaks[:2])
