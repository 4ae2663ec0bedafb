"""The archive's Parquet schema (version 1) and the exact conversion between events and rows.

One row per event, in this column order; the Glue table declares the same columns with the Glue
types below, plus the partition columns ``year``, ``month``, ``day`` (zero-padded strings taken
from the object's path only, never stored in the file).

Guarantees:
- An archived row converts back to the identical ``RecordedEvent``: timestamps are stored as
  microseconds (``timestamp[us]``, no time zone, values UTC) and formatted back to the canonical
  ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; ``payload`` is the stored canonical JSON text byte for byte; the
  envelope fields the hash covers (idempotency key, request digest, actor model and version) are
  all columns, so ``event_hash`` of a row's event equals its ``hash``: a chain can be recomputed
  from the archive alone.
- Evolution: columns are never renamed, retyped or reused. A new column is appended, nullable,
  with the next Parquet field id, and the schema version goes up; readers match columns by field
  id (DuckDB) or by name (Athena, pyarrow), so files written before it read it as NULL. A new
  event type or payload field needs no schema change at all (``payload`` is JSON text).
- ``merchant_id``, ``amount_minor`` and ``currency`` copy the payload's fields (the payload
  carries them so one event can be read alone); ``amount_minor`` is null for events without one
  (risk assessments, failures, and releases, which carry ``released_minor``). Each is null when
  the payload lacks it or holds another type: the archive holds every event of the table, even
  one whose payload fails the domain model (``archive.records``).

Versions: 1, the first; 2, ``merchant_id`` nullable (an event whose payload lacks it is archived,
not refused). A version-1 object reads as version 2 (the same columns, one constraint fewer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ledger.domain.events import Payload
from ledger.envelope import PAYMENT_STREAM_PREFIX, Actor, RecordedEvent

ARCHIVE_SCHEMA_VERSION = 2
# Parquet key-value metadata (file footer) naming the schema version a file was written with.
SCHEMA_VERSION_KEY = b"payledger.archive_schema_version"
FIELD_ID_KEY = b"PARQUET:field_id"
PARTITION_COLUMNS = ("year", "month", "day")
_TIMESTAMP = pa.timestamp("us")
_TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")
# pyarrow's %S prints seconds with the column's six fractional digits: the canonical form.
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    arrow_type: pa.DataType
    nullable: bool
    glue_type: str
    field_id: int
    duckdb_type: str


def _column(name: str, kind: str, field_id: int, *, nullable: bool = False) -> Column:
    arrow_type, glue_type, duckdb_type = {
        "string": (pa.string(), "string", "VARCHAR"),
        "int64": (pa.int64(), "bigint", "BIGINT"),
        "int32": (pa.int32(), "int", "INTEGER"),
        "timestamp": (_TIMESTAMP, "timestamp", "TIMESTAMP"),
    }[kind]
    return Column(name, arrow_type, nullable, glue_type, field_id, duckdb_type)


COLUMNS: tuple[Column, ...] = (
    _column("event_id", "string", 1),
    _column("stream_id", "string", 2),
    _column("payment_id", "string", 3),
    _column("version", "int64", 4),
    _column("event_type", "string", 5),
    _column("schema_version", "int32", 6),
    _column("occurred_at", "timestamp", 7),
    _column("recorded_at", "timestamp", 8),
    _column("actor_kind", "string", 9),
    _column("actor_id", "string", 10),
    _column("actor_model", "string", 11, nullable=True),
    _column("actor_version", "string", 12, nullable=True),
    _column("correlation_id", "string", 13),
    _column("causation_id", "string", 14, nullable=True),
    _column("idempotency_key", "string", 15),
    _column("request_digest", "string", 16),
    _column("merchant_id", "string", 17, nullable=True),
    _column("amount_minor", "int64", 18, nullable=True),
    _column("currency", "string", 19, nullable=True),
    _column("payload", "string", 20),
    _column("prev_hash", "string", 21),
    _column("hash", "string", 22),
)
COLUMN_NAMES: tuple[str, ...] = tuple(column.name for column in COLUMNS)


def arrow_schema(columns: Sequence[Column] = COLUMNS) -> pa.Schema:
    """The Arrow schema of ``columns``: field ids in each field's metadata (what DuckDB matches
    columns by), the archive schema version in the schema's."""
    fields = [
        pa.field(
            column.name,
            column.arrow_type,
            nullable=column.nullable,
            metadata={FIELD_ID_KEY: str(column.field_id).encode()},
        )
        for column in columns
    ]
    return pa.schema(fields, metadata={SCHEMA_VERSION_KEY: str(ARCHIVE_SCHEMA_VERSION).encode()})


ARCHIVE_SCHEMA = arrow_schema()


