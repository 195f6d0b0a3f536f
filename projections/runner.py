"""The contract read models and the runner that keeps them up to date.

Four collections, written with the projection's checkpoint in one ``commit_projection``:

- ``contracts``: key external_id → the contract's document (SPEC section 5, plus ``_`` keys);
- ``contract_ids``: key ``str(contract_id)`` → ``{"external_id": ...}``, for webhooks that
  name only SpotDraft's id;
- ``reconcile_due``: key ``"{time} {external_id}"`` → ``{"external_id", ...}`` for every
  contract that is neither final nor failed; the time is when it was last heard from,
  moved later by the wait a quiet status answer asked for (``due_key``). Keys sort by
  time, so the reconciler reads the most overdue first and stops at the first one that
  is not overdue yet;
- ``contract_index``: key ``"{field}|{value}|{external_id}"`` → ``{}`` for each of a
  contract's ``INDEXED`` fields that has a value (``index_key``). A filter on one of them
  reads the keys of one value, in external id order (``indexed_ids``), rather than
  every contract's row; the keys of ``updated_at`` sort by time, so the contracts
  changed since a moment are the keys from it on (``updated_since``).

The runner reads the log a page at a time and commits one batch per page, so catching
up a long log costs one transaction per few hundred events; reading the next page,
folding this one and saving the one before overlap (``catch_up``). Each batch writes
only the last state of each contract it touched. States are cached in a bounded LRU
(the runner is the only writer, so the cache cannot go stale, and it is trimmed only
after a save, so an unsaved state is never read back); a miss reads the stored document
back, so memory stays flat however many contracts there are.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import anyio
from anyio.abc import TaskStatus

from eventstore import Document, DocumentWrite, EventStore, RecordedEvent
from eventstore.envelope import format_timestamp, parse_timestamp
from eventstore.outages import Backoff, OnOutage, store_outage
from projections.contract import INDEXED, ContractState, apply
from projections.events import external_id_of
from projections.longruns import one_failure

PROJECTION = "contracts"
CONTRACTS = "contracts"
CONTRACT_IDS = "contract_ids"
RECONCILE_DUE = "reconcile_due"
CONTRACT_INDEX = "contract_index"


@dataclass(frozen=True, slots=True)
class Tables:
    """Where one copy of the read models lives: its checkpoint name and its collections."""

    name: str
    contracts: str
    contract_ids: str
    reconcile_due: str
    index: str

    @property
    def collections(self) -> tuple[str, str, str, str]:
        return (self.contracts, self.contract_ids, self.reconcile_due, self.index)


LIVE = Tables(PROJECTION, CONTRACTS, CONTRACT_IDS, RECONCILE_DUE, CONTRACT_INDEX)
# A rebuild with --verify builds here first, to compare with the live copy.
SHADOW = Tables(
    "contracts-rebuild",
    "contracts-rebuild",
    "contract_ids-rebuild",
    "reconcile_due-rebuild",
    "contract_index-rebuild",
)


def index_key(field: str, value: str, external_id: str) -> str:
    """A contract's key in ``contract_index`` for ``field`` = ``value``. The keys of one
    value start with ``"{field}|{value}|"`` and sort by external id. (A status SpotDraft
    made up could hold ``|`` and share a prefix: readers check the rows they find.)"""
    return f"{field}|{value}|{external_id}"


async def indexed_ids(
    store: EventStore,
    field: str,
    value: str,
    *,
    after: str | None = None,
    limit: int | None = None,
    tables: Tables = LIVE,
) -> list[str]:
    """The external ids of the contracts whose ``field`` is ``value``, in order, after
    ``after`` (keyset pagination), at most ``limit``."""
    prefix = index_key(field, value, "")
    start = prefix if after is None else prefix + after
    stop = prefix[:-1] + chr(ord("|") + 1)  # the first key past every one of the prefix
    extra = 0 if after is None else 1  # ``after`` itself, when it matches
    keys = await store.document_keys(
        tables.index, start=start, stop=stop, limit=None if limit is None else limit + extra
    )
    ids = [key[len(prefix) :] for key in keys]
    if after is not None and ids and ids[0] == after:
        ids = ids[1:]
    return ids if limit is None else ids[:limit]


async def updated_since(
    store: EventStore, since: str, *, limit: int | None = None, tables: Tables = LIVE
) -> list[str]:
    """The external ids of the contracts whose ``updated_at`` is ``since`` or later (both
    as the rows write times, which sort as they follow each other), least recent first,
    at most ``limit``."""
    field = "updated_at"
    keys = await store.document_keys(
        tables.index,
        start=f"{field}|{since}",
        stop=f"{field}{chr(ord('|') + 1)}",
        limit=limit,
    )
    return [key.split("|", 2)[2] for key in keys]


# The shape of the rows. Raise it with any change to the fold or to the rows that makes
# rows written before differ from a fold of the same log today: ``spotsync run`` then
# rebuilds the read models before it serves (``projections.rebuild.rebuild_if_outdated``).
# 1: rows written before the shape was recorded; 2: quiet status answers (``_quiet_for``);
# 3: sink milestones held behind a parked one (``_sink_held``); 4: milestones queued for
# the sink's workers (``_sink_queue``, ``_sink_pending``); 5: a retry queues the parked
# milestones again ahead of those queued after them; 6: ``contract_index``; 7: the time of
# each contract's last change in ``contract_index`` (``updated_since``); 8: a parked sink
# delivery reads as ``sync: "failed"`` with its ``error`` (the flow's own in ``_error``).
SHAPE = 8
INDEX_SHAPE = 6  # the first shape whose read models have ``contract_index``
SHAPES = "projection_shapes"  # projection name -> {"shape": n}


# The shape recorded while a rebuild runs. One cut short has dropped the rows and left
# the checkpoint at 0: ``run`` then rebuilds before it serves, rather than answer from a
# read model that refolds the whole log at live speed.
REBUILDING = 0


def shape_write(tables: Tables = LIVE, shape: int = SHAPE) -> DocumentWrite:
    """The row that says ``tables`` hold rows of ``shape`` (today's, by default)."""
    return DocumentWrite(SHAPES, tables.name, {"shape": shape})


async def stored_shape(store: EventStore, tables: Tables = LIVE) -> int | None:
    """The shape of the rows in ``tables``; None when nothing is folded yet."""
    doc = await store.get_document(SHAPES, tables.name)
    if doc is not None and isinstance(doc.get("shape"), int):
        return int(doc["shape"])
    return None if await store.load_checkpoint(tables.name) == 0 else 1


_PAGE = 500


async def contracts_where(store: EventStore, field: str, value: str) -> list[tuple[str, Document]]:
    """Every live contract row whose ``INDEXED`` ``field`` is ``value``, in external id
    order: found through ``contract_index``, so the cost is that of the rows found."""
    if field not in INDEXED:
        raise ValueError(f"{field} is not an indexed field of the contract rows")
    found: list[tuple[str, Document]] = []
    if (await stored_shape(store) or SHAPE) < INDEX_SHAPE:
        # Rows an older spotsync wrote, with no index yet (``run`` rebuilds them): read
        # them all, a page at a time.
        after: str | None = None
        while True:
            rows = await store.query_documents(
                CONTRACTS, equals={field: value}, after_key=after, limit=_PAGE
            )
            found.extend(rows)
            if len(rows) < _PAGE:
                return found
            after = rows[-1][0]
    ids = await indexed_ids(store, field, value)
    for start in range(0, len(ids), _PAGE):
        chunk = ids[start : start + _PAGE]
        docs = await store.get_documents(CONTRACTS, chunk)
        found += [(i, docs[i]) for i in chunk if i in docs and docs[i].get(field) == value]
    return found


@dataclass(frozen=True, slots=True)
class Batch:
    """A folded batch: the rows to write, and the position its checkpoint moves to."""

    position: int
    writes: list[DocumentWrite]


# A step deferred on a transient failure (the client's own retries spent: an outage of
# SpotDraft, say) is tried again after 30 s, then 1, 2, 4 ... minutes, at most 15.
RETRY_FIRST = 30.0
RETRY_MAX = 15 * 60.0


def retry_at(state: ContractState) -> str | None:
    """When the reconciler should try a deferred step again, or None if none is."""
    if state.deferred is None or state.last_heard_at is None:
        return None
    delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (min(state.deferrals, 16) - 1))
    return format_timestamp(parse_timestamp(state.last_heard_at) + timedelta(seconds=delay))


