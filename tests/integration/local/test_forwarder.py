"""The events table's Kinesis destination as the local runtime plays it: every change of the
table on the Kinesis stream, in the destination's exact record format (DESIGN §7)."""

from __future__ import annotations

import json
from typing import Any

from devstack.checkpoints import CheckpointStore
from devstack.forwarder import TableForwarder, destination_consumer
from devstack.mappings import TableDestination
from devstack.streams import DynamoDBStreamSource, KinesisStreamSource
from ledger.changes import decode_change, event_of
from ledger.domain.payment import AssessRisk, AuthorizePayment, InitiatePayment
from ledger.dynamodb import DynamoDBEventStore, event_to_item
from ledger.envelope import Actor
from ledger.service import CommandContext, PaymentService
from tests.integration.local.conftest import REGION, Aws

DOCUMENT_KEYS = [
    "awsRegion",
    "eventID",
    "eventName",
    "userIdentity",
    "recordFormat",
    "tableName",
    "dynamodb",
    "eventSource",
]
CHECKOUT = Actor("api", "checkout")


def kinesis_records(aws: Aws, stream_arn: str) -> list[dict[str, Any]]:
    source = KinesisStreamSource(aws.kinesis, stream_arn)
    records: list[dict[str, Any]] = []
    for shard_id in source.shard_ids():
        iterator = source.iterator(shard_id, None, "TRIM_HORIZON")
        answer = aws.kinesis.get_records(ShardIterator=iterator, Limit=1000, StreamARN=stream_arn)
        records.extend(answer["Records"])
    return records


def forwarder(aws: Aws, table: str, table_stream: str, kinesis_stream: str, store: CheckpointStore):  # type: ignore[no-untyped-def]
    destination = TableDestination(table, table_stream, kinesis_stream)
    source = DynamoDBStreamSource(aws.streams, table_stream)
    (shard_id,) = source.shard_ids()
    return TableForwarder(destination, source, shard_id, aws.kinesis, store)


def test_every_change_reaches_kinesis_in_the_destination_format(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, table_stream = aws.events_table()
    kinesis_stream = aws.kinesis_stream(shards=2)
    service = PaymentService(DynamoDBEventStore(aws.dynamodb, table))
    for index in range(3):
        payment = f"pay-{index}"
        for step, command in enumerate(
            [
                InitiatePayment(payment, "10.00", "EUR", "m-1", "c-1"),
                AssessRisk(payment, "approve", "0.1", "fine"),
                AuthorizePayment(payment),
            ]
        ):
            service.execute(command, CommandContext(f"k-{index}-{step}", CHECKOUT))
    events = {
        (event.stream_id, event.version): event
        for index in range(3)
        for event in service.load(f"pay-{index}")
    }
    # A deletion (what a retention TTL would do): a REMOVE change, keys only.
    aws.dynamodb.delete_item(TableName=table, Key={"pk": {"S": "payment#pay-2"}, "sk": {"N": "3"}})

    step = forwarder(aws, table, table_stream, kinesis_stream, checkpoints)
    while step.step():
        pass

    records = kinesis_records(aws, kinesis_stream)
    assert len(records) == 10
    seen = set()
    for record in records:
        document = json.loads(record["Data"])
        assert list(document) == DOCUMENT_KEYS
        assert document["recordFormat"] == "application/json"
        assert document["eventSource"] == "aws:dynamodb"
        assert (document["tableName"], document["awsRegion"]) == (table, REGION)
        assert document["userIdentity"] is None
        change = document["dynamodb"]
        assert record["PartitionKey"] == change["Keys"]["pk"]["S"]
        created_ms = change["ApproximateCreationDateTime"]
        assert abs(created_ms / 1000 - record["ApproximateArrivalTimestamp"].timestamp()) < 60
        decoded = decode_change(record["Data"])
        event = event_of(decoded)
        key = (decoded.keys["pk"]["S"], int(decoded.keys["sk"]["N"]))
        if decoded.event_name == "REMOVE":
            assert key == ("payment#pay-2", 3)
            assert "NewImage" not in change
            continue
        assert event == events[key]
        assert change["NewImage"] == event_to_item(events[key])
        assert change["SizeBytes"] == len(json.dumps(change["NewImage"], separators=(",", ":")))
        seen.add(key)
    assert seen == set(events)
    assert checkpoints.load(destination_consumer(step.destination), step.shard_id).checkpoint


def test_a_restarted_forwarder_puts_only_what_it_had_not_confirmed(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, table_stream = aws.events_table()
    kinesis_stream = aws.kinesis_stream()
    aws.put_items(table, 3)
    first = forwarder(aws, table, table_stream, kinesis_stream, checkpoints)
    assert first.step()
    aws.put_items(table, 2, start=3)

    restarted = forwarder(aws, table, table_stream, kinesis_stream, checkpoints)
    while restarted.step():
        pass

    keys = [
        json.loads(record["Data"])["dynamodb"]["Keys"]
        for record in kinesis_records(aws, kinesis_stream)
    ]
    assert [int(key["sk"]["N"]) for key in keys] == [1, 2, 3, 4, 5]
