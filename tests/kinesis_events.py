"""Kinesis Lambda events carrying the events table's change records, shaped as Lambda delivers
them from the table's Kinesis Data Streams destination (DESIGN §7).

Each record's data is the destination's JSON document (``ledger.changes.change_document``) of the
item ``ledger.dynamodb.event_to_item`` writes, base64-encoded, and every Lambda event is validated
with Powertools' ``KinesisDataStreamModel`` before a test sees it. ``window_event`` adds what a
``TumblingWindowInSeconds`` event source mapping adds (window, state, final-invoke flags).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from itertools import count
from typing import Any

from aws_lambda_powertools.utilities.parser.models import KinesisDataStreamModel

from ledger.changes import change_document, encode_change
from ledger.domain.timestamps import parse_timestamp
from ledger.dynamodb import event_to_item
from ledger.envelope import RecordedEvent

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
TABLE_NAME = "payledger-events"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/payledger-events"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/payledger-archive"
FIRST_SEQUENCE_NUMBER = 49_657_000_000_000_000_000_000_000_000_000_000_000_000_000_001


class KinesisShard:
    """Hands out increasing sequence numbers for one shard, as Kinesis does."""

    def __init__(self, shard_id: str = "shardId-000000000000") -> None:
        self.shard_id = shard_id
        self._numbers = count(FIRST_SEQUENCE_NUMBER, 1_000)

    def next_sequence_number(self) -> str:
        return str(next(self._numbers))


def kinesis_record(
    data: bytes,
    partition_key: str,
    shard: KinesisShard,
    *,
    sequence_number: str | None = None,
    arrived_at_s: float = 1_795_262_400.0,
) -> dict[str, Any]:
    """One record of a Kinesis Lambda event; ``sequence_number`` reuses one (a redelivery)."""
    sequence = sequence_number or shard.next_sequence_number()
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence,
            "data": base64.b64encode(data).decode("ascii"),
            "approximateArrivalTimestamp": arrived_at_s,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard.shard_id}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": ROLE_ARN,
        "awsRegion": REGION,
        "eventSourceARN": STREAM_ARN,
    }


def change_record(
    event: RecordedEvent, shard: KinesisShard, *, event_name: str = "INSERT"
) -> dict[str, Any]:
    """The Kinesis record of the events table's change to ``event``'s item."""
    created_at = parse_timestamp(event.recorded_at)
    document = change_document(
        event_to_item(event),
        event_name=event_name,
        table_name=TABLE_NAME,
        region=REGION,
        created_at_ms=int(created_at.timestamp() * 1000),
        change_id=uuid.uuid4().hex,
    )
    return kinesis_record(
        encode_change(document),
        event.stream_id,
        shard,
        arrived_at_s=created_at.timestamp() + 0.2,
    )


def kinesis_event(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The Lambda event for ``records``, validated with Powertools' ``KinesisDataStreamModel``."""
    event = {"Records": [dict(record) for record in records]}
    KinesisDataStreamModel.model_validate(event)
    return event


def insert_events(
    events: Sequence[RecordedEvent], shard: KinesisShard | None = None
) -> dict[str, Any]:
    """The Lambda event delivering the INSERT changes of ``events``, in order."""
    shard = shard or KinesisShard()
    return kinesis_event([change_record(event, shard) for event in events])


def window_event(
    records: Sequence[Mapping[str, Any]],
    *,
    start: str,
    end: str,
    state: Mapping[str, Any] | None = None,
    final: bool = False,
    terminated_early: bool = False,
    shard_id: str = "shardId-000000000000",
) -> dict[str, Any]:
    """A tumbling-window invocation: ``records`` plus the window, the state the previous
    invocation of the window returned, and whether this is the window's final invoke."""
    event = kinesis_event(records)
    event.update(
        {
            "window": {"start": start, "end": end},
            "state": dict(state or {}),
            "shardId": shard_id,
            "eventSourceARN": STREAM_ARN,
            "isFinalInvokeForWindow": final,
            "isWindowTerminatedEarly": terminated_early,
        }
    )
    return event
