"""Projections checked against a fresh replay of the events (``verify --projections``).

A projection is asynchronous: it may lag the events by a moment, or by a while when a stream is
stuck. So each one is compared with the replay of the history *it says it applied*: a
payment-state item at version n with the fold of versions 1..n, the PostgreSQL views with a
fresh schema built by the same projection code from each stream up to the version its
``projection_positions`` row holds. A payment a projection has not reached yet is counted
(``behind``), not reported; a projection ahead of the events, differing from the replay, or
holding a payment that has no events, is a problem.

Problems are located: the stream (payment), the version the projection holds, and the table
(``dynamodb://<table>``, ``postgresql:<schema>.<table>``), with the fields or rows that differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from ledger.envelope import PAYMENT_STREAM_PREFIX, RecordedEvent, payment_stream_id
from ledger.integrity.chains import ChainCheck, Problem, StreamCheck
from ledger.service import PaymentSnapshot, fold
from projections.payment_state_reader import PaymentStateReader
from projections.postgres.migrate import migrate, recorded_migrations
from projections.postgres.projection import Connect, PostgresProjection
from projections.postgres.tables import check_schema_name, qualified

# Problem kinds (docs/verification.md lists them).
PROJECTION_MISMATCH = "projection_mismatch"
PROJECTION_AHEAD = "projection_ahead"
PROJECTION_ORPHAN = "projection_orphan"
PROJECTION_UNREADABLE = "projection_unreadable"
PROJECTION_UNVERIFIABLE = "projection_unverifiable"

BATCH_EVENTS = 1_000
ROWS_REPORTED_MAX = 1_000  # per table and direction: enough to locate, bounded for output

# Per table: (stream id, version, event id) of a row, to say where a difference is.
_ROW_LOCATION = {
    "payments": "'payment#' || payment_id, version, NULL::text",
    "postings": "'payment#' || payment_id, version, event_id || ' line ' || line",
    "agent_actions": "'payment#' || payment_id, version, event_id",
    "projection_positions": "stream_id, version, event_id",
}
_ROW_STREAM = {
    "payments": "'payment#' || payment_id",
    "postings": "'payment#' || payment_id",
    "agent_actions": "'payment#' || payment_id",
    "projection_positions": "stream_id",
}


@dataclass(slots=True)
class PaymentStateCheck(StreamCheck):
    """The payment-state table against the fold of each payment's events."""

    read_model: PaymentStateReader
    behind: int = 0
    name: str = "payment_state"
    check_name: str = "projections"
    _items: dict[str, PaymentSnapshot | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._items = dict(self.read_model.snapshots())

    def stream_ids(self) -> set[str]:
        return {payment_stream_id(payment_id) for payment_id in self._items}

    def counts(self) -> dict[str, int]:
        return {"behind": self.behind}

    def check(self, chain: ChainCheck) -> list[Problem]:
        payment_id = chain.stream_id.removeprefix(PAYMENT_STREAM_PREFIX)
        if payment_id not in self._items:
            self.behind += chain.last_version > 0
            return []
        snapshot = self._items.pop(payment_id)

        def problem(kind: str, detail: str, version: int | None = None) -> list[Problem]:
            where = self.read_model.location
            return [Problem("projections", kind, detail, chain.stream_id, version, None, where)]

        if snapshot is None:
            return problem(PROJECTION_UNREADABLE, "the payment-state item is not a payment state")
        version = snapshot.version
        if chain.last_version == 0:
            return problem(PROJECTION_ORPHAN, "a payment-state item for a payment with no events")
        if version > chain.last_version:
            return problem(
                PROJECTION_AHEAD,
                f"the item is at version {version}; the events end at {chain.last_version}",
                version,
            )
        if version > chain.intact_version:
            return problem(
                PROJECTION_UNVERIFIABLE,
                f"the chain is broken before version {version}: no replay to compare with",
                version,
            )
        if chain.last_version > version:
            self.behind += 1
        expected = fold(chain.events[:version])
        assert expected is not None
        differences = _differences(snapshot.to_dict(), expected.to_dict())
        if not differences:
            return []
        return problem(
            PROJECTION_MISMATCH,
            "payment-state item differs from the replay: " + differences,
            version,
        )

    def finish(self) -> list[Problem]:
        """Items of payments no stream was checked for."""
        return [
            Problem(
                "projections",
                PROJECTION_ORPHAN,
                "a payment-state item for a payment with no events",
                payment_stream_id(payment_id),
                location=self.read_model.location,
            )
            for payment_id in sorted(self._items)
        ]


def _differences(stored: dict[str, Any], replayed: dict[str, Any]) -> str:
    return ", ".join(
        f"{name} {stored.get(name)!r} (replay: {replayed[name]!r})"
        for name in replayed
        if stored.get(name) != replayed[name]
    )


class PostgresCheck(StreamCheck):
    """The PostgreSQL views against a fresh schema replayed from the events by the very
    projection that writes them, compared row by row (``EXCEPT ALL`` both ways), then dropped.

    Use as a context manager: the fresh schema is dropped however the check ends.
    """

    name = "postgres"
    check_name = "projections"

    def __init__(
        self,
        connect: Connect,
        live_schema: str,
        *,
        batch_events: int = BATCH_EVENTS,
        now: datetime | None = None,
    ) -> None:
        self._connect = connect
        self.live_schema = check_schema_name(live_schema)
        moment = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%f")
        self.fresh_schema = check_schema_name(f"{live_schema[:20]}_verify_{moment}")
        self._batch_events = batch_events
        self._batch: list[RecordedEvent] = []
        self._excluded: set[str] = set()
        self._positions: dict[str, int] = {}
        self._projection: PostgresProjection | None = None
        self.behind = 0

    def __enter__(self) -> PostgresCheck:
        with self._connect() as connection:
            connection.autocommit = True
            if recorded_migrations(connection, self.live_schema):
                rows = connection.execute(
                    sql.SQL("SELECT stream_id, version FROM {}").format(
                        qualified(self.live_schema, "projection_positions")
                    )
                ).fetchall()
                self._positions = {str(row[0]): int(row[1]) for row in rows}
            migrate(connection, self.fresh_schema)
        self._projection = PostgresProjection(self._connect, self.fresh_schema)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._projection is not None:
            self._projection.close()
        with self._connect() as connection:
            connection.autocommit = True
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(self.fresh_schema)
                )
            )

    def stream_ids(self) -> set[str]:
        return set(self._positions)

    def counts(self) -> dict[str, int]:
        return {"behind": self.behind}

    def check(self, chain: ChainCheck) -> list[Problem]:
        version = self._positions.get(chain.stream_id)
        if version is None:
            self.behind += chain.last_version > 0
            return []
        where = f"postgresql:{self.live_schema}.projection_positions"

        def excluded(kind: str, detail: str) -> list[Problem]:
            self._excluded.add(chain.stream_id)
            return [Problem("projections", kind, detail, chain.stream_id, version, None, where)]

        if chain.last_version == 0:
            return excluded(PROJECTION_ORPHAN, "the views hold a payment with no events")
        if version > chain.last_version:
            return excluded(
                PROJECTION_AHEAD,
                f"the views are at version {version}; the events end at {chain.last_version}",
            )
        if version > chain.intact_version:
            return excluded(
                PROJECTION_UNVERIFIABLE,
                f"the chain is broken before version {version}: no replay to compare with",
            )
        self.behind += chain.last_version > version
        self._batch.extend(chain.events[:version])
        return self._flush() if len(self._batch) >= self._batch_events else []

    def finish(self) -> list[Problem]:
        problems = self._flush()
        with self._connect() as connection:
            connection.autocommit = True
            with _excluded_streams(connection, self.fresh_schema, self._excluded) as excluded:
                for table in _ROW_LOCATION:
                    problems.extend(self._table_problems(connection, table, excluded))
        return problems

    def _flush(self) -> list[Problem]:
        batch, self._batch = self._batch, []
        if not batch:
            return []
        assert self._projection is not None, "use PostgresCheck as a context manager"
        result = self._projection.apply(batch)
        return [
            Problem(
                "projections",
                PROJECTION_UNVERIFIABLE,
                f"the replay could not apply this event: {failure.reason}",
                failure.stream_id,
                failure.version,
                failure.event_id,
                f"postgresql:{self.fresh_schema}",
            )
            for failure in result.failures.values()
        ]

    def _table_problems(
        self, connection: psycopg.Connection[Any], table: str, excluded: sql.Composable
    ) -> list[Problem]:
        problems: list[Problem] = []
        live, fresh = qualified(self.live_schema, table), qualified(self.fresh_schema, table)
        for only_in, first, second in (("views", live, fresh), ("replay", fresh, live)):
            rows = connection.execute(
                sql.SQL(
                    "SELECT {location} FROM (SELECT * FROM {first} EXCEPT ALL"
                    " SELECT * FROM {second}) AS d WHERE {stream} NOT IN (SELECT stream_id FROM"
                    " {excluded}) ORDER BY 1, 2, 3 LIMIT {limit}"
                ).format(
                    location=sql.SQL(_ROW_LOCATION[table]),
                    first=first,
                    second=second,
                    stream=sql.SQL(_ROW_STREAM[table]),
                    excluded=excluded,
                    limit=sql.Literal(ROWS_REPORTED_MAX),
                )
            ).fetchall()
            detail = (
                f"{table}: this row of the views is not what the replay gives"
                if only_in == "views"
                else f"{table}: the replay gives this row, the views do not have it"
            )
            problems.extend(
                Problem(
                    "projections",
                    PROJECTION_MISMATCH,
                    detail,
                    stream_id,
                    version,
                    event_id,
                    f"postgresql:{self.live_schema}.{table}",
                )
                for stream_id, version, event_id in rows
            )
        return problems


@contextmanager
def _excluded_streams(
    connection: psycopg.Connection[Any], schema: str, streams: set[str]
) -> Iterator[sql.Composable]:
    """A table in ``schema`` holding ``streams`` (the ones already reported), for the row diff."""
    table = qualified(schema, "verify_excluded")
    connection.execute(sql.SQL("CREATE TABLE {} (stream_id text PRIMARY KEY)").format(table))
    with connection.cursor().copy(sql.SQL("COPY {} (stream_id) FROM STDIN").format(table)) as copy:
        for stream_id in sorted(streams):
            copy.write_row((stream_id,))
    yield table
