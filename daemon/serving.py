"""Serving a starlette app with hypercorn on a socket we bind ourselves.

Binding first (port 0 allowed) tells the caller the real address before the server
runs, and the kernel queues connections from that instant, so "started" means
"reachable". Used by the daemon, the sandbox, the demo and the tests.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from anyio.abc import TaskStatus
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp


@dataclass
class BoundSocket:
    sock: socket.socket

    @property
    def host(self) -> str:
        return str(self.sock.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def bind(host: str = "127.0.0.1", port: int = 0, backlog: int = 1024) -> BoundSocket:
    """A listening TCP socket; ``port=0`` picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(backlog)
    return BoundSocket(sock)


async def serve_app(
    app: ASGIApp,
    bound: BoundSocket,
    *,
    shutdown: anyio.Event,
    graceful_timeout: float = 5.0,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``bound`` until ``shutdown`` is set, then drain for ``graceful_timeout``.

    Reports the base url through ``task_status`` once the socket accepts connections.
    """
    config = Config()
    # hypercorn takes ownership of the descriptor it is given, so it gets its own copy.
    config.bind = [f"fd://{os.dup(bound.sock.fileno())}"]
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    config.errorlog = None
    config.include_server_header = False
    task_status.started(bound.url)
    try:
        await serve(app, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]  # starlette apps are ASGI 3 callables; hypercorn's Framework union does not name them
    finally:
        bound.sock.close()


@asynccontextmanager
async def serving(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, graceful_timeout: float = 5.0
) -> AsyncIterator[str]:
    """Serve ``app`` for the duration of the block; yields its base url."""
    bound = bind(host, port)
    shutdown = anyio.Event()
    async with anyio.create_task_group() as tg:
        url: str = await tg.start(
            lambda task_status: serve_app(
                app, bound, shutdown=shutdown, graceful_timeout=graceful_timeout,
                task_status=task_status,
            )
        )
        try:
            yield url
        finally:
            shutdown.set()
