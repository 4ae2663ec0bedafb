"""Monthly partitions of a range-partitioned table, created on demand by its writer.

A writer asks for the months (``YYYY-MM``, UTC) it is about to write into before its own
transaction: the missing partitions are created in a short transaction of their own (creating a
partition locks the parent table, which must not be held for a whole batch), serialised per
schema by an advisory lock and bounded by a lock timeout. Months known to exist are remembered
per process, so a month costs one lookup per process. An unused partition is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from projections.postgres.tables import check_schema_name, qualified

PARTITION_LOCK_TIMEOUT = "5s"  # creating a partition waits this long at most for readers
# pg_advisory_xact_lock(family, hashtext(schema)): the family the postings partitions use too.
PARTITION_LOCK_FAMILY = 0x70617274


class MonthlyPartitions:
    """The partitions ``<table>_yYYYYmMM`` of ``schema.table``, one per UTC month."""

    def __init__(self, schema: str, table: str) -> None:
        self.schema = check_schema_name(schema)
        self.table = table
        self._known: set[str] = set()

    def ensure(self, connection: psycopg.Connection[Any], months: Iterable[str]) -> None:
        """Create the partitions of ``months`` that do not exist (``connection`` in autocommit,
        outside any transaction)."""
        unknown = set(months) - self._known
        if not unknown:
            return
        existing = connection.execute(self._existing(), (sorted(unknown),)).fetchall()
        self._known.update(month for (month,) in existing)
        missing = sorted(unknown - self._known)
        if missing:
            with connection.transaction():
                connection.execute(
                    "SELECT set_config('lock_timeout', %s, true),"
                    " pg_advisory_xact_lock(%s, hashtext(%s))",
                    (PARTITION_LOCK_TIMEOUT, PARTITION_LOCK_FAMILY, self.schema),
                )
                for month in missing:
                    connection.execute(self._create(month))
            self._known.update(missing)

    def forget(self) -> None:
        """Look again next time (after a database error: a partition may have been dropped)."""
        self._known.clear()

    def _existing(self) -> sql.Composed:
        return sql.SQL(
            "SELECT month FROM unnest(%s::text[]) AS month"
            " WHERE to_regclass(format('%%I.%%I', {}::text,"
            " {}::text || '_y' || substr(month, 1, 4) || 'm' || substr(month, 6, 2)))"
            " IS NOT NULL"
        ).format(sql.Literal(self.schema), sql.Literal(self.table))

    def _create(self, month: str) -> sql.Composed:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        return sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
        ).format(
            qualified(self.schema, f"{self.table}_y{start:%Y}m{start:%m}"),
            qualified(self.schema, self.table),
            sql.Literal(start.isoformat()),
            sql.Literal(end.isoformat()),
        )


def month_of(moment: datetime) -> str:
    """``YYYY-MM`` of ``moment`` in UTC."""
    return f"{moment.astimezone(UTC):%Y-%m}"
