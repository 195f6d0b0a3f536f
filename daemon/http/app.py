"""``create_app``: the daemon's starlette application, wired to a store and its settings.

/webhooks/spotdraft                 webhooks.py   HMAC signature
/v1/contracts[/{id}[/send|/events]] intake.py, queries.py   bearer token (auth.py)
/healthz, /readyz, /metrics         here          open, and show nothing secret
/openapi.json                       openapi.py
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import anyio
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from daemon.http.auth import protected
from daemon.http.errors import EXCEPTION_HANDLERS, CatchAllMiddleware, ORJSONResponse
from daemon.http.intake import send_contract, submit_contract
from daemon.http.limits import DEFAULT_MAX_BODY_BYTES
from daemon.http.metrics import CONTENT_TYPE_LATEST, Metrics
from daemon.http.openapi import openapi_document
from daemon.http.queries import contract_events, get_contract, list_contracts
from daemon.http.webhooks import WebhookEndpoint, decode_hmac_key
from eventstore import EventStore

log = structlog.get_logger("spotsync.http")

READINESS_TIMEOUT = 2.0


class HttpConfig(Protocol):
    """What the app needs of the settings (``daemon.config.Settings`` fits)."""

    @property
    def api_token(self) -> str | None: ...

    @property
    def hmac_key(self) -> str | None: ...


async def contracts_collection(request: Request) -> Response:
    # One route for both methods, so a 405 elsewhere on the path lists both in Allow.
    if request.method == "POST":
        return await submit_contract(request)
    return await list_contracts(request)


async def healthz(request: Request) -> Response:
    return ORJSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = request.app.state
    checks: dict[str, bool] = {"store": False, "subscriptions": True}
    with anyio.move_on_after(READINESS_TIMEOUT):
        try:
            await state.store.last_position()
            checks["store"] = True
        except Exception as exc:  # any failure to answer means "not ready", never a 500
            log.warning("readiness: store unreachable", error=type(exc).__name__)
    if state.subscriptions_running is not None:
        try:
            checks["subscriptions"] = bool(state.subscriptions_running())
        except Exception as exc:  # a failing probe is a "no", never a 500
            checks["subscriptions"] = False
            log.warning("readiness: subscription probe failed", error=type(exc).__name__)
    ready = all(checks.values())
    return ORJSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


async def metrics_endpoint(request: Request) -> Response:
    state = request.app.state
    metrics: Metrics = state.metrics
    if state.lag_checkpoints:
        # Lag is measured at scrape time, so it is right even when nothing else moves.
        with anyio.move_on_after(READINESS_TIMEOUT):
            try:
                head = await state.store.last_position()
                for name in state.lag_checkpoints:
                    done = await state.store.load_checkpoint(name)
                    metrics.set_subscription_lag(name, head - done)
            except Exception as exc:  # a scrape must not fail because the store did
                log.warning("metrics: lag not measured", error=type(exc).__name__)
    if state.on_scrape is not None:
        # Gauges read from the store at scrape time: with the store away, they keep their
        # last values, and the rest (the outage counters first) is still served.
        with anyio.move_on_after(READINESS_TIMEOUT):
            try:
                await state.on_scrape(metrics)
            except Exception as exc:
                log.warning("metrics: gauges not refreshed", error=type(exc).__name__)
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def openapi_endpoint(request: Request) -> Response:
    return ORJSONResponse(request.app.state.openapi)


def create_app(
    store: EventStore,
    config: HttpConfig,
    *,
    metrics: Metrics | None = None,
    subscriptions_running: Callable[[], bool] | None = None,
    lag_checkpoints: Sequence[str] = (),
    on_scrape: Callable[[Metrics], Awaitable[None]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allow_anonymous: bool = False,
    id_map_wait: float = 0.0,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The HTTP app over ``store``.

    - ``metrics``: shared with the handlers so they count API calls (a new one if None);
      reachable afterwards as ``app.state.metrics``.
    - ``subscriptions_running``: ``/readyz`` answers 503 while it returns False.
    - ``lag_checkpoints``: checkpoint names whose lag behind the log ``/metrics`` reports.
    - ``on_scrape``: awaited before each ``/metrics`` answer (e.g. to set the parked count).
    - ``allow_anonymous``: serve ``/v1`` without a token when ``config.api_token`` is
      None (``--insecure-local``); otherwise a missing token is a startup error.
    - ``id_map_wait``: how long a webhook that names only SpotDraft's contract id, and
      is not in the id map, waits for the read models to catch up with the log before
      it is filed as unmatched (the daemon, which runs them, sets it; 0: no wait).
    - ``extra_routes``: served by the same app, behind the same middleware (the ingest
      benchmark's no-op route, so that its baseline pays what the webhook route pays).
    """
    if config.api_token is None and not allow_anonymous:
        raise ValueError("SPOTSYNC_API_TOKEN is required (or run with --insecure-local)")
    if config.api_token is not None and not config.api_token.strip():
        raise ValueError("SPOTSYNC_API_TOKEN must not be blank")
    metrics = metrics if metrics is not None else Metrics()
    webhooks = WebhookEndpoint(
        store,
        metrics,
        decode_hmac_key(config.hmac_key),
        max_body_bytes=max_body_bytes,
        id_map_wait=id_map_wait,
    )
    routes = [
        Route("/webhooks/spotdraft", webhooks, methods=["POST"]),
        Route("/v1/contracts", protected(contracts_collection), methods=["GET", "POST"]),
        Route("/v1/contracts/{external_id}", protected(get_contract), methods=["GET"]),
        Route("/v1/contracts/{external_id}/send", protected(send_contract), methods=["POST"]),
        Route("/v1/contracts/{external_id}/events", protected(contract_events), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        *extra_routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(CatchAllMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    # A path with a slash too many is a JSON 404 like any unknown path, not an empty 307.
    app.router.redirect_slashes = False
    app.state.store = store
    app.state.metrics = metrics
    app.state.api_token = None if config.api_token is None else config.api_token.encode("utf-8")
    app.state.max_body_bytes = max_body_bytes
    app.state.subscriptions_running = subscriptions_running
    app.state.lag_checkpoints = tuple(lag_checkpoints)
    app.state.on_scrape = on_scrape
    app.state.openapi = openapi_document(bearer=config.api_token is not None)
    return app
