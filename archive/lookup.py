"""Finding events in the archive by event id or correlation id (``proof``, ``trace``).

The events table is keyed by stream and version only, so there a lookup by id is a Scan of the
whole table; the archive answers it by reading two columns. An event id is a UUIDv7 whose first
48 bits are the milliseconds it was made at, a moment before it was recorded: the lookup reads
only the objects of that day and its neighbours (partition pruning), not the whole archive. Any
other id falls back to every object.
"""

from __future__ import annotations

import uuid
from contextlib import closing
from datetime import UTC, date, datetime, timedelta

from archive.engine import DEFAULT_ENGINE_SETTINGS, EngineSettings, connect
from archive.schema import events_from_batch
from archive.storage import ArchiveStorage
from ledger.envelope import RecordedEvent

BATCH_ROWS = 10_000
_ORDER = "stream_id, version, event_id, hash"


def find_events(
    storage: ArchiveStorage,
    *,
    event_id: str | None = None,
    correlation_id: str | None = None,
    limit: int,
    settings: EngineSettings = DEFAULT_ENGINE_SETTINGS,
) -> list[RecordedEvent]:
    """Up to ``limit`` distinct events with this event id or correlation id, by stream and
    version (identical copies awaiting compaction count once)."""
    assert (event_id is None) != (correlation_id is None), "exactly one filter"
    assert limit > 0, limit
    if event_id is not None:
        condition, parameters = "event_id = ?", [event_id]
        days = _days_around(event_id)
        if days:
            condition += " AND (year || '-' || month || '-' || day) IN ("
            condition += ", ".join("?" for _ in days) + ")"
            parameters += [day.isoformat() for day in days]
    else:
        condition, parameters = "correlation_id = ?", [str(correlation_id)]
    with closing(connect(storage, settings)) as connection:
        reader = connection.execute(
            f"SELECT DISTINCT * EXCLUDE (year, month, day) FROM events WHERE {condition}"
            f" ORDER BY {_ORDER} LIMIT {int(limit)}",
            parameters,
        ).to_arrow_reader(BATCH_ROWS)
        return [event for batch in reader for event in events_from_batch(batch)]


def _days_around(event_id: str) -> list[date]:
    """The UTC day a UUIDv7 was made on, with the day before and after (a writer's clock and
    its recorded_at may straddle midnight); [] if ``event_id`` is not a UUIDv7."""
    try:
        value = uuid.UUID(event_id)
    except ValueError:
        return []
    if value.version != 7:
        return []
    made = datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC).date()
    return [made - timedelta(days=1), made, made + timedelta(days=1)]
