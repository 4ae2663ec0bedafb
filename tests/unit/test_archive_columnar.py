"""The column-wise decoder against the record-by-record one: for every batch it decodes, the same
rows, counts and byte-identical Parquet objects; for every other batch it steps aside, and the
record-by-record path archives or refuses each record by the archive's rule."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.columnar import decode_rows, documents_text, parse_changes
from archive.layout import batch_key
from archive.parquet import encode
from archive.writer import DecodedBatch, days_of, decode_batch, decode_records
from ledger.changes import change_document, encode_change
from ledger.codec import canonical_json, event_hash, verify_chain
from ledger.decoding import decode_event
from ledger.domain.errors import UndecodableEventError
from ledger.dynamodb import event_to_item
from ledger.envelope import Actor, RecordedEvent
from tests.archive_events import ledger_history
from tests.envelope_strategies import MOMENTS, actors, canonical_moment, texts
from tests.kinesis_events import REGION, TABLE_NAME, KinesisShard, kinesis_record

HISTORY = ledger_history(12).events()  # 60-odd events of 12 payments over six days
CREATED_AT_MS = 1_795_262_400_123


def _document(event: RecordedEvent, name: str = "INSERT") -> dict[str, Any]:
    return change_document(
        event_to_item(event),
        event_name=name,
        table_name=TABLE_NAME,
        region=REGION,
        created_at_ms=CREATED_AT_MS,
        change_id=event.event_id,
    )


def _record(data: dict[str, Any] | bytes, partition_key: str, shard: KinesisShard) -> Any:
    raw = data if isinstance(data, bytes) else encode_change(data)
    return kinesis_record(raw, partition_key, shard)


def _records(events: list[RecordedEvent], name: str = "INSERT") -> list[Any]:
    shard = KinesisShard()
    return [_record(_document(event, name), event.stream_id, shard) for event in events]


def _objects(batch: DecodedBatch) -> list[tuple[str, bytes]]:
    """What ``write_batch`` puts: each object's key and bytes."""
    return [
        (batch_key(day, batch.shard_id, batch.first_sequence, batch.last_sequence), encode(rows))
        for day, rows in days_of(batch.rows)
    ]


def _counts(batch: DecodedBatch) -> tuple[Any, ...]:
    return (batch.received, batch.ignored, batch.duplicates, batch.poison, batch.failures)


def _same_both_ways(records: list[Any]) -> DecodedBatch:
    """Decode column-wise (which must take the batch) and record by record: the same result."""
    fast, reference = decode_batch(records), decode_records(records)
    assert fast.column_wise
    assert not reference.column_wise
    assert fast.rows.equals(reference.rows)
    assert _objects(fast) == _objects(reference)
    assert _counts(fast) == _counts(reference)
    return fast


def _by_id(events: list[RecordedEvent]) -> list[RecordedEvent]:
    return sorted(events, key=lambda event: event.event_id)


def _rehashed(event: RecordedEvent, **changes: Any) -> RecordedEvent:
    changed = dataclasses.replace(event, **changes)
    return dataclasses.replace(changed, hash=event_hash(changed))


# ── the same result for every batch of well-formed records ──────────────────────────────────

_TEXT = texts(max_size=40)
_ACTORS = actors(_TEXT)


@st.composite
def _payloads(draw: st.DrawFn, payload: str) -> str:
    """The stored payload, or another JSON object: extra fields (any Unicode, long), copied
    fields missing or null, amounts anywhere in 64 bits, other spacing."""
    document = json.loads(payload)
    if draw(st.booleans()):
        document["note"] = draw(_TEXT)
    if draw(st.integers(0, 9)) == 0:
        document["description"] = "long " * 8_000
    for name in ("merchant_id", "currency", "amount_minor"):
        choice = draw(st.integers(0, 5))
        if choice == 0:
            document.pop(name, None)
        elif choice == 1:
            document[name] = None
    if "amount_minor" in document and draw(st.booleans()):
        document["amount_minor"] = draw(st.integers(-(2**63), 2**63 - 1))
    if draw(st.booleans()):
        return json.dumps(document, ensure_ascii=draw(st.booleans()), indent=None)
    return canonical_json(document)


@st.composite
def _batches(draw: st.DrawFn) -> list[Any]:
    chosen = draw(st.lists(st.sampled_from(HISTORY), min_size=1, max_size=25, unique=True))
    events = [
        _rehashed(
            event,
            actor=draw(_ACTORS),
            causation_id=draw(st.none() | _TEXT),
            correlation_id=draw(_TEXT),
            idempotency_key=draw(_TEXT),
            occurred_at=canonical_moment(draw(MOMENTS)),
            recorded_at=canonical_moment(draw(MOMENTS)),
            payload=draw(_payloads(event.payload)),
        )
        if draw(st.booleans())
        else event
        for event in chosen
    ]
    shard = KinesisShard()
    documents = [(_document(event), event.stream_id) for event in events]
    again = draw(st.lists(st.sampled_from(events), max_size=5))  # delivered twice
    documents += [(_document(event), event.stream_id) for event in again]
    for name in draw(st.lists(st.sampled_from(["MODIFY", "REMOVE"]), max_size=3)):
        event = draw(st.sampled_from(events))
        documents.append((_document(event, name), event.stream_id))
    ordered = draw(st.permutations(documents))
    return [_record(document, key, shard) for document, key in ordered]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=_batches())
