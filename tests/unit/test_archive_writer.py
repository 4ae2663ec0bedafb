"""Decoding a Kinesis batch for the archive: dedupe, order, ignore non-events, and report poison
(with every later record of its payment) instead of dropping it."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
from typing import Any

import pytest

from archive.layout import batch_key, compacted_key, day_of_key, parse_day
from archive.writer import decode_batch, shard_id_of
from ledger.domain.errors import ValidationError
from ledger.domain.payment import InitiatePayment
from ledger.envelope import RecordedEvent
from ledger.service import PaymentService
from tests.kinesis_events import (
    KinesisShard,
    change_record,
    insert_events,
    kinesis_event,
    kinesis_record,
)
from tests.unit.conftest import context


def _records(event: dict[str, Any]) -> list[dict[str, Any]]:
    return list(event["Records"])


def test_events_are_deduplicated_and_ordered_by_stream_and_version(
    recorded_history: list[RecordedEvent],
) -> None:
    shard = KinesisShard()
    records = [change_record(event, shard) for event in recorded_history]
    again = kinesis_record(
        base64.b64decode(records[2]["kinesis"]["data"]),
        "payment#pay-1",
        shard,
        sequence_number=records[2]["kinesis"]["sequenceNumber"],
    )
    later_copy = change_record(recorded_history[0], shard)  # redelivered with a new sequence
    shuffled = [*records, again, later_copy]
    random.Random(7).shuffle(shuffled)
    batch = decode_batch(_records(kinesis_event(shuffled)))
    assert batch.events == recorded_history
    assert batch.duplicates == 2
    assert batch.failures == {}
    assert batch.first_sequence == shuffled[0]["kinesis"]["sequenceNumber"]
    assert batch.last_sequence == shuffled[-1]["kinesis"]["sequenceNumber"]
    assert set(batch.rows.column("merchant_id").to_pylist()) == {"m-1"}
    assert batch.column_wise


@pytest.mark.parametrize("name", ["MODIFY", "REMOVE"])
def test_changes_that_are_not_inserts_are_ignored(
    recorded_history: list[RecordedEvent], name: str
) -> None:
    shard = KinesisShard()
    records = [change_record(recorded_history[0], shard, event_name=name)]
    batch = decode_batch(_records(kinesis_event(records)))
    assert (batch.events, batch.ignored, batch.failures) == ([], 1, {})


def test_poison_fails_with_every_later_record_of_its_payment_and_nothing_else(
    recorded_history: list[RecordedEvent], service: PaymentService
) -> None:
    shard = KinesisShard()
    first, second, *rest = recorded_history
    bad = dataclasses.replace(second, payload="[1.5]")  # not a JSON object: refused
    service.execute(InitiatePayment("pay-2", "1.00", "EUR", "m-2", "c-2"), context("k-other"))
    other = service.load("pay-2")
    records = [
        change_record(first, shard),
        change_record(bad, shard),
        change_record(other[0], shard),
        *(change_record(event, shard) for event in rest),
    ]
    batch = decode_batch(_records(kinesis_event(records)))
    failed = [record["kinesis"]["sequenceNumber"] for record in records[1:2] + records[3:]]
    assert list(batch.failures) == failed
    assert batch.failures[failed[0]].startswith("undecodable: UndecodableEventError")
    assert all("an earlier record of the stream failed" in batch.failures[s] for s in failed[1:])
    assert batch.events == [first, other[0]]
    assert batch.poison == 1


@pytest.mark.parametrize(
    "data",
    [b"not base64!", base64.b64encode(b"not json"), base64.b64encode(b'{"eventName": "INSERT"}')],
)
def test_an_unreadable_record_is_poison(recorded_history: list[RecordedEvent], data: bytes) -> None:
    shard = KinesisShard()
    record = change_record(recorded_history[0], shard)
    record["kinesis"]["data"] = data.decode("ascii")
    batch = decode_batch([record])  # Lambda never sends bad base64; the writer copes anyway
    assert list(batch.failures) == [record["kinesis"]["sequenceNumber"]]
    assert batch.events == []


def test_one_event_id_with_two_contents_is_poison(recorded_history: list[RecordedEvent]) -> None:
    shard = KinesisShard()
    event = recorded_history[0]
    document = json.loads(base64.b64decode(change_record(event, shard)["kinesis"]["data"]))
    document["dynamodb"]["NewImage"]["correlation_id"] = {"S": "another"}
    forged = kinesis_record(json.dumps(document).encode(), event.stream_id, shard)
    batch = decode_batch(_records(kinesis_event([change_record(event, shard), forged])))
    assert batch.events == [event]
    assert (
        "delivered twice with different content"
        in batch.failures[forged["kinesis"]["sequenceNumber"]]
    )


def test_the_shard_comes_from_the_event_id(recorded_history: list[RecordedEvent]) -> None:
    record = insert_events(recorded_history[:1], KinesisShard("shardId-000000000007"))["Records"][0]
    assert shard_id_of(record) == "shardId-000000000007"
    assert shard_id_of({"eventID": "../../x:1"}) == "shard-unknown"


def test_keys_are_deterministic_and_hive_partitioned() -> None:
    day = parse_day("2026-03-05")
    key = batch_key(day, "shardId-000000000001", "49", "51")
    assert key == "events/year=2026/month=03/day=05/shardId-000000000001-49-51.parquet"
    assert day_of_key(key) == day
    assert day_of_key(compacted_key(day, "abc", 2)) == day
    assert compacted_key(day, "abc", 2).endswith("/compacted-abc-00002.parquet")
    assert day_of_key("events/year=2026/month=02/day=30/x.parquet") is None
    assert day_of_key("events/year=2026/month=02/day=03/x.json") is None


@pytest.mark.parametrize("text", ["2026-02-30", "2026-2-3", "yesterday", "2026-02-03T00:00"])
def test_days_must_be_real_and_zero_padded(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_day(text)
