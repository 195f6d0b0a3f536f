"""The memory fake keeps the same contract as the real backends."""

from __future__ import annotations

import os
import time
import uuid
import warnings

import pytest

from eventstore import EventStore, MemoryEventStore
from eventstore.envelope import new_event_id
from tests.eventstore_contract import EventStoreContract, StoreFactory


class TestMemoryEventStore(EventStoreContract):
    durable = False

    @pytest.fixture
    def open_store(self) -> StoreFactory:
        shared = MemoryEventStore()  # "the same database" for every open within a test

        async def open_() -> EventStore:
            return shared

        return open_


class _DefaultReads(MemoryEventStore):
    """The memory store reading streams the way the interface does by default."""

    read_streams = EventStore.read_streams
    split_streams = EventStore.split_streams


class TestEventStoreDefaults(EventStoreContract):
    """What the interface implements itself keeps the contract too."""

    durable = False

    @pytest.fixture
    def open_store(self) -> StoreFactory:
        shared = _DefaultReads()

        async def open_() -> EventStore:
            return shared

        return open_


def test_event_ids_are_uuid7_ordered_by_the_millisecond_they_were_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """New event ids are RFC 9562 version 7: those made in a later millisecond sort after,
    so the stores' index of ids grows at one end; within one, they still differ."""
    moments = iter([1_795_000_000_000_000_000 + n * 1_000_000 for n in (0, 0, 1, 2)])
    monkeypatch.setattr(time, "time_ns", lambda: next(moments))
    ids = [new_event_id() for _ in range(4)]
    parsed = [uuid.UUID(i) for i in ids]
    assert [u.version for u in parsed] == [7] * 4
    assert all(u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == ids  # the canonical text form
    assert [u.int >> 80 for u in parsed] == [1_795_000_000_000 + n for n in (0, 0, 1, 2)]
    assert ids[0] != ids[1]
    assert ids[0] < ids[2]
    assert ids[1] < ids[2] < ids[3]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_makes_its_parents_event_ids() -> None:
    """Ids take their random bits from a pool read ahead: a child forked from a process
    holding a pool must read its own, or both would make the same ids (and an append of
    one would be taken for a repeat of the other's)."""
    new_event_id()  # the pool is read, and most of it is left for later ids

    def randomness(ids: list[str]) -> set[int]:
        return {uuid.UUID(i).int & ((1 << 80) - 1) for i in ids}

    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns of forking a process with threads; the child only writes
        # to a pipe and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write, " ".join(new_event_id() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = pipe.read().split()
    os.waitpid(child, 0)
    ours = [new_event_id() for _ in range(50)]
    assert len(theirs) == 50
    assert not randomness(theirs) & randomness(ours)
