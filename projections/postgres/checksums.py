"""Row counts and checksums of the view tables, to compare two schemas (rebuild, tests).

A table's checksum is the MD5 of its rows' MD5s in primary-key order (byte order, ``COLLATE
"C"``), each row rendered as PostgreSQL's text of the whole row with UTC timestamps. Every
column the projection writes is a function of the events (``updated_at`` is an event's
``recorded_at``, not the time of writing), so the same events give the same checksums however
they were delivered. Hashing per row keeps the aggregated text at 32 bytes per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from projections.postgres.tables import VIEW_TABLES, check_schema_name, qualified


@dataclass(frozen=True, slots=True)
class TableChecksum:
    rows: int
    md5: str


def table_checksums(connection: psycopg.Connection[Any], schema: str) -> dict[str, TableChecksum]:
    """Row count and checksum of every table the projection writes in ``schema``."""
    check_schema_name(schema)
    checksums = {}
    with connection.transaction():
        # Reading all tables in one snapshot; timestamps rendered in UTC whatever the session's.
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        connection.execute("SET LOCAL TimeZone = 'UTC'")
        for table, order in VIEW_TABLES.items():
            row = connection.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY {})), '')"
                    " FROM {} AS t"
                ).format(sql.SQL(order), qualified(schema, table))
            ).fetchone()
            assert row is not None
            checksums[table] = TableChecksum(rows=row[0], md5=row[1])
    return checksums