def glue_columns() -> list[tuple[str, str]]:
    """(name, Glue type) of every stored column in order, then the partition columns."""
    stored = [(column.name, column.glue_type) for column in COLUMNS]
    return stored + [(name, "string") for name in PARTITION_COLUMNS]


@dataclass(frozen=True)  # not slots: events_to_table reads each payload's __dict__
class PayloadFields:
    """A row's payload columns (None: the payload lacks the field or holds another type)."""

    merchant_id: str | None
    amount_minor: int | None
    currency: str | None


def events_to_table(
    events: Sequence[RecordedEvent], payloads: Sequence[PayloadFields | Payload]
) -> pa.Table:
    """The rows of payment ``events``, each with its payload's fields: the archive's own copy
    (``archive.records.payload_fields``) or a decoded payload (``decode_event``'s)."""
    assert len(events) == len(payloads)
    assert all(event.stream_id.startswith(PAYMENT_STREAM_PREFIX) for event in events)
    actors = [event.actor for event in events]
    # The fields are in each object's __dict__; getattr on a missing field is pydantic's slow path.
    fields = [payload.__dict__ for payload in payloads]
    columns: dict[str, Any] = {
        "event_id": [event.event_id for event in events],
        "stream_id": [event.stream_id for event in events],
        "payment_id": [event.stream_id[len(PAYMENT_STREAM_PREFIX) :] for event in events],
        "version": [event.version for event in events],
        "event_type": [event.event_type for event in events],
        "schema_version": [event.schema_version for event in events],
        "occurred_at": _timestamps([event.occurred_at for event in events]),
        "recorded_at": _timestamps([event.recorded_at for event in events]),
        "actor_kind": [actor.kind for actor in actors],
        "actor_id": [actor.id for actor in actors],
        "actor_model": [actor.model for actor in actors],
        "actor_version": [actor.version for actor in actors],
        "correlation_id": [event.correlation_id for event in events],
        "causation_id": [event.causation_id for event in events],
        "idempotency_key": [event.idempotency_key for event in events],
        "request_digest": [event.request_digest for event in events],
        "merchant_id": [field.get("merchant_id") for field in fields],
        "amount_minor": [field.get("amount_minor") for field in fields],
        "currency": [field.get("currency") for field in fields],
        "payload": [event.payload for event in events],
        "prev_hash": [event.prev_hash for event in events],
        "hash": [event.hash for event in events],
    }
    return pa.Table.from_pydict(columns, schema=ARCHIVE_SCHEMA)


def _timestamps(texts: list[str]) -> pa.Array:
    # Canonical event timestamps (checked by archive.records) parse as UTC; the column has no zone.
    return pa.array(texts, pa.string()).cast(_TIMESTAMP_UTC).cast(_TIMESTAMP)


# The columns an event is made of (payment_id and the payload copies are derived, not needed).
_EVENT_COLUMNS = (
    "event_id", "stream_id", "version", "event_type", "schema_version", "occurred_at",
    "recorded_at", "actor_kind", "actor_id", "actor_model", "actor_version", "correlation_id",
    "causation_id", "idempotency_key", "request_digest", "payload", "prev_hash", "hash",
)  # fmt: skip
_NULLABLE = frozenset(column.name for column in COLUMNS if column.nullable)


def events_from_batch(batch: pa.RecordBatch | pa.Table) -> Iterator[RecordedEvent]:
    """The events of archived rows (any column order; other columns are ignored).

    Raises ``KeyError`` for a missing column and ``ValueError`` for a null where an event has
    none: rows that cannot be events.
    """
    values: list[list[Any]] = []
    for name in _EVENT_COLUMNS:
        column = batch.column(name)
        if name not in _NULLABLE and column.null_count:
            raise ValueError(f"archived column {name} holds a null")
        if name in ("occurred_at", "recorded_at"):
            column = pc.strftime(column, format=_TIMESTAMP_FORMAT)
        values.append(column.to_pylist())
    for row in zip(*values, strict=True):
        (
            event_id, stream_id, version, event_type, schema_version, occurred_at, recorded_at,
            actor_kind, actor_id, actor_model, actor_version, correlation_id, causation_id,
            idempotency_key, request_digest, payload, prev_hash, hash_,
        ) = row  # fmt: skip
        yield RecordedEvent(
            stream_id=stream_id,
            version=version,
            event_id=event_id,
            event_type=event_type,
            schema_version=schema_version,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
            actor=Actor(kind=actor_kind, id=actor_id, model=actor_model, version=actor_version),
            correlation_id=correlation_id,
            causation_id=causation_id,
            idempotency_key=idempotency_key,
            request_digest=request_digest,
            payload=payload,
            prev_hash=prev_hash,
            hash=hash_,
        )
