"""The archive's row format: the declared schema v2, and rows that convert back to the identical
events whose hashes still verify."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.parquet import encode
from archive.schema import (
    ARCHIVE_SCHEMA,
    COLUMN_NAMES,
    SCHEMA_VERSION_KEY,
    events_from_batch,
    events_to_table,
    glue_columns,
)
from ledger.codec import event_hash, verify_chain
from ledger.decoding import decode_event
from ledger.envelope import Actor, RecordedEvent
from tests.envelope_strategies import MOMENTS, actors, canonical_moment, texts

# The decision every consumer (the template's Glue table, verification) builds on.
DECLARED = [
    ("event_id", pa.string(), False),
    ("stream_id", pa.string(), False),
    ("payment_id", pa.string(), False),
    ("version", pa.int64(), False),
    ("event_type", pa.string(), False),
    ("schema_version", pa.int32(), False),
    ("occurred_at", pa.timestamp("us"), False),
    ("recorded_at", pa.timestamp("us"), False),
    ("actor_kind", pa.string(), False),
    ("actor_id", pa.string(), False),
    ("actor_model", pa.string(), True),
    ("actor_version", pa.string(), True),
    ("correlation_id", pa.string(), False),
    ("causation_id", pa.string(), True),
    ("idempotency_key", pa.string(), False),
    ("request_digest", pa.string(), False),
    ("merchant_id", pa.string(), True),
    ("amount_minor", pa.int64(), True),
    ("currency", pa.string(), True),
    ("payload", pa.string(), False),
    ("prev_hash", pa.string(), False),
    ("hash", pa.string(), False),
]


def test_the_schema_is_the_declared_v2() -> None:
    assert [(f.name, f.type, f.nullable) for f in ARCHIVE_SCHEMA] == DECLARED
    assert ARCHIVE_SCHEMA.metadata[SCHEMA_VERSION_KEY] == b"2"
    field_ids = [int(f.metadata[b"PARQUET:field_id"]) for f in ARCHIVE_SCHEMA]
    assert field_ids == list(range(1, len(DECLARED) + 1))


def test_glue_columns_follow_the_schema_then_the_partitions() -> None:
    glue = {pa.string(): "string", pa.int64(): "bigint", pa.int32(): "int"}
    glue[pa.timestamp("us")] = "timestamp"
    expected = [(name, glue[kind]) for name, kind, _ in DECLARED]
    assert glue_columns() == [*expected, ("year", "string"), ("month", "string"), ("day", "string")]


def _round_trip(events: list[RecordedEvent]) -> list[RecordedEvent]:
    table = events_to_table(events, [decode_event(event) for event in events])
    data = encode(table)
    read = pq.read_table(pa.BufferReader(data))
    assert read.schema.equals(ARCHIVE_SCHEMA, check_metadata=False)
    assert pq.read_metadata(pa.BufferReader(data)).metadata[SCHEMA_VERSION_KEY] == b"2"
    return list(events_from_batch(read))


def test_rows_convert_back_to_the_identical_events(
    recorded_history: list[RecordedEvent],
) -> None:
    assert _round_trip(recorded_history) == recorded_history
    verify_chain(_round_trip(recorded_history))


def test_payload_columns_copy_the_payload(recorded_history: list[RecordedEvent]) -> None:
    payloads = [decode_event(event) for event in recorded_history]
    table = events_to_table(recorded_history, payloads)
    assert table.column("payment_id").to_pylist() == ["pay-1"] * len(recorded_history)
    assert set(table.column("merchant_id").to_pylist()) == {"m-1"}
    amounts = table.column("amount_minor").to_pylist()
    assert amounts == [getattr(payload, "amount_minor", None) for payload in payloads]
    assert amounts[0] == 1000
    assert amounts[1] is None  # a risk assessment moves no money


_TEXT = texts(without="\x00")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    occurred=MOMENTS,
    recorded=MOMENTS,
    actor=actors(_TEXT),
    causation_id=st.none() | _TEXT,
    correlation_id=_TEXT,
    idempotency_key=_TEXT,
    version=st.integers(min_value=2, max_value=2**63 - 1),
)
def test_any_envelope_round_trips_and_its_hash_still_verifies(
    recorded_history: list[RecordedEvent],
    occurred: datetime,
    recorded: datetime,
    actor: Actor,
    causation_id: str | None,
    correlation_id: str,
    idempotency_key: str,
    version: int,
) -> None:
    event = dataclasses.replace(
        recorded_history[1],
        version=version,
        occurred_at=canonical_moment(occurred),
        recorded_at=canonical_moment(recorded),
        actor=actor,
        causation_id=causation_id,
        correlation_id=correlation_id,
        idempotency_key=idempotency_key,
    )
    event = dataclasses.replace(event, hash=event_hash(event))
    (back,) = _round_trip([event])
    assert back == event
    assert event_hash(back) == back.hash


def test_a_row_with_a_null_where_an_event_has_none_is_refused(
    recorded_history: list[RecordedEvent],
) -> None:
    table = events_to_table(recorded_history, [decode_event(e) for e in recorded_history])
    broken = table.set_column(
        COLUMN_NAMES.index("hash"),
        pa.field("hash", pa.string()),
        pa.nulls(table.num_rows, pa.string()),
    )
    with pytest.raises(ValueError, match="hash holds a null"):
        list(events_from_batch(broken))
