"""Reading the archive back as events: replay, history, rebuild, verification and the demo.

``ArchiveReader`` turns archived rows back into ``RecordedEvent``s identical to the events table's
(the round trip of ``archive.schema``).

Guarantees:
- ``payment_events`` and ``streams`` give each event once (copies left by retried batches before
  compaction collapse) in version order. Two different rows for one stream version are
  corruption: ``ChainBrokenError`` names them, never one picked silently.
- ``streams`` and ``rows`` stream: memory holds one record batch (and one payment's events), and
  DuckDB's sort spills to disk beyond ``EngineSettings.memory_limit``.
- ``rows`` gives every stored row as it is, duplicates and damaged rows included, with the object
  key and row number it sits at, for ``payledger verify --archive``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from archive.engine import (
    DEFAULT_ENGINE_SETTINGS,
    EVENTS_GLOB,
    EngineSettings,
    connect,
    open_connection,
    read_parquet_sql,
)
from archive.layout import EVENTS_PREFIX, day_of_key, day_prefix
from archive.schema import COLUMNS, events_from_batch
from archive.storage import LIST_KEYS_MAX, ArchiveStorage
from ledger.domain.errors import ChainBrokenError, LimitExceededError
from ledger.domain.limits import STREAM_EVENTS_MAX
from ledger.envelope import RecordedEvent, payment_stream_id

BATCH_ROWS = 10_000
_ORDER = "stream_id, version, event_id, hash"


@dataclass(frozen=True, slots=True)
class ArchivedRow:
    """One stored row: where it is, and its event (None with ``problem`` if it cannot be one)."""

    key: str
    row_number: int
    event: RecordedEvent | None
    problem: str | None = None


class ArchiveReader:
    def __init__(self, storage: ArchiveStorage, settings: EngineSettings = DEFAULT_ENGINE_SETTINGS):
        self.storage = storage
        self.settings = settings

    def events_count(self) -> int:
        """Distinct events archived (what the events table holds, once every batch landed)."""
        with closing(connect(self.storage, self.settings)) as connection:
            row = connection.execute("SELECT count(DISTINCT event_id) FROM events").fetchone()
        return int(row[0]) if row else 0

    def payment_events(
        self, payment_id: str, *, limit: int = STREAM_EVENTS_MAX
    ) -> list[RecordedEvent]:
        """One payment's events in version order ([] if the archive has none)."""
        with closing(connect(self.storage, self.settings)) as connection:
            reader = connection.execute(
                f"SELECT DISTINCT * FROM events WHERE stream_id = ? ORDER BY {_ORDER}"
                f" LIMIT {int(limit) * 2 + 1}",
                [payment_stream_id(payment_id)],
            ).to_arrow_reader(BATCH_ROWS)
            streams = list(_streams(reader))
        events = streams[0] if streams else []
        if len(events) > limit:
            raise LimitExceededError(f"payment {payment_id} has more than {limit} archived events")
        return events

    def streams(self) -> Iterator[list[RecordedEvent]]:
        """Every stream's events in version order, one stream at a time, streams in id order."""
        with closing(connect(self.storage, self.settings)) as connection:
            reader = connection.execute(f"SELECT * FROM events ORDER BY {_ORDER}").to_arrow_reader(
                BATCH_ROWS
            )
            yield from _streams(reader)

    def rows(self, *, day: date | None = None) -> Iterator[ArchivedRow]:
        """Every stored row (of one day, or all), object by object in key order, each object's
        rows in stored order, with the object's key and the row's index in it."""
        source = self.storage.duckdb_source()
        prefix = day_prefix(day) if day is not None else EVENTS_PREFIX
        if not self.storage.list(prefix, limit=1):
            return
        pattern = prefix + "*.parquet" if day is not None else EVENTS_GLOB
        names = ", ".join(f'"{column.name}"' for column in COLUMNS)
        read = read_parquet_sql([source.url(pattern)])
        numbers: dict[str, int] = {}
        with closing(open_connection(source, self.settings)) as connection:
            reader = connection.execute(f"SELECT {names}, filename FROM {read}").to_arrow_reader(
                BATCH_ROWS
            )
            for batch in reader:
                names_of_rows = batch.column("filename").to_pylist()
                for url, (event, problem) in zip(
                    names_of_rows, _events_or_problems(batch), strict=True
                ):
                    number = numbers.get(url, 0)
                    numbers[url] = number + 1
                    yield ArchivedRow(url[len(source.root_url) :], number, event, problem)

    def days(self) -> list[date]:
        """The days that hold objects, in order."""
        found = {
            day_of_key(item.key) for item in self.storage.list(EVENTS_PREFIX, limit=LIST_KEYS_MAX)
        }
        return sorted(day for day in found if day is not None)


def _streams(reader: pa.RecordBatchReader) -> Iterator[list[RecordedEvent]]:
    """Group rows sorted by (stream, version, …) into streams, dropping identical copies."""
    current: list[RecordedEvent] = []
    for batch in reader:
        for event in events_from_batch(batch):
            previous = current[-1] if current else None
            if previous is not None and previous.stream_id != event.stream_id:
                yield current
                current = []
            elif previous is not None and previous.version == event.version:
                if previous != event:
                    raise ChainBrokenError(
                        f"the archive holds two different events for {event.stream_id} version"
                        f" {event.version}: {previous.event_id} and {event.event_id}"
                    )
                continue
            current.append(event)
    if current:
        yield current


def _events_or_problems(
    batch: pa.RecordBatch,
) -> Sequence[tuple[RecordedEvent | None, str | None]]:
    try:
        return [(event, None) for event in events_from_batch(batch)]
    except ValueError:
        pass
    results: list[tuple[RecordedEvent | None, str | None]] = []
    for index in range(batch.num_rows):
        try:
            results.extend((event, None) for event in events_from_batch(batch.slice(index, 1)))
        except ValueError as exc:
            results.append((None, str(exc)))
    return results
