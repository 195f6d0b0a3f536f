"""Sink deliveries: Standard Webhooks signatures, retries with one stable id, attempts recorded."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest

from eventstore import MemoryEventStore, NewEvent, PersistenceError, RecordedEvent
from eventstore.envelope import format_timestamp, utcnow
from handlers.documents import document_file_name
from handlers.parked import retry_parked
from handlers.reconciler import reconcile_once
from handlers.sink import Sink, SinkAttempt, sign
from handlers.sink_worker import SinkWorker, earlier_attempts, queued_contracts
from projections.events import EventType, contract_stream
from projections.runner import ContractProjection, catch_up
from tests.unit.test_handlers_support import (
    FakeSpotDraft,
    append,
    handlers,
    request,
    settle,
    state_of,
    webhook,
)

pytestmark = pytest.mark.anyio


def test_signature_is_standard_webhooks_hmac_sha256() -> None:
    """v1,<base64 HMAC-SHA256 of id.timestamp.body>, with a whsec_ secret base64-decoded."""
    key = b"0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()
    assert (
        sign(secret, "msg_1", 1_700_000_000, b"{}") == "v1," + base64.b64encode(expected).decode()
    )
    plain = hmac.new(b"plain", b"msg_1.1.{}", hashlib.sha256).digest()
    assert sign("plain", "msg_1", 1, b"{}") == "v1," + base64.b64encode(plain).decode()


async def test_delivery_retries_until_2xx_with_the_same_webhook_id() -> None:
    """Two 503s then a 200: three attempts, one webhook-id, each attempt reported."""
    seen: list[httpx.Request] = []

    def answer(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200 if len(seen) == 3 else 503)

    attempts: list[SinkAttempt] = []

    async def record(attempt: SinkAttempt) -> None:
        attempts.append(attempt)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", "s3cret", http=http, base_delay=0.0, max_delay=0.0)
        reached = "2026-11-24T10:00:00.123456Z"
        data = {"external_id": "x"}
        assert await sink.deliver("msg_abc", "created", data, record, occurred_at=reached)
    assert [a.status for a in attempts] == [503, 503, 200]
    assert {r.headers["webhook-id"] for r in seen} == {"msg_abc"}
    assert {r.content for r in seen} == {seen[0].content}  # the same message each time
    assert json.loads(seen[0].content)["timestamp"] == reached
    last = seen[-1]
    message = f"msg_abc.{last.headers['webhook-timestamp']}.".encode() + last.content
    digest = hmac.new(b"s3cret", message, hashlib.sha256).digest()
    assert last.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    assert json.loads(last.content)["type"] == "contract.created"


async def test_a_sink_down_for_a_while_is_waited_for_and_one_down_for_good_given_up() -> None:
    """Twenty failures in a row (a deploy, a night) are waited out; a sink still down
    when the next attempt would start past ``give_up_after`` is given up on, to park."""
    failures_left = 20
    requests = 0

    def answer(req: httpx.Request) -> httpx.Response:
        nonlocal failures_left, requests
        requests += 1
        failures_left -= 1
        return httpx.Response(503 if failures_left >= 0 else 200)

    async def record(attempt: SinkAttempt) -> None:
        pass

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http, base_delay=0.0, max_delay=0.0)
        assert await sink.deliver("msg_1", "created", {}, record)
        assert requests == 21
        failures_left, requests = 10**6, 0  # down for good
        within_a_moment = Sink(
            "https://crm.test/hook", None, http=http,
            base_delay=0.001, max_delay=0.002, give_up_after=0.0,
        )
        assert not await within_a_moment.deliver("msg_2", "created", {}, record)
        assert requests == 1  # the next attempt would have started past give_up_after


async def test_a_sink_that_refuses_connections_is_recorded_attempt_by_attempt() -> None:
    """Nothing listening at the sink's address: each attempt is reported with no status
    and the connection error, and the delivery ends undelivered rather than raising."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    attempts: list[SinkAttempt] = []

    async def record(attempt: SinkAttempt) -> None:
        attempts.append(attempt)

    async with Sink(
        f"http://127.0.0.1:{port}/hook", None, max_attempts=2, base_delay=0.0, max_delay=0.0
    ) as sink:
        assert not await sink.deliver("msg_1", "created", {"external_id": "x"}, record)
    assert [(a.attempt, a.status, a.ok) for a in attempts] == [(1, None, False), (2, None, False)]
    assert all(a.error is not None and a.error.startswith("ConnectError") for a in attempts)


