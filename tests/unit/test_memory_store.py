from __future__ import annotations

from ledger.memory import MemoryEventStore
from ledger.store import EventStore
from tests.integration.store_contract import EventStoreContract


class TestMemoryEventStore(EventStoreContract):
    def make_store(self) -> EventStore:
        return MemoryEventStore()
