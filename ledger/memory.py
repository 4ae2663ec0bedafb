"""In-memory event store: DynamoDB's semantics (atomic appends, version conflicts), thread-safe."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ledger.domain.errors import ConcurrencyError, LimitExceededError
from ledger.domain.limits import STREAM_EVENTS_MAX
from ledger.envelope import RecordedEvent
from ledger.store import EventStore, check_append_batch


class MemoryEventStore(EventStore):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, list[RecordedEvent]] = {}

    def load(
        self, stream_id: str, *, version_max: int | None = None, limit: int = STREAM_EVENTS_MAX
    ) -> list[RecordedEvent]:
        with self._lock:
            stream = self._streams.get(stream_id, [])
            selected = stream if version_max is None else stream[: max(version_max, 0)]
            if len(selected) > limit:
                raise LimitExceededError(f"stream {stream_id} holds more than {limit} events")
            return list(selected)

    def append(self, events: Sequence[RecordedEvent]) -> None:
        check_append_batch(events)
        first = events[0]
        with self._lock:
            stream = self._streams.setdefault(first.stream_id, [])
            if first.version <= len(stream):
                raise ConcurrencyError(
                    f"stream {first.stream_id} already has version {first.version}"
                )
            assert first.version == len(stream) + 1, "append must follow the stream head"
            stream.extend(events)

    def stream_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._streams)
