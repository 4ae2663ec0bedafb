"""The event store port. Backends: ``ledger.memory`` (tests, benchmarks) and ``ledger.dynamodb``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from ledger.domain.limits import EVENTS_PER_APPEND_MAX, STREAM_EVENTS_MAX
from ledger.envelope import RecordedEvent


class EventStore(ABC):
    """Append-only streams of ``RecordedEvent``, versions 1, 2, 3… per stream.

    Guarantees:
    - ``append`` is atomic: every event of the call is stored, or none is.
    - ``append`` raises ``ConcurrencyError`` if any of its versions already exists in the stream
      (another writer got there first); the caller reloads and decides again.
    - ``load`` returns the stream in version order, read with strong consistency.
    """

    @abstractmethod
    def load(
        self, stream_id: str, *, version_max: int | None = None, limit: int = STREAM_EVENTS_MAX
    ) -> list[RecordedEvent]:
        """Events of ``stream_id`` with ``version <= version_max``, at most ``limit`` of them.

        Raises ``LimitExceededError`` if the stream holds more than ``limit`` events in range.
        """

    @abstractmethod
    def append(self, events: Sequence[RecordedEvent]) -> None:
        """Store ``events`` (one stream, consecutive versions following its head) atomically."""

    @abstractmethod
    def stream_ids(self) -> Iterable[str]:
        """Every stream id, each once, in no particular order (to rebuild projections: the
        change feed is the table's stream, not a global log kept here)."""


def check_append_batch(events: Sequence[RecordedEvent]) -> None:
    """Assert what every backend relies on: consecutive versions of one stream, at least one."""
    assert 0 < len(events) <= EVENTS_PER_APPEND_MAX, len(events)
    first = events[0]
    for offset, event in enumerate(events):
        assert event.stream_id == first.stream_id, (event.stream_id, first.stream_id)
        assert event.version == first.version + offset, (event.version, first.version, offset)
        if offset:
            assert event.prev_hash == events[offset - 1].hash, event.version
