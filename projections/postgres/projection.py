"""The PostgreSQL views of the payment streams, applied exactly once and in order per stream.

One ``apply`` = one database transaction, whatever the batch size (two when a gap is filled
from the event store, see below; the first one only reads):
1. read the tracked head of every payment stream in the batch with its ``payments`` row (one
   query);
2. classify, check and fold the events in Python (``rows.plan_batch``);
3. write: ``projection_positions`` and ``payments`` upserted from staging tables filled by COPY
   (one ``INSERT … SELECT … ON CONFLICT`` each), ``postings`` and ``agent_actions`` by COPY;
4. commit.
Before it, once per month and process, the monthly partitions of ``postings`` the batch may need
are looked up and, if missing, created in a short transaction of their own.

Exactly once: ``projection_positions`` (last applied version per stream) changes in the same
transaction as the view rows, so a redelivered event is recognised as a duplicate and a failed
batch leaves no trace.

Concurrent appliers (a rebuild racing the live consumer, overlapping retries) are handled
optimistically: an upsert only replaces a row with a higher version, and a batch whose upserts
did not all land rolls back (``ConcurrencyError``); plain inserts (not upserts) of ``postings``
and ``agent_actions`` make applying any event twice violate their primary keys and roll back.

Gaps (with ``events``, the event store, given): a stream whose first delivered event beyond its
tracked version is further ahead than the next one is filled from the event store rather than
failed. Failing would never heal: a record dead-lettered after its bounded retries is never
delivered again, so every later event of that payment would fail forever; and after
``payledger rebuild --swap``, events written between the rebuild's scan and the swap reach the
rebuilt schema with versions beyond its positions. So, when step 2 finds such streams, the
transaction ends without writing anything, each lagging stream's missing versions are loaded
with one strongly consistent ``EventStore.load`` (outside any transaction: no transaction, and
no lock, waits on DynamoDB), and the batch runs again in a new transaction that re-reads the
heads and applies the loaded events before the delivered ones, as if delivered, with the same
checks (``rows.plan_batch``). A fill must join the tracked head's hash and the next delivered
event, or it is refused whole (``gap_fill_refused``): it never splices another history onto the
views. A gap the store cannot fill (it holds too few events) fails its stream as without a
store, and so does a ``LedgerError`` from the store (``gap_fill_failed``). A batch without gaps
costs exactly what it costs without a store: no load and no extra query. ``applied`` counts the
delivered events applied, ``filled`` the loaded ones.

On a database error the transaction is rolled back and every stream of the batch is reported as
failed (never partially applied); a dropped connection is replaced on the next ``apply``. An
event store error other than a ``LedgerError`` (throttling after the client's retries)
propagates, as in the payment-state projection: the whole batch is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import Any

import psycopg
from psycopg import sql

from ledger.decoding import is_event_time
from ledger.delivery import REASON_CHARS_MAX
from ledger.domain.errors import ConcurrencyError, LedgerError
from ledger.envelope import PAYMENT_STREAM_PREFIX, RecordedEvent
from ledger.store import EventStore
from projections.core import ApplyResult
from projections.postgres.partitions import MonthlyPartitions
from projections.postgres.rows import (
    BatchRows,
    Gap,
    StreamHead,
    find_gaps,
    gap_fill,
    plan_batch,
    snapshot_from_row,
)
from projections.postgres.tables import (
    AGENT_ACTION_COLUMNS,
    AGENT_ACTION_TYPES,
    PAYMENT_COLUMNS,
    PAYMENT_TYPES,
    POSITION_COLUMNS,
    POSITION_TYPES,
    POSTING_COLUMNS,
    POSTING_TYPES,
    check_schema_name,
    column_list,
    payment_select,
    qualified,
)

Connect = Callable[[], psycopg.Connection[Any]]
CONNECT_TIMEOUT_S = 10

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PostgresApplyResult(ApplyResult):
    # Events of streams these views do not keep (only ``payment#`` streams exist today).
    ignored: int = 0
    # Events loaded from the event store to fill gaps and applied (not counted in ``applied``,
    # which counts delivered events only).
    filled: int = 0


def connect_url(url: str) -> Connect:
    """A connection factory for ``PostgresProjection`` from a libpq URL."""
    return partial(psycopg.connect, url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)


class PostgresProjection:
    """Payments, postings, agent actions and positions in ``schema`` (migrated beforehand).

    Keeps one connection (opened on first use, replaced after it breaks); not thread-safe: use
    one instance per thread, as a Lambda process does.
    """

    name = "postgres"

    def __init__(
        self, connect: Connect | str, schema: str, *, events: EventStore | None = None
    ) -> None:
        """``connect`` opens a connection (``connect_url(url)``, or any factory), or is a URL.
        ``events`` is the event store gaps are filled from; without it a gap fails its stream
        until the missing events are delivered."""
        self.schema = check_schema_name(schema)
        self._connect = connect_url(connect) if isinstance(connect, str) else connect
        self._events = events
        self._connection: psycopg.Connection[Any] | None = None
        self._partitions = MonthlyPartitions(schema, "postings")
        self._sql = _Statements(schema)

    def apply(self, events: Sequence[RecordedEvent]) -> PostgresApplyResult:
        result = PostgresApplyResult()
        streams = _payment_streams(events, result)
        if not streams:
            return result
        try:
            connection = self._connection_for_batch()
            self._ensure_partitions(connection, streams.values())
            gaps = self._apply_batch(connection, streams, result, fills=None)
            if gaps:
                fills = self._load_fills(gaps, result)
                self._ensure_partitions(connection, fills.values())
                self._apply_batch(connection, streams, result, fills=fills)
        except (psycopg.Error, ConcurrencyError) as error:
            self._drop_broken_connection()
            self._partitions.forget()  # a partition may have been dropped: look again
            return _failed_batch(streams, error, ignored=result.ignored)
        return result

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    # ── connection ────────────────────────────────────────────────────────────────────────

    def _connection_for_batch(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = None
            connection = self._connect()
            try:
                connection.autocommit = True  # every batch opens its own transaction
                with connection.transaction():
                    for statement in self._sql.create_staging:
                        connection.execute(statement)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _drop_broken_connection(self) -> None:
        connection = self._connection
        if connection is not None and (connection.broken or connection.closed):
            self._connection = None
            connection.close()

    # ── one batch ─────────────────────────────────────────────────────────────────────────

    def _apply_batch(
        self,
        connection: psycopg.Connection[Any],
        streams: Mapping[str, list[RecordedEvent]],
        result: PostgresApplyResult,
        *,
        fills: Mapping[str, list[RecordedEvent]] | None,
    ) -> dict[str, Gap]:
        """Apply the batch in one transaction, with ``fills`` before the delivered events.

        Without ``fills`` (the first pass), if there is an event store and streams lag behind
        the batch, nothing is written and the gaps are returned: they are filled outside any
        transaction and the batch is applied again.
        """
        with connection.transaction():
            heads = self._read_heads(connection, streams)
            if fills is None and self._events is not None:
                gaps = find_gaps(streams, heads)
                if gaps:
                    return gaps
            rows = plan_batch(streams, heads, result, fills)
            self._write(connection, rows)
        result.filled += rows.filled
        return {}

    def _load_fills(
        self, gaps: Mapping[str, Gap], result: PostgresApplyResult
    ) -> dict[str, list[RecordedEvent]]:
        """The missing events of each lagging stream: one strongly consistent load per stream.

        A stream the store cannot fill fails here (and again, with the same first event, when
        the batch is planned without its fill).
        """
        assert self._events is not None
        fills: dict[str, list[RecordedEvent]] = {}
        for stream_id, gap in gaps.items():
            first = gap.first
            try:
                loaded = self._events.load(stream_id, version_max=first.version - 1)
            except LedgerError as error:
                result.fail(first, f"gap_fill_failed: {error.code}: {error.message}")
                continue
            assert all(event.stream_id == stream_id for event in loaded), stream_id
            fill = gap_fill(gap, loaded)
            if fill is None:
                result.fail(
                    first,
                    f"version_gap: version {first.version} follows applied version"
                    f" {gap.applied}, and the event store holds {len(loaded)} events before it",
                )
                continue
            fills[stream_id] = fill
            logger.warning(
                "postgres views behind the stream: missing versions loaded from the event store",
                extra={
                    "stream_id": stream_id,
                    "versions": f"{gap.applied + 1}..{first.version - 1}",
                },
            )
        return fills

    def _read_heads(
        self, connection: psycopg.Connection[Any], streams: Mapping[str, object]
    ) -> dict[str, StreamHead]:
        rows = connection.execute(
            self._sql.read_heads, (len(PAYMENT_STREAM_PREFIX) + 1, list(streams))
        ).fetchall()
        heads = {}
        for stream_id, version, head_hash, *payment in rows:
            assert payment[0] is not None, f"{stream_id} has a position but no payments row"
            heads[stream_id] = StreamHead(version, head_hash, snapshot_from_row(payment))
        return heads

    def _ensure_partitions(
        self, connection: psycopg.Connection[Any], streams: Iterable[Sequence[RecordedEvent]]
    ) -> None:
        """Create the monthly ``postings`` partitions the batch may write into, if missing (in
        their own short transaction before the batch's, see ``MonthlyPartitions``)."""
        months = {
            event.recorded_at[:7]
            for events in streams
            for event in events
            if is_event_time(event.recorded_at)
        }
        self._partitions.ensure(connection, months)

    def _write(self, connection: psycopg.Connection[Any], rows: BatchRows) -> None:
        statements = self._sql
        with connection.cursor() as cursor:
            if rows.positions:
                _copy(cursor, statements.copy_stage_positions, POSITION_TYPES, rows.positions)
                cursor.execute(statements.upsert_positions)
                _check_rowcount(cursor, len(rows.positions), "projection_positions")
                _copy(cursor, statements.copy_stage_payments, PAYMENT_TYPES, rows.payments)
                cursor.execute(statements.upsert_payments)
                _check_rowcount(cursor, len(rows.payments), "payments")
            if rows.postings:
                _copy(cursor, statements.copy_postings, POSTING_TYPES, rows.postings)
            if rows.agent_actions:
                _copy(cursor, statements.copy_agent_actions, AGENT_ACTION_TYPES, rows.agent_actions)


def _copy(
    cursor: psycopg.Cursor[Any],
    statement: sql.Composed,
    types: tuple[str, ...],
    rows: Iterable[Any],
) -> None:
    # Binary COPY: measured at half the client CPU of text COPY per row, and the server skips
    # parsing timestamps and numbers.
    with cursor.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def _check_rowcount(cursor: psycopg.Cursor[Any], expected: int, table: str) -> None:
    # Another applier moved a stream past what this batch read: roll back, and the retry sees
    # those events as applied.
    if cursor.rowcount != expected:
        raise ConcurrencyError(
            f"{expected - cursor.rowcount} {table} rows were written by another applier meanwhile"
        )


def _payment_streams(
    events: Sequence[RecordedEvent], result: PostgresApplyResult
) -> dict[str, list[RecordedEvent]]:
    """The batch's payment streams, each in version order; other streams are counted only."""
    streams: dict[str, list[RecordedEvent]] = {}
    for event in events:
        if event.stream_id.startswith(PAYMENT_STREAM_PREFIX):
            streams.setdefault(event.stream_id, []).append(event)
        else:
            result.ignored += 1
    for stream in streams.values():
        if len(stream) > 1:
            stream.sort(key=_version)
    return streams


_version = attrgetter("version")


def _failed_batch(
    streams: Mapping[str, list[RecordedEvent]], error: Exception, *, ignored: int
) -> PostgresApplyResult:
    reason = f"database_error: {type(error).__name__}: {error}"[:REASON_CHARS_MAX]
    result = PostgresApplyResult(ignored=ignored)
    for events in streams.values():
        result.fail(events[0], reason)
    return result


class _Statements:
    """Every statement of one schema, composed once."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        payments = qualified(schema, "payments")
        positions = qualified(schema, "projection_positions")
        self.read_heads = sql.SQL(
            "SELECT pos.stream_id, pos.version, pos.hash, {payment}"
            " FROM {positions} AS pos"
            " LEFT JOIN {payments} AS pay ON pay.payment_id = substr(pos.stream_id, %s)"
            " WHERE pos.stream_id = ANY(%s)"
        ).format(payment=payment_select("pay"), positions=positions, payments=payments)
        self.create_staging = [
            sql.SQL(
                "CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
            ).format(sql.Identifier(f"stage_{table}"), qualified(schema, table))
            for table in ("payments", "projection_positions")
        ]
        self.copy_stage_payments = _copy_statement(
            sql.Identifier("pg_temp", "stage_payments"), PAYMENT_COLUMNS
        )
        self.copy_stage_positions = _copy_statement(
            sql.Identifier("pg_temp", "stage_projection_positions"), POSITION_COLUMNS
        )
        self.upsert_payments = _upsert(payments, "stage_payments", PAYMENT_COLUMNS, "payment_id")
        self.upsert_positions = _upsert(
            positions, "stage_projection_positions", POSITION_COLUMNS, "stream_id"
        )
        self.copy_postings = _copy_statement(qualified(schema, "postings"), POSTING_COLUMNS)
        self.copy_agent_actions = _copy_statement(
            qualified(schema, "agent_actions"), AGENT_ACTION_COLUMNS
        )


def _copy_statement(table: sql.Identifier, columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, column_list(columns))


def _upsert(table: sql.Identifier, stage: str, columns: tuple[str, ...], key: str) -> sql.Composed:
    """Insert or replace each staged row; only a newer version replaces a stored row."""
    return sql.SQL(
        "INSERT INTO {table} AS t ({columns}) SELECT {columns} FROM {stage}"
        " ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE t.version < EXCLUDED.version"
    ).format(
        table=table,
        columns=column_list(columns),
        stage=sql.Identifier("pg_temp", stage),
        key=sql.Identifier(key),
        updates=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column))
            for column in columns
            if column != key
        ),
    )
