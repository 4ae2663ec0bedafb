"""The archive's bulk chain check assembles each row's chain input in SQL: for every row it
builds exactly the bytes ``ledger.codec`` hashes, or nothing, or a text no event has (a raw
control character): never a different text that could be made to match a stored hash."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.chains import chain_input_sql, unhashed_streams
from archive.schema import PayloadFields, events_to_table
from ledger.codec import canonical_json, chain_hash, hash_document
from ledger.envelope import Actor, RecordedEvent
from tests.envelope_strategies import MOMENTS, actors, canonical_moment, texts

_TEXT = texts(max_size=12)
_PAYLOADS = st.dictionaries(_TEXT, st.integers(-(2**70), 2**70) | _TEXT | st.none(), max_size=4)


def _chain_inputs(events: list[RecordedEvent]) -> list[bytes | None]:
    table = events_to_table(events, [PayloadFields(None, None, None)] * len(events))
    rows = duckdb.connect().from_arrow(table).select(chain_input_sql()).fetchall()
    return [None if value is None else value.encode("utf-8") for (value,) in rows]


def _hashed(event: RecordedEvent) -> bytes:
    return (event.prev_hash + canonical_json(hash_document(event))).encode("utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actor=actors(_TEXT),
    strings=st.lists(_TEXT, min_size=5, max_size=5),
    causation_id=st.none() | _TEXT,
    payload=_PAYLOADS,
    occurred=MOMENTS,
    recorded=MOMENTS,
    version=st.integers(1, 2**63 - 1),
    schema_version=st.integers(-(2**31), 2**31 - 1),
)
def test_a_row_assembles_what_the_chain_hashes_or_nothing(
    actor: Actor,
    strings: list[str],
    causation_id: str | None,
    payload: dict[str, object],
    occurred: datetime,
    recorded: datetime,
    version: int,
    schema_version: int,
) -> None:
    event_id, correlation_id, idempotency_key, event_type, payment = strings
    event = RecordedEvent(
        stream_id="payment#" + payment,
        version=version,
        event_id=event_id,
        event_type=event_type,
        schema_version=schema_version,
        occurred_at=canonical_moment(occurred),
        recorded_at=canonical_moment(recorded),
        actor=actor,
        correlation_id=correlation_id,
        causation_id=causation_id,
        idempotency_key=idempotency_key,
        request_digest=hashlib.sha256(payment.encode()).hexdigest(),
        payload=canonical_json(payload),
        prev_hash=hashlib.sha256(event_id.encode()).hexdigest(),
        hash="",
    )
    (assembled,) = _chain_inputs([event])
    envelope = [event.stream_id, event_id, correlation_id, idempotency_key, event_type]
    envelope += [actor.id, actor.kind, actor.model or "", actor.version or "", causation_id or ""]
    if any('"' in text or "\\" in text for text in envelope):
        assert assembled is None  # JSON escapes these: the exact check's job
    elif any(character < " " for text in envelope for character in text):
        # Raw: canonical JSON never holds a control character raw, so this text is no event's
        # and cannot match a hash the ledger wrote; the row falls to the exact check.
        assert assembled is not None
        assert assembled != _hashed(event)
        assert any(byte < 0x20 for byte in assembled)
    else:
        assert assembled == _hashed(event)


def _event(actor_id: str = "agent-7") -> RecordedEvent:
    event = RecordedEvent(
        stream_id="payment#pay-1",
        version=1,
        event_id="0193f0a8-0000-7000-8000-000000000001",
        event_type="PaymentInitiated",
        schema_version=1,
        occurred_at="2026-11-21T12:00:00.000000Z",
        recorded_at="2026-11-21T12:00:00.000001Z",
        actor=Actor("agent", actor_id, model="router"),
        correlation_id="flow-1",
        causation_id=None,
        idempotency_key="key-1",
        request_digest="d" * 64,
        payload='{"amount_minor":1000,"note":"a \\"quoted\\" word"}',
        prev_hash="0" * 64,
        hash="",
    )
    return dataclasses.replace(event, hash=chain_hash(event.prev_hash, hash_document(event)))


def _batch(events: list[RecordedEvent]) -> pa.RecordBatch:
    inputs = _chain_inputs(events)
    return pa.RecordBatch.from_pydict(
        {
            "chain_input": pa.array(
                [None if value is None else value.decode() for value in inputs], pa.string()
            ),
            "hash": [event.hash for event in events],
            "stream_id": [event.stream_id for event in events],
        }
    )


def test_rows_whose_hash_is_their_chain_input_are_not_reported() -> None:
    events = [_event(), dataclasses.replace(_event(), stream_id="payment#pay-2")]
    events[1] = dataclasses.replace(events[1], hash=chain_hash("0" * 64, hash_document(events[1])))
    assert unhashed_streams(_batch(events)) == set()


def test_each_row_that_does_not_hash_names_its_stream() -> None:
    good = _event()
    altered = dataclasses.replace(_event(), stream_id="payment#pay-2")  # its hash is pay-1's
    uppercase = dataclasses.replace(good, stream_id="payment#pay-3")
    uppercase = dataclasses.replace(
        uppercase, hash=chain_hash("0" * 64, hash_document(uppercase)).upper()
    )
    short = dataclasses.replace(good, stream_id="payment#pay-4", hash=good.hash[:63])
    escaped = _event('agent "7"')
    batch = _batch([good, altered, uppercase, short, escaped])
    assert unhashed_streams(batch) == {
        "payment#pay-2",
        "payment#pay-3",
        "payment#pay-4",
        "payment#pay-1",  # the escaped row: no chain input, whatever its hash
    }
    assert unhashed_streams(batch.slice(1, 1)) == {"payment#pay-2"}
    assert unhashed_streams(batch.slice(0, 1)) == set()  # a slice of a batch is read in place
