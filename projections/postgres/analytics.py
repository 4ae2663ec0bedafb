"""The analytics windows in PostgreSQL: ``payment_metrics_minute`` and ``payment_metric_events``
(migration 0003), a ``projections.analytics.WindowStore``.

- ``claim`` runs once per invocation that has new events, in one statement: it records the
  window and shard that counts each event (``INSERT … ON CONFLICT DO NOTHING``) and returns, for
  the ids recorded before, whether by this window or another. An event counted by another
  window or shard is a copy and is not counted again: that makes duplicates exact across
  windows, for one indexed insert per event. A claim by this same window comes from an earlier
  invocation (its digest is in the state, so it never reaches here) or from an attempt that
  failed after claiming, whose state Lambda discarded: it is counted, so a retry never loses it.
- ``write`` runs on the window's final invocation, in one transaction: a multi-row upsert of the
  window's rows, then the deletion of any row of the window and shard the new set no longer
  has. A retried final invocation thus replaces its own rows, whatever an earlier attempt wrote.

Monthly partitions (``window_start`` for the rows, ``recorded_at`` for the claims) are created
before each transaction when missing (``partitions.MonthlyPartitions``). Database errors become
``AnalyticsStoreError`` (the connection is replaced on the next call): the invocation fails and
Lambda retries it with the same state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from ledger.decoding import event_time
from ledger.delivery import describe
from ledger.domain.errors import LedgerError
from projections.analytics import NUMBER_FIELDS, Claims, WindowEvent, WindowKey, WindowRow
from projections.postgres.partitions import MonthlyPartitions, month_of
from projections.postgres.projection import Connect, connect_url
from projections.postgres.tables import check_schema_name, column_list, qualified

METRICS_TABLE = "payment_metrics_minute"
EVENTS_TABLE = "payment_metric_events"
_KEY = ("window_start", "merchant_id", "currency", "shard_id")
# Written once per window (statement parameters) and once per row (arrays, unnested).
_WINDOW_COLUMNS = ("window_start", "shard_id", "window_end", "deduplicated")
_ROW_COLUMNS = ("merchant_id", "currency", *NUMBER_FIELDS, "agent_decisions")
_COLUMNS = (*_KEY, "window_end", *NUMBER_FIELDS, "agent_decisions", "deduplicated", "updated_at")


class AnalyticsStoreError(LedgerError):
    """The analytics tables could not be read or written (the invocation is retried)."""

    code = "analytics_store_failed"


class PostgresWindowStore:
    """The windows of ``schema`` (migrated beforehand). Keeps one connection, replaced after it
    breaks; one instance per thread, as a Lambda process has."""

    name = "postgres"

    def __init__(self, connect: Connect | str, schema: str) -> None:
        self.schema = check_schema_name(schema)
        self._connect = connect_url(connect) if isinstance(connect, str) else connect
        self._connection: psycopg.Connection[Any] | None = None
        self._metric_partitions = MonthlyPartitions(schema, METRICS_TABLE)
        self._event_partitions = MonthlyPartitions(schema, EVENTS_TABLE)
        self._claim = _claim_statement(schema)
        self._upsert = _upsert_statement(schema)
        self._delete_others = _delete_statement(schema)

    def claim(self, key: WindowKey, events: Sequence[WindowEvent]) -> Claims:
        if not events:
            return Claims()
        event_ids = [item.event.event_id for item in events]
        recorded = [event_time(item.event.recorded_at, "recorded_at") for item in events]
        try:
            connection = self._connection_for_call()
            self._event_partitions.ensure(connection, {month_of(moment) for moment in recorded})
            rows = connection.execute(
                self._claim,
                {
                    "event_ids": event_ids,
                    "recorded": recorded,
                    "recorded_min": min(recorded),
                    "recorded_max": max(recorded),
                    "window_start": key.start,
                    "shard_id": key.shard_id,
                },
            ).fetchall()
        except psycopg.Error as error:
            self._event_partitions.forget()
            raise self._failed("claim", key, error) from error
        return Claims(
            elsewhere=frozenset(event_id for event_id, here in rows if not here),
            here=frozenset(event_id for event_id, here in rows if here),
        )

    def write(self, key: WindowKey, rows: Sequence[WindowRow], *, deduplicated: bool) -> None:
        columns: dict[str, list[Any]] = {
            "merchant_id": [row.merchant_id for row in rows],
            "currency": [row.currency for row in rows],
            **{name: [getattr(row.figures, name) for row in rows] for name in NUMBER_FIELDS},
            "agent_decisions": [
                json.dumps(row.figures.agent_decisions, sort_keys=True) for row in rows
            ],
        }
        try:
            connection = self._connection_for_call()
            if rows:
                self._metric_partitions.ensure(connection, [month_of(key.start)])
            with connection.transaction(), connection.cursor() as cursor:
                window = {
                    "window_start": key.start,
                    "window_end": key.end,
                    "shard_id": key.shard_id,
                    "deduplicated": deduplicated,
                }
                if rows:
                    cursor.execute(self._upsert, {**window, **columns})
                cursor.execute(
                    self._delete_others,
                    {
                        **window,
                        "merchants": columns["merchant_id"],
                        "currencies": columns["currency"],
                    },
                )
        except psycopg.Error as error:
            self._metric_partitions.forget()
            raise self._failed("write", key, error) from error

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _connection_for_call(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = None
            connection = self._connect()
            connection.autocommit = True  # each write opens its own transaction
            self._connection = connection
        return self._connection

    def _failed(self, action: str, key: WindowKey, error: psycopg.Error) -> AnalyticsStoreError:
        connection = self._connection
        if connection is not None and (connection.broken or connection.closed):
            self._connection = None
            connection.close()
        reason = describe(error)
        return AnalyticsStoreError(
            f"analytics {action} of window {key.start.isoformat()} on {key.shard_id}: {reason}"
        )


def _claim_statement(schema: str) -> sql.Composed:
    # The data-modifying CTE runs to completion, but the main query sees the table as it was
    # before the statement: exactly the ids claimed earlier. The recorded_at bounds let
    # PostgreSQL prune the partitions that cannot hold them.
    return sql.SQL(
        "WITH incoming AS ("
        " SELECT * FROM unnest(%(event_ids)s::text[], %(recorded)s::timestamptz[])"
        " AS i (event_id, recorded_at)),"
        " claimed AS ("
        " INSERT INTO {events} (event_id, recorded_at, window_start, shard_id)"
        " SELECT event_id, recorded_at, %(window_start)s, %(shard_id)s FROM incoming"
        " ON CONFLICT (event_id, recorded_at) DO NOTHING)"
        " SELECT e.event_id,"
        " e.window_start = %(window_start)s AND e.shard_id = %(shard_id)s"
        " FROM {events} AS e JOIN incoming AS i"
        " ON e.event_id = i.event_id AND e.recorded_at = i.recorded_at"
        " WHERE e.recorded_at BETWEEN %(recorded_min)s AND %(recorded_max)s"
    ).format(events=qualified(schema, EVENTS_TABLE))


def _upsert_statement(schema: str) -> sql.Composed:
    """One row per element of the per-row arrays; the window's columns are parameters."""
    unnest = sql.SQL(", ").join(
        sql.SQL("{}::{}[]").format(sql.Placeholder(name), sql.SQL(_array_type(name)))
        for name in _ROW_COLUMNS
    )
    values: dict[str, sql.Composable] = {name: sql.Placeholder(name) for name in _WINDOW_COLUMNS}
    values["updated_at"] = sql.SQL("now()")
    values["agent_decisions"] = sql.SQL("r.agent_decisions::jsonb")
    select = sql.SQL(", ").join(
        values.get(name, sql.SQL("r.{}").format(sql.Identifier(name))) for name in _COLUMNS
    )
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name))
        for name in _COLUMNS
        if name not in _KEY
    )
    return sql.SQL(
        "INSERT INTO {table} ({columns}) SELECT {select} FROM unnest({unnest}) AS r ({names})"
        " ON CONFLICT ({key}) DO UPDATE SET {updates}"
    ).format(
        table=qualified(schema, METRICS_TABLE),
        columns=column_list(_COLUMNS),
        select=select,
        unnest=unnest,
        names=column_list(_ROW_COLUMNS),
        key=column_list(_KEY),
        updates=updates,
    )


def _array_type(column: str) -> str:
    if column in ("merchant_id", "currency", "agent_decisions"):
        return "text"
    return "numeric" if column.endswith("_minor") else "int4"


def _delete_statement(schema: str) -> sql.Composed:
    return sql.SQL(
        "DELETE FROM {table} WHERE window_start = %(window_start)s AND shard_id = %(shard_id)s"
        " AND (merchant_id, currency) NOT IN"
        " (SELECT * FROM unnest(%(merchants)s::text[], %(currencies)s::text[]))"
    ).format(table=qualified(schema, METRICS_TABLE))
