"""The event store port (``EventStore``: the write path and projections) and the audit reader
beside it (``EventReader``). Backends: ``ledger.memory`` (tests, benchmarks) and
``ledger.dynamodb``, each implementing both."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence

from ledger.domain.limits import EVENTS_PER_APPEND_MAX, STREAM_EVENTS_MAX
from ledger.envelope import RecordedEvent, StoredEvent

# ``EventReader.stored_events`` reads streams whole, even past the limit appends keep to: a stream
# that grew beyond it is itself something to see. Bounded all the same.
STORED_EVENTS_MAX = 10 * STREAM_EVENTS_MAX


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

    def events_at(
        self, positions: Sequence[tuple[str, int]]
    ) -> Mapping[tuple[str, int], RecordedEvent]:
        """The events at (stream id, version) ``positions`` that exist (missing ones are left
        out). Events are immutable, so a backend may read them eventually consistently: an event
        written a moment ago may be missing. This default loads each stream once."""
        found: dict[tuple[str, int], RecordedEvent] = {}
        wanted: dict[str, set[int]] = {}
        for stream_id, version in positions:
            wanted.setdefault(stream_id, set()).add(version)
        for stream_id, versions in wanted.items():
            for event in self.load(stream_id, version_max=min(max(versions), STREAM_EVENTS_MAX)):
                if event.version in versions:
                    found[(stream_id, event.version)] = event
        return found


class EventReader(ABC):
    """Audit reads of the events: what verification, tracing and debugging read, never a
    command or a projection. Each backend's event store implements it beside ``EventStore``.

    Guarantees:
    - ``stored_events`` returns every item of a stream, including those that are not events.
    - ``all_stream_ids`` sees every stream with any item, even one whose version 1 is gone.
    - every read is bounded (``STORED_EVENTS_MAX`` per stream, ``limit`` for searches).
    """

    @abstractmethod
    def all_stream_ids(self) -> Iterable[str]:
        """Every stream id with any event, each once, in no particular order."""

    @abstractmethod
    def stored_events(self, stream_id: str) -> list[StoredEvent]:
        """Every item of ``stream_id`` in version order, each decoded if it can be: what
        verification reads (``EventStore.load`` raises on the first item that is not an event).

        Raises ``LimitExceededError`` if the stream holds more than ``STORED_EVENTS_MAX`` items.
        """

    @abstractmethod
    def events_with(
        self, *, event_id: str | None = None, correlation_id: str | None = None, limit: int
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events with this event id or correlation id (exactly one of the two),
        in no particular order.

        The tables are keyed by stream and version, so this reads everything (a backend pushes
        the filter down where it can); it is for people debugging and auditing, never for a
        request path."""


def check_append_batch(events: Sequence[RecordedEvent]) -> None:
    """Assert what every backend relies on: consecutive versions of one stream, at least one."""
    assert 0 < len(events) <= EVENTS_PER_APPEND_MAX, len(events)
    first = events[0]
    for offset, event in enumerate(events):
        assert event.stream_id == first.stream_id, (event.stream_id, first.stream_id)
        assert event.version == first.version + offset, (event.version, first.version, offset)
        if offset:
            assert event.prev_hash == events[offset - 1].hash, event.version
