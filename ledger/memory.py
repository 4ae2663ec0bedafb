"""In-memory backends: the event store with DynamoDB's semantics (atomic appends, version
conflicts) and the digest store with S3 Object Lock's (write once), both thread-safe."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ledger.domain.errors import ConcurrencyError, LimitExceededError
from ledger.domain.limits import STREAM_EVENTS_MAX
from ledger.envelope import RecordedEvent
from ledger.integrity.digests import DigestStore, StoredObject, digest_number_of
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