async def test_a_delivery_that_gets_through_cuts_the_others_waits_short() -> None:
    """One delivery waiting out a long pause is tried again as soon as another gets
    through: the sink is back, and the source system hears the news without the hour."""
    down = True
    first_failed = anyio.Event()

    def answer(req: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if down else 200)

    async def record(attempt: SinkAttempt) -> None:
        if not attempt.ok:
            first_failed.set()

    async def ignore(attempt: SinkAttempt) -> None:
        pass

    delivered: list[str] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http, base_delay=600.0, max_delay=600.0)

        async def waiting() -> None:
            if await sink.deliver("msg_a", "created", {}, record):
                delivered.append("msg_a")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiting)
                await first_failed.wait()  # now pausing 5 to 10 minutes
                down = False
                assert await sink.deliver("msg_b", "created", {}, ignore)
    assert delivered == ["msg_a"]


async def test_a_notice_given_up_on_records_how_many_attempts_it_took(tmp_path: Path) -> None:
    """Given up on by time, not by a count of attempts, the parked notice still says how
    many attempts were made."""

    def answer(req: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    store, client = MemoryEventStore(), FakeSpotDraft()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink(
            "https://crm.test/hook", None, http=http,
            base_delay=0.0, max_delay=0.0, give_up_after=0.0,
        )
        async with handlers(store, client, tmp_path, sink):
            await request(store)
            with anyio.fail_after(5):
                state = await settle(store)
    assert state.sink_parked is not None
    assert state.sink_parked["attempts"] == 1
    assert state.sink_parked["error"] == "the sink answered 503"


async def test_a_delivery_taken_up_after_a_restart_counts_its_day_from_its_first_attempt() -> None:
    """A notice whose sink has been down for most of a day when the daemon restarts goes
    on from the attempts the log shows: numbered on, and given up on once its day is
    over, not given a new day by each restart."""
    requests = 0

    def answer(req: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return httpx.Response(503)

    store = MemoryEventStore()
    stream = contract_stream("deal-1")
    began = utcnow() - timedelta(hours=23, minutes=59)
    base = {"milestone": "created", "webhook_id": "msg_1"}
    failed = [
        NewEvent(
            EventType.SINK_ATTEMPT_FAILED,
            {**base, "status": 503, "attempt": n, "error": "the sink answered 503"},
            "api",
            recorded_at=began + timedelta(seconds=n),
        )
        for n in (1, 2, 3)
    ]
    await store.append(
        stream,
        [
            NewEvent(EventType.CONTRACT_CREATED, {"id": "T-1", "contract_id": 1}, "api"),
            NewEvent(EventType.SINK_QUEUED, {**base, "trigger": None}, "api", recorded_at=began),
            *failed,
        ],
        expected_version=None,
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        # Pauses of minutes from the fourth attempt on: its day is over before the fifth.
        sink = Sink("https://crm.test/hook", None, http=http, base_delay=60.0)
        worker = SinkWorker(store, sink)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                await tg.start(worker.run)
                worker.wake(stream)
                while (await state_of(store)).sink_parked is None:
                    await store.wait_for_append(await store.last_position())
                tg.cancel_scope.cancel()
    history = await store.read_stream(stream)
    attempts = [e.data["attempt"] for e in history if e.type == EventType.SINK_ATTEMPT_FAILED]
    assert attempts == [1, 2, 3, 4]
    assert requests == 1
    parked = (await state_of(store)).sink_parked
    assert parked is not None
    assert parked["attempts"] == 4


async def test_a_retry_after_a_restart_gives_the_delivery_a_day_of_its_own() -> None:
    """Attempts made before an operator's retry are not counted against it."""
    history = [
        _event(EventType.SINK_QUEUED, {"milestone": "sent", "webhook_id": "m"}),
        _event(EventType.SINK_ATTEMPT_FAILED, {"milestone": "sent", "webhook_id": "m"}),
        _event(EventType.SINK_GAVE_UP, {"milestone": "sent", "webhook_id": "m"}),
        _event(EventType.RETRY_REQUESTED, {}),
        _event(EventType.SINK_ATTEMPT_FAILED, {"milestone": "sent", "webhook_id": "m"}),
    ]
    queued = {"milestone": "sent", "webhook_id": "m"}
    resumed = earlier_attempts(history, queued)
    assert resumed is not None
    assert (resumed.attempts, resumed.first_at) == (1, history[-1].recorded_at)
    assert earlier_attempts(history[:4], queued) is None
    assert earlier_attempts(history, {"milestone": "synced", "webhook_id": "n"}) is None


def _event(type_: str, data: dict[str, object]) -> RecordedEvent:
    return RecordedEvent(1, "contract-deal-1", 1, type_, data, {"event_id": "e"}, utcnow())


async def test_sink_told_of_each_milestone_and_synced_waits_for_it(tmp_path: Path) -> None:
    """The sink hears created, sent and synced; a sink that gave up is parked, not synced."""
    bodies: list[dict[str, object]] = []
    down = True

    def answer(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        if down and body["type"] == "contract.synced":
            return httpx.Response(500)
        bodies.append(body)
        return httpx.Response(204)

    store, client = MemoryEventStore(), FakeSpotDraft()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http, max_attempts=2, base_delay=0.0)
        async with handlers(store, client, tmp_path, sink):
            await request(store, send={})
            with anyio.fail_after(5):
                await settle(store)
                await webhook(store, "CONTRACT_EXECUTED")
                state = await settle(store)
                # Executed, but the source system was not told: a person must act.
                assert (state.progress, state.sync) == ("executed", "failed")
                assert state.sink_parked is not None
                error = state.to_document()["error"]
                assert error["step"] == "sink synced"
                assert "spotsync parked retry deal-1" in error["fix"]
                down = False
                await store.append(
                    contract_stream("deal-1"),
                    [_retry()],
                    expected_version=None,
                )
                state = await settle(store)
    assert [b["type"] for b in bodies] == ["contract.created", "contract.sent", "contract.synced"]
    assert state.sync == "synced"
    synced = bodies[-1]["data"]
    assert isinstance(synced, dict)
    assert synced["key_pointers"] == {"contract_value": 12000}
    assert not any(key.startswith("_") for key in synced)
    failed = [
        e
        for e in await store.read_stream("contract-deal-1")
        if e.type == EventType.SINK_ATTEMPT_FAILED
    ]
    assert len(failed) == 2


async def test_a_milestone_parked_behind_another_is_not_lost_and_keeps_its_turn(
    tmp_path: Path,
) -> None:
    """Sink down through created and sent: both stay parked; a retry tells them in order."""
    told: list[tuple[str, str]] = []
    first_ids: dict[str, str] = {}
    down = True

    def answer(req: httpx.Request) -> httpx.Response:
        milestone = json.loads(req.content)["type"]
        first_ids.setdefault(milestone, req.headers["webhook-id"])
        if down:
            return httpx.Response(503)
        told.append((milestone, req.headers["webhook-id"]))
        return httpx.Response(200)

    store, client = MemoryEventStore(), FakeSpotDraft()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http, max_attempts=2, base_delay=0.0)
        async with handlers(store, client, tmp_path, sink):
            await request(store, send={})
            with anyio.fail_after(5):
                state = await settle(store)
                assert (state.progress, state.sync) == ("sent", "failed")
                assert state.sink_parked is not None
                assert state.sink_parked["milestone"] == "created"
                down = False
                await retry_parked(store, "deal-1")
                state = await settle(store)
    assert [milestone for milestone, _ in told] == ["contract.created", "contract.sent"]
    assert all(first_ids[milestone] == webhook_id for milestone, webhook_id in told)
    assert state.notified == ("created", "sent")
    assert state.sink_parked is None


async def test_a_parked_synced_delivery_is_retried_under_its_first_webhook_id(
    tmp_path: Path,
) -> None:
    """An operator's retry and a reconciler's nudge re-send synced once, with the same id."""
    synced: list[str] = []

    def answer(req: httpx.Request) -> httpx.Response:
        if json.loads(req.content)["type"] != "contract.synced":
            return httpx.Response(200)
        synced.append(req.headers["webhook-id"])
        return httpx.Response(503)

    store, client = MemoryEventStore(), FakeSpotDraft()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http, max_attempts=2, base_delay=0.0)
        async with handlers(store, client, tmp_path, sink):
            await request(store, send={})
            with anyio.fail_after(5):
                await settle(store)
                await webhook(store, "CONTRACT_EXECUTED")
                await settle(store)
                assert len(synced) == 2
                await retry_parked(store, "deal-1")
                await settle(store)
                assert len(synced) == 4
                observed = {"contract_status": "EXECUTED", "by": "reconciler"}
                await append(store, EventType.STATUS_OBSERVED, observed, source="reconciler")
                state = await settle(store)
    assert len(synced) == 6
    assert set(synced) == {synced[0]}
    assert state.sink_parked is not None
    assert state.sink_parked["webhook_id"] == synced[0]


async def test_a_sink_that_hangs_holds_up_no_spotdraft_work(tmp_path: Path) -> None:
    """Twenty contracts are created and sent while the sink answers nothing at all; once
    it answers, each hears its milestones in order, under one id per milestone."""
    answering = anyio.Event()
    told: dict[str, list[str]] = {}

    async def answer(req: httpx.Request) -> httpx.Response:
        await answering.wait()
        body = json.loads(req.content)
        told.setdefault(body["data"]["external_id"], []).append(body["type"])
        return httpx.Response(204)

    store, client = MemoryEventStore(), FakeSpotDraft()
    deals = [f"deal-{n:02d}" for n in range(20)]
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http)
        async with handlers(store, client, tmp_path, sink):
            for deal in deals:
                await request(store, deal, send={})
            with anyio.fail_after(10):
                while client.calls["send_to_counterparties"] < len(deals):
                    await store.wait_for_append(await store.last_position())
                assert told == {}
                answering.set()
                states = [await settle(store, deal) for deal in deals]
    assert all(state.notified == ("created", "sent") for state in states)
    assert told == {deal: ["contract.created", "contract.sent"] for deal in deals}


