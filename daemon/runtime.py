"""The composition root of ``spotsync run``: one task group owns every long-lived part.

    run_daemon
    ├── projections   (read models, caught up before the server reports ready)
    ├── handlers      (reactions: SpotDraft calls, documents, sink)
    ├── reconciler    (bounded status calls for overdue contracts)
    └── HTTP server   (webhooks, intake, query API)

Shutdown: the server stops accepting and drains in-flight requests (a webhook
answered 200 is committed by then); then the workers are cancelled. Cancelling a
handler mid-call is safe: its intent is in the log, and the next start resumes it.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import structlog
from anyio.abc import TaskStatus

from daemon.cli import without_passwords
from daemon.config import ConfigError, Settings
from daemon.http import create_app
from daemon.http.metrics import Metrics
from daemon.serving import BoundSocket, bind, serve_app
from eventstore import EventStore, PersistenceError, StoreBusyError, open_store
from eventstore.outages import OnOutage
from handlers.parked import list_parked
from handlers.reconciler import run_reconciler
from handlers.sink import Sink
from handlers.sink_worker import queued_contracts
from handlers.spotdraft import RateBudget, SpotDraftClient, SpotDraftCredentials
from handlers.worker import CHECKPOINT as HANDLERS_CHECKPOINT
from handlers.worker import run_handlers
from projections.rebuild import rebuild_if_outdated
from projections.runner import PROJECTION, REBUILDING, SHAPE, run_projections

log = structlog.get_logger("spotsync.daemon")

# How long in-flight HTTP requests may take to finish once shutdown begins.
GRACEFUL_SECONDS = 10.0
# How long a webhook naming only SpotDraft's contract id waits for the id map to catch
# up with the log (a contract created a moment ago) before it is filed as unmatched.
ID_MAP_WAIT_SECONDS = 2.0
# How long a thread that wants the GIL lets the one holding it run on before it must let
# go (Python's default: 5 ms). The event loop's thread holds the GIL nearly all the
# time; the SQLite store's writer thread needs it back after each statement it runs. At
# the default, a group commit of 16 webhooks that takes 0.3 ms on its own took 2.1 ms on
# average (p90 3.8 ms) and the loop sat idle waiting for it; at 0.2 ms, 1.2 ms (p90
# 1.5 ms). bench.ingest: 0.70 of the no-op route against 0.75. (Measured with the writer
# on a thread; ``run`` now commits in a writer process, and the threads left beside the
# loop are the SQLite reader's and anyio's workers.)
SWITCH_INTERVAL_SECONDS = 0.0002
# Objects the cyclic garbage collector lets pile up before a young collection (Python's
# default: 700). The objects of 32 webhooks in flight outnumber 700 on their own, so at
# the default a young collection ran every few requests and found nothing to free (the
# webhook route makes no cyclic garbage: none over 13,000 deliveries), and every tenth of
# those an older one, every hundredth a full pass over the whole heap: 4 % of the event
# loop's time under bench.ingest's load, none at 10,000.
YOUNG_COLLECTION_THRESHOLD = 10_000
# How long a starting daemon waits for the one before it to let go of the store: a
# process just killed holds it until the database has seen its session end.
CLAIM_WAIT_SECONDS = 5.0


def tune_the_interpreter() -> None:
    """Fit CPython to a long-running server: let threads beside the event loop (the
    SQLite writer's) have the GIL promptly, and collect garbage in fewer, larger passes."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)


def require_spotdraft(settings: Settings) -> None:
    """``run`` needs SpotDraft's address and credentials; name every one that is missing."""
    missing = [
        variable
        for variable, value in (
            ("SPOTDRAFT_BASE_URL", settings.base_url),
            ("SPOTDRAFT_CLIENT_ID", settings.client_id),
            ("SPOTDRAFT_CLIENT_SECRET", settings.client_secret),
            ("SPOTDRAFT_HMAC_KEY", settings.hmac_key),
        )
        if not value
    ]
    if missing:
        raise ConfigError(f"missing settings: {', '.join(missing)}")


@dataclass
class Running:
    """What a started daemon offers its owner (the CLI, the demo, the tests)."""

    url: str
    store: EventStore
    metrics: Metrics
    client: SpotDraftClient


class Daemon:
    """One daemon process's parts, built from settings; ``run`` serves until ``shutdown``."""

    def __init__(self, settings: Settings, *, insecure_local: bool = False) -> None:
        require_spotdraft(settings)
        if settings.api_token is None and not insecure_local:
            raise ConfigError(
                "SPOTSYNC_API_TOKEN is not set: set it, or pass --insecure-local to serve "
                "the API without a token on this machine only"
            )
        assert settings.base_url  # checked by require_spotdraft, for the type checker
        assert settings.client_id
        assert settings.client_secret
        self.credentials = SpotDraftCredentials(
            base_url=settings.base_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
        )
        self.settings = settings
        self.insecure_local = insecure_local
        self._ready = False

    async def run(
        self,
        shutdown: anyio.Event,
        *,
        bound: BoundSocket | None = None,
        task_status: TaskStatus[Running] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        settings = self.settings
        documents = await anyio.to_thread.run_sync(documents_folder, settings.documents_dir)
        bound = bound or bind(settings.listen_host, settings.listen_port)
        async with AsyncExitStack() as stack:
            stack.callback(bound.sock.close)  # when the start fails too, not only the server
            # SQLite commits in a process of their own, off the GIL of the loop that serves.
            store = await open_store(settings.database, writer_process=True)
            stack.push_async_callback(_close_store, store)
            await _claim_store(store)
            timeout = settings.spotdraft_timeout
            metrics = Metrics()
            client = SpotDraftClient(
                self.credentials,
                budget=RateBudget(settings.rate_limit),
                timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
                on_exchange=metrics.spotdraft_exchange,
            )
            await stack.enter_async_context(client)
            sink = None
            if settings.sink_url:
                sink = Sink(settings.sink_url, settings.sink_secret)
                stack.push_async_callback(sink.aclose)

            async def scrape_counts(metrics: Metrics) -> None:
                metrics.set_parked(len(await list_parked(store)))
                metrics.set_sink_queued(len(await queued_contracts(store)))

            app = create_app(
                store,
                settings,
                metrics=metrics,
                subscriptions_running=lambda: self._ready,
                lag_checkpoints=(PROJECTION, HANDLERS_CHECKPOINT),
                on_scrape=scrape_counts,
                allow_anonymous=self.insecure_local,
                id_map_wait=ID_MAP_WAIT_SECONDS,
            )
            handlers_stop = anyio.Event()
            # Rows folded by another version of the fold are folded again before serving.
            rebuilt = await rebuild_if_outdated(store, on_start=_rebuilding)
            if rebuilt is not None:
                log.info("read models rebuilt", events=rebuilt.position, seconds=rebuilt.seconds)
            lost: list[StoreBusyError] = []
            async with anyio.create_task_group() as workers:
                workers.start_soon(_keep_claim, store, shutdown, lost, metrics)
                await workers.start(
                    lambda task_status: run_projections(
                        store,
                        on_outage=_waiting_out("read models", metrics),
                        task_status=task_status,
                    )
                )
                await workers.start(
                    lambda task_status: run_reconciler(
                        store,
                        client,
                        interval=settings.reconcile_interval,
                        stale_after=settings.reconcile_stale_after,
                        batch=settings.reconcile_batch,
                        on_outage=_waiting_out("reconciler", metrics),
                        task_status=task_status,
                    )
                )
                head = await store.last_position()
                counting = _waiting_out("metrics", metrics)
                workers.start_soon(metrics.count_appends, store, head, counting)
                async with anyio.create_task_group() as handling:
                    await handling.start(
                        lambda task_status: run_handlers(
                            store,
                            client,
                            documents_dir=documents,
                            sink=sink,
                            # A create sent by a process that died may be in flight this long.
                            intent_lease=timeout + 5.0,
                            stop=handlers_stop,
                            grace=GRACEFUL_SECONDS,
                            on_outage=_waiting_out("handlers", metrics),
                            task_status=task_status,
                        )
                    )
                    self._ready = True
                    http_shutdown = anyio.Event()
                    async with anyio.create_task_group() as web:
                        url = await web.start(
                            lambda task_status: serve_app(
                                app,
                                bound,
                                shutdown=http_shutdown,
                                graceful_timeout=GRACEFUL_SECONDS,
                                task_status=task_status,
                            )
                        )
                        log.info("daemon started", url=url, database=_describe(settings.database))
                        task_status.started(Running(url, store, metrics, client))
                        await shutdown.wait()
                        self._ready = False
                        log.info("shutting down: draining in-flight requests")
                        http_shutdown.set()
                    log.info("shutting down: finishing in-flight work")
                    handlers_stop.set()
                workers.cancel_scope.cancel()
            log.info("daemon stopped")
            if lost:
                raise lost[0]


def documents_folder(setting: str) -> Path:
    """The documents folder, made if missing (owner-only) and written to once: a folder
    the daemon cannot write to stops it at the start, with one line, rather than defer
    every contract's download."""
    folder = Path(setting)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".spotsync-probe-"):
            pass
    except OSError as exc:
        raise OSError(
            f"SPOTSYNC_DOCUMENTS_DIR={setting}: spotsync cannot write there "
            f"({exc.strerror or exc})"
        ) from exc
    return folder


async def _claim_store(store: EventStore) -> None:
    """Be the one daemon of this store. Two would each run every handler: a second send
    to SpotDraft, a second notice to the sink for every step. (``projections rebuild``
    and ``import`` take the same claim: one drops the read models a daemon folds, the
    other adds events its handlers would act on.)"""
    with anyio.move_on_after(CLAIM_WAIT_SECONDS):
        while True:  # a poll: nothing tells this process when another one lets go
            if await store.try_claim("daemon"):
                return
            await anyio.sleep(0.25)
    raise StoreBusyError(
        "another spotsync run is already serving this database (or a projections rebuild "
        "or an import is running on it); one daemon per store (a second would repeat "
        "SpotDraft calls and sink notices): stop that one first"
    )


async def _keep_claim(
    store: EventStore, shutdown: anyio.Event, lost: list[StoreBusyError], metrics: Metrics
) -> None:
    """Hold the claim while serving; once it is lost for good, stop as SIGTERM would
    (in-flight work finished), then fail: a daemon that may no longer be the only one
    must not go on."""
    try:
        await store.keep_claims(_waiting_out("claim", metrics))
    except StoreBusyError as exc:
        log.error("stopping: this daemon no longer holds its store", error=str(exc))
        lost.append(exc)
        shutdown.set()


def _waiting_out(component: str, metrics: Metrics) -> OnOutage:
    """What a part of the daemon logs and counts each time it waits for a store that
    cannot be reached (``/readyz`` answers 503 meanwhile); it goes on once it is back."""

    def note(error: PersistenceError, delay: float) -> None:
        metrics.store_outage(component)
        log.warning(
            "store unreachable: waiting", component=component, error=str(error), retry_in=delay
        )

    return note


def _rebuilding(shape: int) -> None:
    if shape == REBUILDING:
        log.warning("a rebuild of the read models was cut short: rebuilding them")
        return
    log.warning(
        "the read models were written by another version of spotsync: rebuilding them",
        shape=shape,
        expected=SHAPE,
    )


async def _close_store(store: EventStore) -> None:
    # Closing must finish even while the daemon is being cancelled, but not hang it.
    with anyio.CancelScope(shield=True), anyio.move_on_after(GRACEFUL_SECONDS):
        await store.close()


def _describe(database: str) -> str:
    """The database for a log line: a path, or a URL without its password."""
    if "://" not in database:
        return os.path.abspath(database)
    return without_passwords(database)


@asynccontextmanager
async def running_daemon(
    settings: Settings, *, insecure_local: bool = False, bound: BoundSocket | None = None
) -> AsyncIterator[Running]:
    """Run a daemon for the duration of the block (the demo and the tests)."""
    daemon = Daemon(settings, insecure_local=insecure_local)
    shutdown = anyio.Event()
    async with anyio.create_task_group() as tg:
        running: Running = await tg.start(
            lambda task_status: daemon.run(shutdown, bound=bound, task_status=task_status)
        )
        try:
            yield running
        finally:
            shutdown.set()
