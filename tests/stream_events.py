"""DynamoDB Streams events for the events table, shaped exactly as Lambda delivers them.

Each record is built from a ``RecordedEvent`` through the item format every consumer shares
(``ledger.dynamodb.event_to_item``), and every event is validated with Powertools' own
``DynamoDBStreamModel`` before a test sees it, so handlers are tested against the real format.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from itertools import count
from typing import Any

from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel

from ledger.domain.timestamps import parse_timestamp
from ledger.dynamodb import Item, event_to_item
from ledger.envelope import RecordedEvent

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
TABLE_NAME = "payledger-events"
STREAM_ARN = (
    f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE_NAME}/stream/2026-11-21T12:00:00.000"
)
# What a shard's sequence numbers look like: decimal strings that only grow.
FIRST_SEQUENCE_NUMBER = 4_421_584_500_000_000_017_450_439_091


class Shard:
    """Hands out increasing sequence numbers, as one stream shard does."""

    def __init__(self, first: int = FIRST_SEQUENCE_NUMBER) -> None:
        self._numbers = count(first, 100)

    def next_sequence_number(self) -> str:
        return str(next(self._numbers))


def stream_record(
    event_name: str,
    keys: Item,
    sequence_number: str,
    *,
    new_image: Item | None = None,
    created_at_s: int = 1_795_262_400,
    by_service: bool = False,
) -> dict[str, Any]:
    """One record of a DynamoDB Streams Lambda event (stream view type NEW_IMAGE).

    ``by_service`` marks a change made by DynamoDB itself (a TTL deletion).
    """
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": created_at_s,
        "Keys": keys,
        "SequenceNumber": sequence_number,
        "SizeBytes": len(json.dumps({"Keys": keys, "NewImage": new_image or {}})),
        "StreamViewType": "NEW_IMAGE",
    }
    if new_image is not None:
        change["NewImage"] = new_image
    record: dict[str, Any] = {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": change,
        "eventSourceARN": STREAM_ARN,
    }
    if by_service:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def insert_record(
    event: RecordedEvent, shard: Shard, *, new_image: Item | None = None
) -> dict[str, Any]:
    """The INSERT record of ``event``; ``new_image`` replaces its item (to build poison)."""
    item = event_to_item(event)
    return stream_record(
        "INSERT",
        _keys(item),
        shard.next_sequence_number(),
        new_image=item if new_image is None else new_image,
        created_at_s=int(parse_timestamp(event.recorded_at).timestamp()),
    )


def remove_record(event: RecordedEvent, shard: Shard) -> dict[str, Any]:
    """A TTL deletion of ``event``'s item: keys only (NEW_IMAGE has no image of a removal)."""
    return stream_record(
        "REMOVE", _keys(event_to_item(event)), shard.next_sequence_number(), by_service=True
    )


def modify_record(event: RecordedEvent, shard: Shard) -> dict[str, Any]:
    """An update of ``event``'s item (the events table never does this; consumers ignore it)."""
    item = event_to_item(event)
    item["payload"] = {"S": "{}"}
    return stream_record("MODIFY", _keys(item), shard.next_sequence_number(), new_image=item)


def stream_event(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The Lambda event for ``records``, validated with Powertools' ``DynamoDBStreamModel``."""
    event = {"Records": [dict(record) for record in records]}
    DynamoDBStreamModel.model_validate(event)
    return event


def insert_event(events: Sequence[RecordedEvent], shard: Shard | None = None) -> dict[str, Any]:
    """The Lambda event delivering ``events`` as INSERT records, in order."""
    shard = shard or Shard()
    return stream_event([insert_record(event, shard) for event in events])


def sequence_number(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def _keys(item: Item) -> Item:
    return {"pk": item["pk"], "sk": item["sk"]}
