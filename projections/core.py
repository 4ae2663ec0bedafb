"""What every stream-fed projection promises, so one handler can drive them all.

A projection receives a batch of events in stream order (several streams interleaved, each
stream's events in ascending version) and applies them exactly once:
- a version at or below what it already applied for that stream is a duplicate: skipped;
- the next version is applied;
- a version further ahead is a gap: the projection loads the missing versions from the events
  table (one Query) and applies them first, as if delivered; if it cannot (the table holds too
  few), that stream fails from that event on (retried later, never skipped), while other
  streams proceed. A record dead-lettered after its retries is thus repaired by the next event
  of its payment instead of blocking it forever.
A projection never swallows an error: a stream it could not apply is reported in the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ledger.envelope import RecordedEvent


@dataclass(frozen=True, slots=True)
class StreamFailure:
    """The first event of a stream a projection could not apply, and why."""

    stream_id: str
    version: int
    event_id: str
    reason: str


@dataclass(slots=True)
class ApplyResult:
    applied: int = 0
    duplicates: int = 0
    failures: dict[str, StreamFailure] = field(default_factory=dict)

    def fail(self, event: RecordedEvent, reason: str) -> None:
        """Record that ``event``'s stream fails from ``event`` on (the earliest failure wins)."""
        current = self.failures.get(event.stream_id)
        if current is None or event.version < current.version:
            self.failures[event.stream_id] = StreamFailure(
                event.stream_id, event.version, event.event_id, reason
            )


class Projection(Protocol):
    name: str

    def apply(self, events: Sequence[RecordedEvent]) -> ApplyResult:
        """Apply ``events`` (stream order) exactly once; report streams that failed."""
        ...