def test_column_wise_decoding_equals_record_by_record(records: list[Any]) -> None:
    _same_both_ways(records)


def test_a_day_of_events_round_trips_and_chains_verify() -> None:
    batch = _same_both_ways(_records(HISTORY))
    assert batch.events == sorted(
        HISTORY, key=lambda e: (e.recorded_at[:10], e.stream_id, e.version)
    )
    assert batch.rows.column("merchant_id").null_count == 0
    assert len(_objects(batch)) == 6  # one per recorded day
    for stream_id in {event.stream_id for event in HISTORY}:
        verify_chain(
            sorted((e for e in batch.events if e.stream_id == stream_id), key=lambda e: e.version)
        )


def _unicode() -> list[RecordedEvent]:
    agent = Actor("agent", "agent-ü-😀", model="モデル", version="∞")
    return [
        _rehashed(HISTORY[0], actor=agent),
        _rehashed(HISTORY[1], correlation_id="κόσμε", payload='{"merchant_id":"m-€","x":"😀"}'),
    ]


def _with_note(event: RecordedEvent, note: str) -> RecordedEvent:
    payload = json.loads(event.payload) | {"description": note}
    return _rehashed(event, payload=canonical_json(payload))


def _plain(events: list[RecordedEvent]) -> tuple[list[Any], list[RecordedEvent], int, int]:
    return _records(events), events, 0, 0


# case -> (records, the events archived, duplicates, ignored records)
HAND_MADE: dict[str, Any] = {
    "unicode": lambda: _plain(_unicode()),
    "long payload": lambda: _plain([_with_note(HISTORY[0], "é" * 30_000)]),
    "no causation, no actor model": lambda: _plain(
        [_rehashed(HISTORY[0], causation_id=None, actor=Actor("system", "settlement"))]
    ),
    "several days": lambda: _plain(HISTORY),
    "nul characters": lambda: _plain(
        [_rehashed(HISTORY[0], idempotency_key="k\x00", payload='{"note":"a\\u0000"}')]
    ),
    "duplicates": lambda: (_records(HISTORY[:12]) + _records(HISTORY[3:7]), HISTORY[:12], 4, 0),
    "out of order": lambda: (
        random.Random(3).sample(_records(HISTORY), len(HISTORY)),
        HISTORY,
        0,
        0,
    ),
    "modify and remove": lambda: (
        _records(HISTORY[:2], "MODIFY") + _records(HISTORY[:12]) + _records(HISTORY[2:4], "REMOVE"),
        HISTORY[:12],
        0,
        4,
    ),
    "nothing but removes": lambda: (_records(HISTORY[:3], "REMOVE"), [], 0, 3),
    # Arrow reads 4 MiB blocks: several chunks per column.
    "beyond one JSON block": lambda: (
        _records([_with_note(event, "x" * 32_000) for event in HISTORY] * 3),
        [_with_note(event, "x" * 32_000) for event in HISTORY],
        2 * len(HISTORY),
        0,
    ),
    # Two events for one stream version: both kept, in arrival order.
    "one version twice": lambda: (
        _records([_rehashed(HISTORY[0], event_id="e-later"), HISTORY[0], HISTORY[1]]),
        [_rehashed(HISTORY[0], event_id="e-later"), HISTORY[0], HISTORY[1]],
        0,
        0,
    ),
}


@pytest.mark.parametrize("case", list(HAND_MADE))
def test_hand_made_batches_decode_the_same_both_ways(case: str) -> None:
    records, events, duplicates, ignored = HAND_MADE[case]()
    batch = _same_both_ways(records)
    assert _by_id(batch.events) == _by_id(events)
    assert (batch.duplicates, batch.ignored) == (duplicates, ignored)
    if case == "one version twice":
        assert batch.events[:2] == events[:2]
    if case == "beyond one JSON block":
        assert parse_changes(documents_text(records)).column("dynamodb").num_chunks > 1


# ── the archive's rule: payloads that fail the domain model are archived ────────────────────


