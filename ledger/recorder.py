"""The eventsourcing library's ``AggregateRecorder`` on DynamoDB, with conditional writes.

Same key schema as the events table: ``pk`` (S) = originator id as text, ``sk`` (N) = originator
version, then ``topic`` (S) and ``state`` (B). Inserts go through the same conditional write as
``DynamoDBEventStore`` (one PutItem for one event, one TransactWriteItems for several, each item
conditioned on ``attribute_not_exists(pk)``), so a version is never overwritten: a conflict raises
the library's ``IntegrityError`` and nothing of the call is written.

There is deliberately no ``ApplicationRecorder``: a global notification log would serialise every
write through one item; the change feed is DynamoDB Streams / Kinesis (DESIGN §3).

Errors, in order of precedence:
- ``IntegrityError``: the call repeats one (originator id, version), or one of them is stored, or
  another transaction is writing it.
- ``NotSupportedError``: more events than DynamoDB writes atomically (100).
- other DynamoDB failures propagate as botocore ``ClientError`` (see ``ledger.dynamodb``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    IntegrityError,
    NotSupportedError,
    StoredEvent,
)

from ledger.dynamodb import TRANSACT_WRITE_ITEMS_MAX, Item, put_new_items, query_items

# A Query page holds up to 1 MB: a bound far past any aggregate's history.
SELECT_PAGES_MAX = 10_000


class DynamoDBAggregateRecorder(AggregateRecorder):
    """``client`` is a boto3 low-level DynamoDB client, created once per process by the caller."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table_name = table_name

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        if not stored_events:
            return
        keys = {(str(event.originator_id), event.originator_version) for event in stored_events}
        if len(keys) < len(stored_events):
            raise IntegrityError(f"stored events are not unique: {stored_events}")
        if len(stored_events) > TRANSACT_WRITE_ITEMS_MAX:
            raise NotSupportedError(
                f"DynamoDB writes at most {TRANSACT_WRITE_ITEMS_MAX} items atomically, "
                f"not {len(stored_events)}"
            )
        put_new_items(
            self._client,
            self._table_name,
            [_stored_event_to_item(event) for event in stored_events],
            conflict_error=lambda: IntegrityError(
                f"stored event already recorded (or being recorded): {sorted(keys)}"
            ),
        )

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        if limit == 0 or (gt is not None and lte is not None and gt >= lte):
            return []
        condition = "pk = :pk"
        values: Item = {":pk": {"S": str(originator_id)}}
        if gt is not None and lte is not None:
            # A key condition takes one comparison on the sort key: versions are integers.
            condition += " AND sk BETWEEN :low AND :high"
            values[":low"] = {"N": str(gt + 1)}
            values[":high"] = {"N": str(lte)}
        elif gt is not None:
            condition += " AND sk > :gt"
            values[":gt"] = {"N": str(gt)}
        elif lte is not None:
            condition += " AND sk <= :lte"
            values[":lte"] = {"N": str(lte)}
        arguments = {
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
            "ScanIndexForward": not desc,
        }
        # The library's contract is "all of them" when ``limit`` is None: bounded all the same.
        items = query_items(
            self._client,
            self._table_name,
            arguments,
            items_max=limit,
            pages_max=SELECT_PAGES_MAX,
        )
        return [
            StoredEvent(
                originator_id=originator_id,
                originator_version=int(item["sk"]["N"]),
                topic=item["topic"]["S"],
                state=bytes(item["state"]["B"]),
            )
            for item in items
        ]


def _stored_event_to_item(event: StoredEvent) -> Item:
    return {
        "pk": {"S": str(event.originator_id)},
        "sk": {"N": str(event.originator_version)},
        "topic": {"S": event.topic},
        "state": {"B": event.state},
    }