async def test_every_sink_worker_stays_at_work_after_going_idle(tmp_path: Path) -> None:
    """After a first burst has been told and the workers have gone idle, a second burst
    is again told by all sixteen at once: a sink that answers only when sixteen notices
    are in flight together gets them."""
    gathered = anyio.Event()
    in_flight = 0

    async def answer(req: httpx.Request) -> httpx.Response:
        nonlocal in_flight
        if json.loads(req.content)["data"]["external_id"].startswith("second"):
            in_flight += 1
            if in_flight == 16:
                gathered.set()
            await gathered.wait()
        return httpx.Response(204)

    store, client = MemoryEventStore(), FakeSpotDraft()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http)
        async with handlers(store, client, tmp_path, sink):
            for burst in ("first", "second"):
                deals = [f"{burst}-{n:02d}" for n in range(20)]
                for deal in deals:
                    await request(store, deal)
                with anyio.fail_after(10):
                    states = [await settle(store, deal) for deal in deals]
                assert all(state.notified == ("created",) for state in states)


async def test_milestones_queued_before_a_stop_are_delivered_after_the_start(
    tmp_path: Path,
) -> None:
    """What the sink had not heard when the daemon stopped is in the log as queued: the
    next start's sink workers find it through the read model and deliver it."""
    told: list[str] = []
    answering = anyio.Event()

    stamps: list[str] = []

    async def answer(req: httpx.Request) -> httpx.Response:
        await answering.wait()
        told.append(req.headers["webhook-id"])
        stamps.append(json.loads(req.content)["timestamp"])
        return httpx.Response(200)

    store, client = MemoryEventStore(), FakeSpotDraft()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http)
        async with handlers(store, client, tmp_path, sink):
            await request(store)
            with anyio.fail_after(5):
                while not (await state_of(store)).sink_queue:
                    await store.wait_for_append(await store.last_position())
        queued = (await state_of(store)).sink_queue
        assert [q["milestone"] for q in queued] == ["created"]
        await catch_up(store, ContractProjection(store))
        assert await queued_contracts(store) == ["deal-1"]  # what /metrics counts, too

        answering.set()
        async with handlers(store, client, tmp_path, sink):
            with anyio.fail_after(5):
                state = await settle(store)
    assert state.notified == ("created",)
    assert told == [queued[0]["webhook_id"]]
    history = await store.read_stream("contract-deal-1")
    reached = next(e.recorded_at for e in history if e.type == EventType.SINK_QUEUED)
    assert stamps == [format_timestamp(reached)]  # when it happened, not when it was sent
    assert client.calls["create_contract"] == 1


