"""Names shared by the migrations, the projection, the checksums and the benchmark.

The column tuples are the contract between ``rows.py`` (which builds row tuples in this order,
with Python values of these types: str, int, bool, Decimal, datetime, dict for jsonb) and the
tables ``migrations/0001_tables.sql`` creates.
"""

from __future__ import annotations

import re

from psycopg import sql

from ledger.domain.errors import ValidationError

# (column, PostgreSQL type) in table order; binary COPY sends every value typed.
_PAYMENTS = (
    ("payment_id", "text"),
    ("merchant_id", "text"),
    ("customer_id", "text"),
    ("currency", "text"),
    ("status", "text"),
    ("amount_minor", "int8"),
    ("authorized_minor", "int8"),
    ("captured_minor", "int8"),
    ("released_minor", "int8"),
    ("refunded_minor", "int8"),
    ("settled_minor", "int8"),
    ("settled", "bool"),
    ("risk_decision", "text"),
    ("risk_score", "numeric"),
    ("processor", "text"),
    ("hold_until", "timestamptz"),
    ("description", "text"),
    ("failure_reason", "text"),
    ("version", "int4"),
    ("head_hash", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
_POSTINGS = (
    ("event_id", "text"),
    ("line", "int4"),
    ("payment_id", "text"),
    ("version", "int4"),
    ("account", "text"),
    ("direction", "text"),
    ("amount_minor", "int8"),
    ("currency", "text"),
    ("phase", "text"),
    ("event_type", "text"),
    ("recorded_at", "timestamptz"),
)
_AGENT_ACTIONS = (
    ("event_id", "text"),
    ("payment_id", "text"),
    ("version", "int4"),
    ("agent_kind", "text"),
    ("agent_id", "text"),
    ("agent_model", "text"),
    ("agent_version", "text"),
    ("action", "text"),
    ("decision", "text"),
    ("score", "numeric"),
    ("reason", "text"),
    ("metadata", "jsonb"),
    ("correlation_id", "text"),
    ("occurred_at", "timestamptz"),
)
_POSITIONS = (
    ("stream_id", "text"),
    ("version", "int4"),
    ("event_id", "text"),
    ("hash", "text"),
    ("updated_at", "timestamptz"),
)
PAYMENT_COLUMNS = tuple(name for name, _ in _PAYMENTS)
POSTING_COLUMNS = tuple(name for name, _ in _POSTINGS)
AGENT_ACTION_COLUMNS = tuple(name for name, _ in _AGENT_ACTIONS)
POSITION_COLUMNS = tuple(name for name, _ in _POSITIONS)
PAYMENT_TYPES = tuple(kind for _, kind in _PAYMENTS)
POSTING_TYPES = tuple(kind for _, kind in _POSTINGS)
AGENT_ACTION_TYPES = tuple(kind for _, kind in _AGENT_ACTIONS)
POSITION_TYPES = tuple(kind for _, kind in _POSITIONS)

# Every table the projection writes, with its primary key as a deterministic ORDER BY (byte
# order for text, whatever the database's collation).
VIEW_TABLES: dict[str, str] = {
    "payments": 'payment_id COLLATE "C"',
    "postings": 'event_id COLLATE "C", line',
    "agent_actions": 'event_id COLLATE "C"',
    "projection_positions": 'stream_id COLLATE "C"',
}
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "payments": PAYMENT_COLUMNS,
    "postings": POSTING_COLUMNS,
    "agent_actions": AGENT_ACTION_COLUMNS,
    "projection_positions": POSITION_COLUMNS,
}
TABLE_TYPES: dict[str, tuple[str, ...]] = {
    "payments": PAYMENT_TYPES,
    "postings": POSTING_TYPES,
    "agent_actions": AGENT_ACTION_TYPES,
    "projection_positions": POSITION_TYPES,
}

# How a payments row is read back to resume the fold: timestamps as event-format text
# (format_timestamp's), the score as numeric's text (the exact digits stored).
_EVENT_TIME = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_READ_AS = {
    "risk_score": "{}::text",
    "hold_until": _EVENT_TIME,
    "created_at": _EVENT_TIME,
    "updated_at": _EVENT_TIME,
}


def payment_select(alias: str) -> sql.Composed:
    """The select list that reads ``alias``'s payments row for ``rows.snapshot_from_row``."""
    return sql.SQL(", ").join(
        sql.SQL(_READ_AS.get(column, "{}")).format(sql.Identifier(alias, column))
        for column in PAYMENT_COLUMNS
    )


# Lower-case identifiers only: they need no quoting anywhere (psql, logs, partition names).
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}\Z")


def check_schema_name(schema: str) -> str:
    """A schema name the projection accepts: ``[a-z_][a-z0-9_]*``, at most 48 characters."""
    if not _SCHEMA_NAME.match(schema) or schema.startswith("pg_"):
        raise ValidationError(f"schema name must match [a-z_][a-z0-9_]{{0,47}} (got {schema!r})")
    return schema


def analytics_schema(schema: str) -> str:
    """The schema of the analytics windows that go with the views in ``schema``
    (``<schema>_analytics``; see ``migrate`` for why they live apart)."""
    return check_schema_name(f"{schema}_analytics")


def qualified(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


def column_list(columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(column) for column in columns)
