"""The Kinesis destination's change records: written and read back, and malformed ones refused."""

from __future__ import annotations

import base64
import json

import pytest

from ledger.changes import change_document, decode_change, encode_change, event_of
from ledger.domain.errors import UndecodableEventError
from ledger.dynamodb import event_to_item
from ledger.envelope import RecordedEvent
from tests.kinesis_events import KinesisShard, change_record, insert_events, window_event


def _data(record: dict[str, object]) -> bytes:
    return base64.b64decode(record["kinesis"]["data"])  # type: ignore[index]


def test_an_insert_round_trips_to_the_same_event(recorded_history: list[RecordedEvent]) -> None:
    event = insert_events(recorded_history)
    decoded = [event_of(decode_change(_data(record))) for record in event["Records"]]
    assert decoded == recorded_history
    assert [record["kinesis"]["partitionKey"] for record in event["Records"]] == [
        item.stream_id for item in recorded_history
    ]


def test_the_document_has_the_destination_fields(recorded_history: list[RecordedEvent]) -> None:
    document = json.loads(_data(change_record(recorded_history[0], KinesisShard())))
    assert set(document) == {
        "awsRegion", "eventID", "eventName", "userIdentity", "recordFormat", "tableName",
        "dynamodb", "eventSource",
    }  # fmt: skip
    assert document["recordFormat"] == "application/json"
    assert document["eventSource"] == "aws:dynamodb"
    assert set(document["dynamodb"]) == {
        "ApproximateCreationDateTime", "Keys", "NewImage", "SizeBytes",
    }  # fmt: skip
    assert document["dynamodb"]["Keys"] == {"pk": {"S": "payment#pay-1"}, "sk": {"N": "1"}}


@pytest.mark.parametrize("name", ["MODIFY", "REMOVE"])
def test_only_inserts_are_events(recorded_history: list[RecordedEvent], name: str) -> None:
    record = change_record(recorded_history[0], KinesisShard(), event_name=name)
    change = decode_change(_data(record))
    assert change.event_name == name
    assert event_of(change) is None
    assert (change.new_image is None) == (name == "REMOVE")


def _document(event: RecordedEvent) -> dict[str, object]:
    return change_document(
        event_to_item(event),
        event_name="INSERT",
        table_name="t",
        region="us-east-1",
        created_at_ms=1,
        change_id="c",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"eventName": "INSERT"}',
        b'{"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": "p"}}}}',
        b'{"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": "p"}, "sk": {"N": "x"}}}}',
        b'{"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": "p"}, "sk": {"N": "1"}}}}',
        b'{"eventName": "UPSERT", "dynamodb": {"Keys": {"pk": {"S": "p"}, "sk": {"N": "1"}}}}',
    ],
)
def test_malformed_records_are_undecodable(data: bytes) -> None:
    with pytest.raises(UndecodableEventError):
        decode_change(data)


def test_an_image_that_is_not_an_event_or_not_its_key_is_undecodable(
    recorded_history: list[RecordedEvent],
) -> None:
    document = _document(recorded_history[0])
    document["dynamodb"]["NewImage"] = {"pk": {"S": "payment#pay-1"}}  # type: ignore[index]
    with pytest.raises(UndecodableEventError, match="not an event item"):
        event_of(decode_change(encode_change(document)))
    document = _document(recorded_history[0])
    document["dynamodb"]["Keys"]["sk"] = {"N": "2"}  # type: ignore[index]
    with pytest.raises(UndecodableEventError, match="does not match"):
        event_of(decode_change(encode_change(document)))


def test_a_window_event_carries_the_window_and_state(
    recorded_history: list[RecordedEvent],
) -> None:
    records = insert_events(recorded_history)["Records"]
    event = window_event(
        records,
        start="2026-11-21T12:00:00Z",
        end="2026-11-21T12:01:00Z",
        state={"n": 1},
        final=True,
    )
    assert event["window"] == {"start": "2026-11-21T12:00:00Z", "end": "2026-11-21T12:01:00Z"}
    assert event["state"] == {"n": 1}
    assert event["isFinalInvokeForWindow"] is True
    assert len(event["Records"]) == len(recorded_history)