async def test_a_notice_left_queued_is_taken_up_at_an_event_of_the_contract(
    tmp_path: Path,
) -> None:
    """A notice queued with no worker woken for it (by a process that stopped right
    after, or whose lane stopped on a store error) is delivered as soon as the handlers
    see an event of that contract."""
    told: list[str] = []

    def answer(req: httpx.Request) -> httpx.Response:
        told.append(json.loads(req.content)["type"])
        return httpx.Response(200)

    store, client = MemoryEventStore(), FakeSpotDraft()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http)
        async with handlers(store, client, tmp_path, sink):
            await request(store)
            with anyio.fail_after(5):
                await settle(store)
            assert told == ["contract.created"]
            left = {"milestone": "sent", "webhook_id": "msg_left", "trigger": None}
            await append(store, EventType.SINK_QUEUED, left, source="api")
            await webhook(store, "CONTRACT_SENT_TO_COUNTERPARTY")
            with anyio.fail_after(5):
                state = await settle(store)
    assert told == ["contract.created", "contract.sent"]
    assert state.notified == ("created", "sent")


async def test_a_retry_tells_the_parked_milestone_before_one_queued_after_it(
    tmp_path: Path,
) -> None:
    """A milestone queued behind a parked one and not yet held back when the operator
    retries (the sink's workers were busy, or stopped) is told after the parked one."""
    told: list[tuple[str, str]] = []

    def answer(req: httpx.Request) -> httpx.Response:
        told.append((json.loads(req.content)["type"], req.headers["webhook-id"]))
        return httpx.Response(200)

    store, client = MemoryEventStore(), FakeSpotDraft()
    async with handlers(store, client, tmp_path):  # no sink: created and sent, untold
        await request(store, send={})
        with anyio.fail_after(5):
            assert (await settle(store)).sync == "sent"
    gave_up = {"milestone": "created", "webhook_id": "msg_c", "attempts": 8, "error": "503"}
    await append(store, EventType.SINK_GAVE_UP, gave_up, source="api")
    queued = {"milestone": "sent", "webhook_id": "msg_s", "trigger": None}
    await append(store, EventType.SINK_QUEUED, queued, source="api")
    await retry_parked(store, "deal-1")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http)
        async with handlers(store, client, tmp_path, sink):
            with anyio.fail_after(5):
                state = await settle(store)
    assert told == [("contract.created", "msg_c"), ("contract.sent", "msg_s")]
    assert state.notified == ("created", "sent")
    assert state.sink_parked is None


