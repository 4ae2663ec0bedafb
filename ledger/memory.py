"""In-memory backends: the event store and its audit reader with DynamoDB's semantics (atomic
appends, version conflicts) and the digest store with S3 Object Lock's (write once), all
thread-safe."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

from ledger.domain.errors import ConcurrencyError, LimitExceededError
from ledger.domain.limits import STREAM_EVENTS_MAX
from ledger.envelope import RecordedEvent, StoredEvent
from ledger.integrity.digests import DigestStore, StoredObject, digest_number_of
from ledger.store import STORED_EVENTS_MAX, EventReader, EventStore, check_append_batch


class MemoryEventStore(EventStore, EventReader):
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

    def all_stream_ids(self) -> list[str]:
        return self.stream_ids()  # a stream here never loses its version 1

    def stored_events(self, stream_id: str) -> list[StoredEvent]:
        return [
            StoredEvent(event.version, event)
            for event in self.load(stream_id, limit=STORED_EVENTS_MAX)
        ]

    def events_with(
        self, *, event_id: str | None = None, correlation_id: str | None = None, limit: int
    ) -> list[RecordedEvent]:
        assert (event_id is None) != (correlation_id is None), "exactly one filter"
        with self._lock:
            events = [event for stream in self._streams.values() for event in stream]
        found = (
            event
            for event in events
            if event_id in (None, event.event_id) and correlation_id in (None, event.correlation_id)
        )
        return list(itertools.islice(found, limit))


class MemoryDigestStore(DigestStore):
    """Write-once objects in a dict; ``overwrite`` stands for a new version put over a key, which
    an Object Lock bucket allows (versions are kept, none is replaced)."""

    location = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.objects: dict[str, list[bytes]] = {}

    def numbers(self) -> list[int]:
        with self._lock:
            found = (digest_number_of(key) for key in self.objects)
            return sorted(number for number in found if number is not None)

    def read(self, key: str) -> StoredObject | None:
        with self._lock:
            versions = self.objects.get(key)
            return None if not versions else StoredObject(versions[0], len(versions))

    def put_new(self, key: str, data: bytes) -> bool:
        with self._lock:
            if key in self.objects:
                return False
            self.objects[key] = [data]
            return True

    def overwrite(self, key: str, data: bytes) -> None:
        with self._lock:
            self.objects.setdefault(key, []).append(data)