def due_key(state: ContractState | None) -> str | None:
    """The contract's key in ``reconcile_due``, or None when it needs no reconciling.

    The key starts with when it was last heard from, moved later by the wait its last
    status answer asked for (``quiet_for``): the reconciler asks once a key is older
    than ``stale_after``.
    """
    if state is None or state.last_heard_at is None or state.final or state.error is not None:
        return None
    heard = state.last_heard_at
    if state.quiet_for:
        moved = parse_timestamp(heard) + timedelta(seconds=state.quiet_for)
        heard = format_timestamp(moved)
    return f"{heard} {state.external_id}"


class ContractProjection:
    """Folds batches of events into the read models and commits them with the checkpoint."""

    def __init__(
        self, store: EventStore, tables: Tables = LIVE, *, cache_size: int = 10_000
    ) -> None:
        self.store = store
        self.tables = tables
        self.cache_size = cache_size
        self._cache: OrderedDict[str, ContractState] = OrderedDict()
        # The contracts of the batch folded last: newest in the cache, maybe not saved yet.
        self._last_folded = 0

    async def state(self, external_id: str) -> ContractState | None:
        cached = self._cache.get(external_id)
        if cached is not None:
            self._cache.move_to_end(external_id)
            return cached
        doc = await self.store.get_document(self.tables.contracts, external_id)
        return None if doc is None else ContractState.from_document(doc)

    async def commit(self, events: Sequence[RecordedEvent]) -> None:
        """Fold ``events`` and commit the rows they change with the checkpoint at the last."""
        batch = await self.fold(events)
        if batch is not None:
            await self.save(batch)

    async def fold(self, events: Sequence[RecordedEvent]) -> Batch | None:
        """Fold ``events`` into the rows they change (the last state of each), not saved yet.

        The new states are cached at once, so the next batch can be folded while this one
        is being saved (``save``); the cache is trimmed only after a save, so a state not
        yet saved is never evicted and read back stale from the store.
        """
        if not events:
            return None
        touched: dict[str, tuple[ContractState | None, ContractState]] = {}
        before: ContractState | None
        current: ContractState | None
        cache = self._cache
        for event in events:
            external_id = external_id_of(event.stream)
            if external_id is None:
                continue  # unmatched webhooks: stored for support, not part of a contract
            pair = touched.get(external_id)
            if pair is not None:
                before, current = pair
            elif event.version == 1:
                before = current = None  # a new stream: nothing stored to read back
            else:
                before = current = await self.state(external_id)
            touched[external_id] = (before, apply(current, event))
        t = self.tables
        writes = [write for key, pair in touched.items() for write in state_writes(t, key, *pair)]
        for key, (_, after) in touched.items():
            cache[key] = after
            cache.move_to_end(key)
        self._last_folded = len(touched)
        return Batch(events[-1].position, writes)

    async def save(self, batch: Batch) -> None:
        """Commit a folded batch's rows with the checkpoint at its last position."""
        try:
            await self.store.commit_projection(self.tables.name, batch.position, batch.writes)
        except BaseException:
            self._cache.clear()  # it holds states that were never saved
            raise
        # The next batch may be folded already (``catch_up`` overlaps the two): its states
        # are the newest entries, kept until their own save, however small the cache.
        while len(self._cache) > max(self.cache_size, self._last_folded):
            self._cache.popitem(last=False)
        _progress(self.store, self.tables.name).advance(batch.position)