class _FlakyReads(MemoryEventStore):
    """A store whose next ``read_stream`` fails once ``failing`` is set."""

    failing = False

    async def read_stream(self, stream: str, *, from_version: int = 1) -> list[RecordedEvent]:
        if self.failing:
            self.failing = False
            raise PersistenceError("database is locked")
        return await super().read_stream(stream, from_version=from_version)


async def _queued_in_flaky_store(milestone: str) -> _FlakyReads:
    """A contract with ``milestone`` queued for the sink, in a store whose reads can fail."""
    store = _FlakyReads()
    await request(store)
    queued = {"milestone": milestone, "webhook_id": "msg_1", "trigger": None}
    await append(store, EventType.SINK_QUEUED, queued, source="api")
    return store


async def test_a_store_error_reading_a_lane_stops_only_that_lane(tmp_path: Path) -> None:
    """A lane that cannot read its stream leaves the notice queued; the sink's workers
    (and the handlers with them) keep running, and the next wake delivers it."""
    told: list[str] = []

    def answer(req: httpx.Request) -> httpx.Response:
        told.append(json.loads(req.content)["type"])
        return httpx.Response(200)

    store = await _queued_in_flaky_store("created")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        worker = SinkWorker(store, Sink("https://crm.test/hook", None, http=http))
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)
            with anyio.fail_after(5):
                await worker.wait_idle()
                store.failing = True
                worker.wake(contract_stream("deal-1"))
                await worker.wait_idle()
                assert told == []
                worker.wake(contract_stream("deal-1"))
                await worker.wait_idle()
            tg.cancel_scope.cancel()
    assert told == ["contract.created"]
    assert (await state_of(store)).notified == ("created",)


