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
