"""Serving a starlette app with hypercorn on a socket we bind ourselves.

Binding first (port 0 allowed) tells the caller the real address before the server
runs, and the kernel queues connections from that instant, so "started" means
"reachable". Used by the daemon, the sandbox, the demo and the tests.
"""

from __future__ import annotations

import asyncio
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

# Turns of the event loop between the last accept and hypercorn closing its listener: one
# to set up each accepted connection, one to start its task, one for the task to enrol in
# hypercorn's drain (``_stop_accepting``).
SETTLING_TURNS = 3


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
    listener = os.dup(bound.sock.fileno())
    config.bind = [f"fd://{listener}"]
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    config.errorlog = None
    config.include_server_header = False
    task_status.started(bound.url)
    try:
        await serve(app, config, shutdown_trigger=lambda: _stop_accepting(shutdown, listener))  # type: ignore[arg-type]  # starlette apps are ASGI 3 callables; hypercorn's Framework union does not name them
    finally:
        bound.sock.close()


async def _stop_accepting(shutdown: anyio.Event, listener: int) -> None:
    """hypercorn's shutdown trigger: once ``shutdown`` is set, stop accepting connections
    on ``listener``, then give those accepted already the loop turns they need to join
    hypercorn's drain, before it closes its listening socket.

    hypercorn closes its asyncio server as soon as the trigger returns. A connection
    accepted in the loop's turn before is then set up on a closed server, which asyncio
    (3.11) refuses halfway: the connection is never answered nor closed, until the
    collector finds its socket.
    """
    await shutdown.wait()
    asyncio.get_running_loop().remove_reader(listener)
    for _ in range(SETTLING_TURNS):
        await asyncio.sleep(0)


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