async def test_a_lane_stopped_by_a_store_error_is_taken_up_again_by_itself(
    tmp_path: Path,
) -> None:
    """A voided or failed contract may never see another event to wake its lane: after a
    store error, the lane is taken up again ``retry_after`` later all the same."""
    delivered = anyio.Event()

    def answer(req: httpx.Request) -> httpx.Response:
        delivered.set()
        return httpx.Response(200)

    store = await _queued_in_flaky_store("failed")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http)
        worker = SinkWorker(store, sink, retry_after=0.05)
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)
            store.failing = True
            worker.wake(contract_stream("deal-1"))  # as the handlers do: its read fails
            with anyio.fail_after(5):
                await delivered.wait()
                await worker.wait_idle()
            tg.cancel_scope.cancel()
    assert store.failing is False
    assert (await state_of(store)).notified == ("failed",)


async def test_a_contract_whose_synced_notice_is_parked_is_asked_less_often(
    tmp_path: Path,
) -> None:
    """Executed and stored, its synced notice parked (the sink refuses it): the contract
    waits on an operator, so the reconciler's calls, which also re-send the notice, back
    off like those for a contract awaiting signature."""

    def answer(req: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if json.loads(req.content)["type"] == "contract.synced" else 200)

    store, client = MemoryEventStore(), FakeSpotDraft()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sink = Sink("https://crm.test/hook", None, http=http, max_attempts=2, base_delay=0.0)
        async with handlers(store, client, tmp_path, sink):
            await request(store, send={})
            with anyio.fail_after(5):
                await settle(store)
                client.contracts["T-1"]["contract_status"] = "EXECUTED"
                await webhook(store, "CONTRACT_EXECUTED")
                state = await settle(store)
            assert state.sink_parked is not None
            assert state.sink_parked["milestone"] == "synced"

            async def asked(after: timedelta) -> bool:
                with anyio.fail_after(5):
                    await settle(store)
                await catch_up(store, ContractProjection(store))
                report = await reconcile_once(
                    store, client, stale_after=900, batch=5, now=utcnow() + after
                )
                return report.status_calls == 1

            for minutes in (15, 30, 60):
                assert not await asked(timedelta(minutes=minutes - 1))
                assert await asked(timedelta(minutes=minutes))


def _retry() -> NewEvent:
    return NewEvent(EventType.RETRY_REQUESTED, {"reason": None}, "operator")


def test_document_names_cannot_leave_the_folder() -> None:
    """Whatever the external_id, the file name is one plain, distinct name in the folder."""
    names = [document_file_name(x) for x in ("../../etc/passwd", "..", "a/b", "a\\b", ".x", "é漢")]
    for name in names:
        assert "/" not in name
        assert "\\" not in name
        assert not name.startswith(".")
        assert name.endswith(".pdf")
    assert len(set(names)) == len(names)
    assert document_file_name("hubspot-deal-10024").startswith("hubspot-deal-10024-")