@pytest.mark.parametrize(
    ("payload", "columns"),
    [
        ('{"merchant_id":"m-1","surprise":1}', ("m-1", None, None)),
        ('{"amount_minor":1.5,"currency":"EUR","merchant_id":"m-1"}', ("m-1", None, "EUR")),
        ('{"amount_minor":true,"merchant_id":7}', (None, None, None)),
        ('{"amount_minor":99999999999999999999}', (None, None, None)),
        ('{"merchant_id":"a","merchant_id":"b"}', ("b", None, None)),
        ('{"currency":"\\ud800"}', (None, None, None)),
        ("{}", (None, None, None)),
    ],
)
def test_an_event_whose_payload_fails_the_domain_model_is_archived_as_stored(
    payload: str, columns: tuple[Any, ...]
) -> None:
    event = dataclasses.replace(HISTORY[1], payload=payload)
    with pytest.raises(UndecodableEventError):
        decode_event(event)  # projections refuse it when they read it from the archive
    batch = decode_batch(_records([HISTORY[0], event]))
    assert batch.failures == {}
    assert batch.events == sorted([HISTORY[0], event], key=lambda e: (e.recorded_at, e.version))
    row = batch.rows.slice(batch.events.index(event), 1).to_pylist()[0]
    assert (row["merchant_id"], row["amount_minor"], row["currency"]) == columns
    assert row["payload"] == payload  # byte for byte


def test_a_domain_invalid_event_of_well_typed_fields_stays_on_the_column_wise_path() -> None:
    # Version 2 of a stream that is not PaymentInitiated-first and a payload with an extra field:
    # decode_event refuses both; the archive stores them, column-wise.
    events = [
        dataclasses.replace(HISTORY[0], payload='{"merchant_id":"m-1","extra":1}'),
        dataclasses.replace(HISTORY[1], event_type="PaymentVanished"),
    ]
    batch = _same_both_ways(_records(events))
    assert batch.rows.num_rows == 2


# ── records only the record-by-record path may decide ───────────────────────────────────────


def _edited(edit: Any) -> list[Any]:
    """Three payments' records, the fourth record (HISTORY[3]) edited by ``edit(document)``."""
    shard = KinesisShard()
    records = []
    for index, event in enumerate(HISTORY[:8]):
        document: Any = _document(event)
        if index == 3:
            document = edit(document)
        records.append(_record(document, event.stream_id, shard))
    return records


def _image(name: str, value: Any) -> Any:
    def edit(document: dict[str, Any]) -> dict[str, Any]:
        image = document["dynamodb"]["NewImage"]
        if value is _ABSENT:
            del image[name]
        else:
            image[name] = value
        return document

    return edit


def _keys_too(name: str, value: str) -> Any:
    def edit(document: dict[str, Any]) -> dict[str, Any]:
        document["dynamodb"]["NewImage"][name] = {"S" if name == "pk" else "N": value}
        document["dynamodb"]["Keys"][name] = {"S" if name == "pk" else "N": value}
        return document

    return edit


def _change(name: str, value: Any) -> Any:
    def edit(document: dict[str, Any]) -> dict[str, Any]:
        if value is _ABSENT:
            del document["dynamodb"][name]
        else:
            document["dynamodb"][name] = value
        return document

    return edit


def _replace(old: bytes, new: bytes) -> Any:
    return lambda document: encode_change(document).replace(old, new, 1)


_ABSENT = object()
_OTHER_KEYS = {"pk": {"S": "payment#other"}, "sk": {"N": "1"}}
_ROBOT = {"M": {"kind": {"S": "robot"}, "id": {"S": "r"}}}

