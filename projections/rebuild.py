"""Rebuild the PostgreSQL views from the event history into a fresh schema, compare, swap.

The history comes from a ``StreamSource``: the events table (``StoreStreams``) or the Parquet
archive; the rebuild does not care which, so both get the same projection, compare and swap.

The events go through the very ``PostgresProjection`` the stream Lambda uses, in batches of
``batch_events``, so a rebuilt schema is what live projection of the same history produces.
Comparison is per table: row count and checksum (``projections.postgres.checksums``). A swap
renames both schemas in one transaction: readers see the old views or the new, never a mix.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg import sql

from ledger.domain.errors import AlreadyExistsError, NotFoundError
from ledger.envelope import RecordedEvent
from ledger.store import EventStore
from projections.core import StreamFailure
from projections.postgres.checksums import TableChecksum, table_checksums
from projections.postgres.migrate import migrate, recorded_migrations
from projections.postgres.projection import Connect, PostgresProjection
from projections.postgres.tables import check_schema_name

BATCH_EVENTS = 1_000
LOAD_THREADS = 8  # streams loaded concurrently (one Query each)
LOADS_AHEAD_MAX = 64

Progress = Callable[[int, int], None]  # (streams done, events done)


@dataclass(slots=True)
class RebuildReport:
    schema: str
    live_schema: str
    streams: int = 0
    events: int = 0
    failures: list[StreamFailure] = field(default_factory=list)
    live: dict[str, TableChecksum] = field(default_factory=dict)
    rebuilt: dict[str, TableChecksum] = field(default_factory=dict)
    swapped_out: str | None = None  # the name the replaced live schema was given

    @property
    def identical(self) -> bool:
        return not self.failures and self.live == self.rebuilt

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "live_schema": self.live_schema,
            "streams": self.streams,
            "events": self.events,
            "identical": self.identical,
            "failures": [vars_of(failure) for failure in self.failures],
            "tables": {
                table: {
                    "live_rows": self.live[table].rows if table in self.live else None,
                    "rebuilt_rows": checksum.rows,
                    "live_md5": self.live[table].md5 if table in self.live else None,
                    "rebuilt_md5": checksum.md5,
                }
                for table, checksum in self.rebuilt.items()
            },
            "swapped_out": self.swapped_out,
        }


def vars_of(failure: StreamFailure) -> dict[str, Any]:
    return {
        "stream_id": failure.stream_id,
        "version": failure.version,
        "event_id": failure.event_id,
        "reason": failure.reason,
    }


def default_rebuild_schema(live_schema: str, now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    return check_schema_name(f"{live_schema}_rebuild_{moment}")


class StreamSource(Protocol):
    """Where a rebuild reads the history from."""

    def streams(self) -> Iterable[Sequence[RecordedEvent]]:
        """Every stream's events, each stream whole (versions 1..n) and in version order."""
        ...


class StoreStreams:
    """The streams of an ``EventStore`` (the events table): listed with one Scan, loaded in
    parallel (one Query each) with at most ``LOADS_AHEAD_MAX`` loads in flight, so memory stays
    bounded whatever the table size."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def streams(self) -> Iterator[list[RecordedEvent]]:
        with ThreadPoolExecutor(max_workers=LOAD_THREADS) as pool:
            pending: deque[Future[list[RecordedEvent]]] = deque()
            for stream_id in self.store.stream_ids():
                pending.append(pool.submit(self.store.load, stream_id))
                if len(pending) >= LOADS_AHEAD_MAX:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


def rebuild_postgres(
    source: StreamSource,
    connect: Connect,
    *,
    live_schema: str,
    into_schema: str,
    events: EventStore | None = None,
    batch_events: int = BATCH_EVENTS,
    progress: Progress | None = None,
) -> RebuildReport:
    """Replay every stream of ``source`` into the new schema ``into_schema`` and compare it
    with ``live_schema`` (which may not exist yet: then every table differs). ``events`` is the
    event store the projection fills gaps from, if any."""
    check_schema_name(live_schema)
    check_schema_name(into_schema)
    assert batch_events > 0, batch_events
    report = RebuildReport(schema=into_schema, live_schema=live_schema)
    with connect() as connection:
        connection.autocommit = True
        if _schema_exists(connection, into_schema):
            raise AlreadyExistsError(f"schema {into_schema} already exists: rebuild into a new one")
        migrate(connection, into_schema)
    projection = PostgresProjection(connect, into_schema, events=events)
    try:
        for batch, streams in _batches(source.streams(), batch_events):
            result = projection.apply(batch)
            report.failures.extend(result.failures.values())
            report.streams += streams
            report.events += len(batch)
            if progress is not None:
                progress(report.streams, report.events)
    finally:
        projection.close()
    with connect() as connection:
        connection.autocommit = True
        report.rebuilt = table_checksums(connection, into_schema)
        if recorded_migrations(connection, live_schema):
            report.live = table_checksums(connection, live_schema)
    return report


def swap_schemas(connect: Connect, *, live_schema: str, rebuilt_schema: str) -> str:
    """Make ``rebuilt_schema`` the live one; the old live schema is kept under a new name
    (returned) for comparison or rollback. One transaction: all or nothing."""
    check_schema_name(live_schema)
    check_schema_name(rebuilt_schema)
    retired = check_schema_name(f"{live_schema}_replaced_{datetime.now(UTC):%Y%m%d%H%M%S}")
    with connect() as connection, connection.transaction():
        if not _schema_exists(connection, rebuilt_schema):
            raise NotFoundError(f"schema {rebuilt_schema} does not exist")
        if _schema_exists(connection, live_schema):
            connection.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(live_schema), sql.Identifier(retired)
                )
            )
        connection.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                sql.Identifier(rebuilt_schema), sql.Identifier(live_schema)
            )
        )
    return retired


def _schema_exists(connection: psycopg.Connection[Any], schema: str) -> bool:
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (schema,)
    ).fetchone()
    return bool(row and row[0])


def _batches(
    streams: Iterable[Sequence[RecordedEvent]], batch_events: int
) -> Iterator[tuple[list[RecordedEvent], int]]:
    """Whole streams grouped into batches of about ``batch_events`` events (a stream is never
    split, so each batch applies every stream it holds from version 1)."""
    batch: list[RecordedEvent] = []
    streams_in_batch = 0
    for events in streams:
        batch.extend(events)
        streams_in_batch += 1
        if len(batch) >= batch_events:
            yield batch, streams_in_batch
            batch, streams_in_batch = [], 0
    if batch:
        yield batch, streams_in_batch