def state_writes(
    tables: Tables, external_id: str, before: ContractState | None, after: ContractState
) -> list[DocumentWrite]:
    """The rows that change when a contract's state moves from ``before`` to ``after``."""
    t = tables
    writes = [DocumentWrite(t.contracts, external_id, after.to_document())]
    old_id = None if before is None else before.contract_id
    if after.contract_id != old_id:
        # The map follows the contract's row: a rebuild, which sees only the last state,
        # writes the same rows however the contract got there.
        if old_id is not None:
            writes.append(DocumentWrite(t.contract_ids, str(old_id), None))
        if after.contract_id is not None:
            row = {"external_id": external_id}
            writes.append(DocumentWrite(t.contract_ids, str(after.contract_id), row))
    old, new = due_key(before), due_key(after)
    if old != new:
        if old is not None:
            writes.append(DocumentWrite(t.reconcile_due, old, None))
        if new is not None:
            doc = {
                "external_id": external_id,
                "last_heard_at": after.last_heard_at,
                "retry_at": retry_at(after),
            }
            writes.append(DocumentWrite(t.reconcile_due, new, doc))
    values = after.indexed()
    olds = (None,) * len(INDEXED) if before is None else before.indexed()
    for field, was, now in zip(INDEXED, olds, values, strict=True):
        if was != now:
            if was is not None:
                writes.append(DocumentWrite(t.index, index_key(field, was, external_id), None))
            if now is not None:
                writes.append(DocumentWrite(t.index, index_key(field, now, external_id), {}))
    return writes


