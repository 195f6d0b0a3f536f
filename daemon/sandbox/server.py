"""The sandbox: state, lifecycle, webhooks and the ASGI app, run in one task group.

``Sandbox.serve(options)`` serves it over HTTP on loopback (what the CLI, the demo and
the loopback tests use); ``Sandbox.running(options)`` runs it without a server, for
in-process use through ``httpx.ASGITransport(sandbox.app)``. Either way the webhook
sender and auto-sign timers live in the sandbox's own task group and end with it.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import quote, urlencode

import anyio
from anyio.abc import TaskGroup
from starlette.requests import Request
from starlette.routing import Router

from daemon.sandbox import api, control
from daemon.sandbox.contracts import Contract, ContractBook, LifecycleError, Signatory
from daemon.sandbox.gate import Gate
from daemon.sandbox.options import Faults, SandboxOptions
from daemon.sandbox.stats import Stats
from daemon.sandbox.webhooks import Delivery, WebhookSender, activity_payload
from daemon.serving import bind, serve_app


class Sandbox:
    """A local SpotDraft workspace. Build it with ``serve`` or ``running``."""

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.options = options or SandboxOptions()
        # Simulation, not security: one seeded generator makes every fault reproducible.
        self.rng = random.Random(self.options.seed)  # noqa: S311
        self.stats = Stats()
        self.book = ContractBook()
        self.gate = Gate(self.options, self.rng, self.stats)
        self.sender = WebhookSender(self.options, self.rng, self.stats, self._notify)
        self.url: str | None = None
        self._downloads: dict[str, tuple[int, float]] = {}
        self._tg: TaskGroup | None = None
        self._changed = anyio.Event()
        api_routes = api.routes(self)
        self.app = Router(
            routes=[*api_routes, *control.routes(self)],
            redirect_slashes=False,
            default=control.slash_redirect(api_routes, self),  # type: ignore[arg-type]  # an ASGI callable
        )

    # -- running -----------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def running(cls, options: SandboxOptions | None = None) -> AsyncIterator[Sandbox]:
        """The sandbox with its webhook sender running, but no HTTP server."""
        sandbox = cls(options)
        async with anyio.create_task_group() as tg:
            sandbox._tg = tg
            await tg.start(sandbox.sender.run)
            try:
                yield sandbox
            finally:
                sandbox.sender.close()
                tg.cancel_scope.cancel()

    @classmethod
    @asynccontextmanager
    async def serve(
        cls, options: SandboxOptions | None = None, *, graceful_timeout: float = 1.0
    ) -> AsyncIterator[Sandbox]:
        """The sandbox served by hypercorn on ``options.host:options.port`` (0: any free port)."""
        async with cls.running(options) as sandbox:
            bound = bind(sandbox.options.host, sandbox.options.port)
            shutdown = anyio.Event()
            async with anyio.create_task_group() as server:
                sandbox.url = await server.start(_serve, sandbox, bound, shutdown,
                                                 graceful_timeout)
                try:
                    yield sandbox
                finally:
                    shutdown.set()

    # -- what tests and the control endpoints use --------------------------------------

    @property
    def faults(self) -> Faults:
        return self.gate.faults

    def set_faults(self, faults: Faults) -> None:
        self.gate.set_faults(faults)

    def contracts(self) -> list[dict[str, Any]]:
        """Every contract: composite id, status, external_metadata, document sha256."""
        return [c.control_view() for c in self.book.all()]

    @property
    def deliveries(self) -> list[Delivery]:
        return self.sender.deliveries

    def document(self, composite_id: str) -> bytes | None:
        contract = self.book.get(composite_id)
        return contract.document if contract else None

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds; it is checked after every change of state
        (contract transitions, webhook attempts). Bound it with ``anyio.fail_after``."""
        while not condition():
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def advance(self, composite_id: str) -> str:
        """Move a contract to its next stage; raises KeyError or LifecycleError."""
        contract = self.book.get(composite_id)
        if contract is None:
            raise KeyError(composite_id)
        self._advance(contract)
        await anyio.lowlevel.checkpoint()
        return contract.status

    # -- lifecycle, used by the API handlers -------------------------------------------

    def public_url(self, request: Request) -> str:
        return self.url or str(request.base_url).rstrip("/")

    def create_contract(self, **values: Any) -> Contract:
        contract, activities = self.book.create(**values)
        self._emit(contract, [(a, None, None) for a in activities])
        return contract

    def send(self, contract: Contract, body: dict[str, Any]) -> None:
        """Send ``contract`` to its counterparties as a send_to_counterparties ``body`` asks."""
        contract.send_to(body)
        self._advance(contract)
        if self.options.auto_sign is not None and self._tg is not None:
            self._tg.start_soon(self._auto_sign, contract)

    def void(self, contract: Contract) -> None:
        self.book.void(contract)
        self._emit(contract, [("CONTRACT_VOIDED", None, None)])

    def retrigger(self, contract: Contract) -> None:
        """Send the contract's latest activity again, as it stands now."""
        self._emit(contract, [(contract.activities[-1], None, None)], record=False)

    def issue_download(self, contract: Contract, base_url: str) -> str:
        """A signed url as SpotDraft's storage issues them: the file's path, and the
        temporary credential in the query (``?signature=``), never in the path."""
        seed = f"{self.options.seed}:{contract.contract_id}:{len(self._downloads)}"
        token = hashlib.sha256(seed.encode()).hexdigest()[:32]
        self._downloads[token] = (contract.contract_id,
                                  time.monotonic() + self.options.download_ttl_s)
        return f"{base_url}/_files/{quote(contract.file_name)}?{urlencode({'signature': token})}"

    def redeem_download(
        self, token: str, file_name: str
    ) -> tuple[bytes, str] | Literal["expired", "mismatch"]:
        """The file for a signed url, or why not: ``"expired"`` (also an unknown or
        forged signature) or ``"mismatch"`` (the signature is for another path)."""
        contract_id, expires = self._downloads.get(token, (0, 0.0))
        contract = self.book.by_contract_id(contract_id)
        if contract is None or contract.document is None or time.monotonic() >= expires:
            return "expired"
        if file_name != contract.file_name:
            return "mismatch"
        return contract.document, contract.file_name

    def _advance(self, contract: Contract) -> None:
        _, activities = self.book.advance(contract)
        # Each signature lands while the contract is still in SIGN.
        self._emit(contract, [
            (activity, actor, "SIGN" if activity == "CONTRACT_SIGNED" else None)
            for activity, actor in activities
        ])

    def _emit(self, contract: Contract,
              activities: list[tuple[str, Signatory | None, str | None]],
              *, record: bool = True) -> None:
        payloads = [activity_payload(contract, a, actor, status) for a, actor, status in activities]
        if record:
            contract.activities.extend(a for a, _, _ in activities)
        self.sender.enqueue(payloads, self.gate.faults)
        self._notify()

    async def _auto_sign(self, contract: Contract) -> None:
        assert self.options.auto_sign is not None
        while contract.status in ("REDLINING", "SIGN"):
            before = contract.status
            await anyio.sleep(self.options.auto_sign)
            if contract.status == before:
                try:
                    self._advance(contract)
                except LifecycleError:
                    return


async def _serve(
    sandbox: Sandbox, bound: Any, shutdown: anyio.Event, graceful_timeout: float,
    *, task_status: Any = anyio.TASK_STATUS_IGNORED,
) -> None:
    await serve_app(sandbox.app, bound, shutdown=shutdown, graceful_timeout=graceful_timeout,
                    task_status=task_status)