REFUSED = {
    "recorded_at without microseconds": _image("recorded_at", {"S": "2026-11-01T09:00:00Z"}),
    "occurred_at with an offset": _image("occurred_at", {"S": "2026-11-01T09:00:00.000000+00:00"}),
    "a day that does not exist": _image("recorded_at", {"S": "2026-02-30T09:00:00.000000Z"}),
    "year zero": _image("occurred_at", {"S": "0000-01-01T00:00:00.000000Z"}),
    "version 0": _keys_too("sk", "0"),
    "a version beyond 64 bits": _keys_too("sk", "9223372036854775808"),
    "a version not in integer form": _keys_too("sk", "1.0"),
    "schema version beyond 32 bits": _image("schema_version", {"N": "2147483648"}),
    "a number with a trailing newline": _image("schema_version", {"N": "1\n"}),
    "not a payment stream": _keys_too("pk", "refund#r-1"),
    "payload not an object": _image("payload", {"S": "[1]"}),
    "payload not JSON": _image("payload", {"S": "{not json"}),
    "payload two objects": _image("payload", {"S": '{"a":1}\n{"b":2}'}),
    "a missing attribute": _image("hash", _ABSENT),
    "a number where a string is": _image("event_id", {"N": "5"}),
    "a string of another type": _image("event_id", {"S": 5}),
    "causation present without a string": _image("causation_id", {"S": None}),
    "causation as a NULL attribute": _image("causation_id", {"NULL": True}),
    "an unknown actor kind": _image("actor", _ROBOT),
    "an actor that is not a map": _image("actor", {"S": "api"}),
    "keys that do not match": _change("Keys", _OTHER_KEYS),
    "an insert without image": _change("NewImage", None),
    "an unknown change type": lambda document: document | {"eventName": "UPSERT"},
    "a lone surrogate": _replace(b'"correlation_id":{"S":"', b'"correlation_id":{"S":"\\ud800'),
    "invalid UTF-8": _replace(b'"awsRegion":"', b'"awsRegion":"\xff'),
    "two documents in one record": lambda document: encode_change(document) * 2,
    "two lines in one record": lambda document: b"\n".join([encode_change(document)] * 2),
    "not JSON": lambda document: b"not json",
    "not an object": lambda document: b"[1, 2]",
    "empty": lambda document: b"",
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_malformed_record_falls_back_and_fails_with_the_rest_of_its_payment(case: str) -> None:
    records = _edited(REFUSED[case])
    assert decode_rows(records) is None
    batch = decode_batch(records)
    assert not batch.column_wise
    key = records[3]["kinesis"]["partitionKey"]
    later = [record["kinesis"] for record in records[3:]]
    assert list(batch.failures) == [k["sequenceNumber"] for k in later if k["partitionKey"] == key]
    assert batch.poison == 1
    kept = [e for index, e in enumerate(HISTORY[:8]) if index < 3 or e.stream_id != key]
    assert _by_id(batch.events) == _by_id(kept)
    # What the rest of the batch archives is what the column-wise path archives without them.
    clean = [r for r in records if r["kinesis"]["sequenceNumber"] not in batch.failures]
    assert batch.rows.equals(_same_both_ways(clean).rows)


def test_bad_base64_falls_back_and_fails() -> None:
    records = _records(HISTORY[:2])
    records[1]["kinesis"]["data"] = "bm90IGpzb24=="
    batch = decode_batch(records)
    assert list(batch.failures) == [records[1]["kinesis"]["sequenceNumber"]]
    assert batch.failures[records[1]["kinesis"]["sequenceNumber"]].startswith("undecodable: Error")


def test_one_event_id_with_two_contents_falls_back_and_fails_the_later_copy() -> None:
    forged = dataclasses.replace(HISTORY[0], correlation_id="another")
    records = _records([HISTORY[0], HISTORY[1], forged])
    assert decode_rows(records) is None
    batch = decode_batch(records)
    reason = batch.failures[records[2]["kinesis"]["sequenceNumber"]]
    assert "delivered twice with different content" in reason


ACCEPTED_RECORD_BY_RECORD = {
    "a field given twice (Python keeps the last)": _replace(
        b'"eventName":"INSERT"', b'"eventName":"REMOVE","eventName":"INSERT"'
    ),
    "no creation time": _change("ApproximateCreationDateTime", _ABSENT),
    "a creation time that is text": _change("ApproximateCreationDateTime", "12"),
    "keys with a non-canonical number": _replace(b'"sk":{"N":"', b'"sk":{"N":"0'),
    "an ignored field beyond a double": _replace(b'"awsRegion":"us-east-1"', b'"awsRegion":1e999'),
    "leading whitespace": lambda document: b" " + encode_change(document),
}


@pytest.mark.parametrize("case", list(ACCEPTED_RECORD_BY_RECORD))
def test_a_record_only_python_reads_falls_back_and_is_archived(case: str) -> None:
    records = _edited(ACCEPTED_RECORD_BY_RECORD[case])
    assert decode_rows(records) is None
    batch = decode_batch(records)
    assert (batch.column_wise, batch.failures) == (False, {})
    assert batch.rows.equals(_same_both_ways(_records(HISTORY[:8])).rows)


# ── nesting beyond Python's parser ──────────────────────────────────────────────────────────


def test_a_record_nested_deeper_than_python_parses_is_archived_both_ways() -> None:
    deep = "[" * 5_000 + "]" * 5_000
    payload = canonical_json(json.loads(HISTORY[3].payload))[:-1] + f',"z":{deep}}}'
    nested_payload = dataclasses.replace(HISTORY[3], payload=payload)
    records = _records([*HISTORY[:3], nested_payload, *HISTORY[4:8]])
    document = json.loads(base64.b64decode(records[5]["kinesis"]["data"]))
    text = encode_change(document).replace(
        b'"userIdentity":null', f'"userIdentity":{deep}'.encode()
    )
    records[5] = _record(text, HISTORY[5].stream_id, KinesisShard())
    with pytest.raises(RecursionError):
        json.loads(text)
    batch = _same_both_ways(records)
    assert batch.rows.num_rows == 8
    records.append(_record(b"not json", "payment#pay-x", KinesisShard()))  # now record by record
    assert decode_records(records).rows.equals(batch.rows)