async def catch_up(
    store: EventStore,
    projection: ContractProjection,
    *,
    until_position: int | None = None,
    batch_size: int = 500,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Fold everything after the checkpoint (up to ``until_position``); returns the position.

    Three stages overlap, each a batch apart: the next page is read while this one is
    folded, and the batch before is saved meanwhile (the store's writer commits and syncs
    while the fold goes on). Each stage holds at most one batch, so memory stays flat.
    """
    position = start = await store.load_checkpoint(projection.tables.name)
    pages_in, pages_out = anyio.create_memory_object_stream[list[RecordedEvent]](1)
    saves_in, saves_out = anyio.create_memory_object_stream[Batch](0)

    async def read() -> None:
        async with pages_in:
            batch: list[RecordedEvent] = []
            async for event in store.read_all(
                from_position=start + 1, until_position=until_position, page_size=batch_size
            ):
                batch.append(event)
                if len(batch) >= batch_size:
                    await pages_in.send(batch)
                    batch = []
            if batch:
                await pages_in.send(batch)

    async def save() -> None:
        nonlocal position
        async with saves_out:
            async for folded in saves_out:
                await projection.save(folded)
                position = folded.position
                if on_batch is not None:
                    on_batch(position)

    with one_failure():
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            tg.start_soon(save)
            async with pages_out, saves_in:
                async for page in pages_out:
                    folded = await projection.fold(page)
                    if folded is not None:
                        await saves_in.send(folded)
    return position


async def run_projections(
    store: EventStore,
    *,
    batch_size: int = 500,
    on_outage: OnOutage | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Keep the live read models up to date; ``started()`` once caught up. Runs until cancelled.

    With ``on_outage``, a store that goes away once it has started is waited out: told,
    then folded on from the last committed checkpoint once it is back.
    """
    projection = ContractProjection(store)
    if await stored_shape(store) is None:
        await store.commit_projection(PROJECTION, 0, [shape_write()])  # a new store
    started = False
    backoff = Backoff()
    while True:
        try:
            position = await catch_up(store, projection, batch_size=batch_size)
            if not started:
                task_status.started()
                started = True
            # The bound is a safety net for a missed wake-up (another process appending).
            with anyio.move_on_after(1.0):
                await store.wait_for_append(position)
        except Exception as exc:
            outage = store_outage(exc)
            if outage is None or on_outage is None or not started:
                raise
            delay = backoff.next()
            on_outage(outage, delay)
            await anyio.sleep(delay)
            # A batch may have been folded into the cache and never saved: start afresh.
            projection = ContractProjection(store)
        else:
            backoff.reset()


async def wait_for_projection(
    store: EventStore, position: int, *, name: str = PROJECTION, poll: float = 0.05
) -> None:
    """Return once projection ``name`` has folded the log up to ``position``.

    Callers bound it with ``anyio.fail_after``. In-process commits wake it at once; a
    projection run by another process is noticed by polling its checkpoint.
    """
    progress = _progress(store, name)
    while True:
        changed = progress.changed
        if await store.load_checkpoint(name) >= position:
            return
        with anyio.move_on_after(poll):
            await changed.wait()


class _Progress:
    def __init__(self) -> None:
        self.changed = anyio.Event()

    def advance(self, position: int) -> None:
        self.changed.set()
        self.changed = anyio.Event()


_PROGRESS: weakref.WeakKeyDictionary[EventStore, dict[str, _Progress]] = weakref.WeakKeyDictionary()


def _progress(store: EventStore, name: str) -> _Progress:
    return _PROGRESS.setdefault(store, {}).setdefault(name, _Progress())
