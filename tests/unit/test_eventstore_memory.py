"""The memory fake keeps the same contract as the real backends."""

from __future__ import annotations

import pytest

from eventstore import EventStore, MemoryEventStore
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
