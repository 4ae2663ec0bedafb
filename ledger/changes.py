"""The events table's change records on its Kinesis Data Streams destination (DESIGN §7).

DynamoDB writes one JSON document per item change to the stream, partition key = the item's
partition key (``pk``)::

    {"awsRegion": "us-east-1", "eventID": "…", "eventName": "INSERT", "userIdentity": null,
     "recordFormat": "application/json", "tableName": "…",
     "dynamodb": {"ApproximateCreationDateTime": 1795262400123, "Keys": {…},
                  "NewImage": {…}, "SizeBytes": 812},
     "eventSource": "aws:dynamodb"}

``ApproximateCreationDateTime`` is in epoch milliseconds (the destination's default precision).
The destination may deliver a change more than once and out of order, so consumers dedupe by
``event_id`` and order by (stream id, version), never by arrival.

``change_document`` writes the format (the local runtime's forwarder, tests); ``decode_change``
reads it (the archive and analytics consumers). Only INSERT changes are events: ``event_of``
returns None for anything else, which every consumer ignores (DESIGN §6).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.domain.errors import UndecodableEventError
from ledger.dynamodb import Item, item_to_event
from ledger.envelope import RecordedEvent

RECORD_FORMAT = "application/json"
EVENT_SOURCE = "aws:dynamodb"
EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One decoded change record; ``new_image`` is None for a REMOVE."""

    event_name: str
    table_name: str
    keys: Item
    new_image: Item | None
    created_at_ms: int


def change_document(
    item: Item,
    *,
    event_name: str,
    table_name: str,
    region: str,
    created_at_ms: int,
    change_id: str,
    user_identity: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The destination record of one change of ``item`` (its keys are ``pk`` and ``sk``)."""
    assert event_name in EVENT_NAMES, event_name
    keys = {"pk": item["pk"], "sk": item["sk"]}
    change: dict[str, Any] = {"ApproximateCreationDateTime": created_at_ms, "Keys": keys}
    if event_name != "REMOVE":
        change["NewImage"] = item
    change["SizeBytes"] = len(json.dumps(item, separators=(",", ":")).encode("utf-8"))
    return {
        "awsRegion": region,
        "eventID": change_id,
        "eventName": event_name,
        "userIdentity": None if user_identity is None else dict(user_identity),
        "recordFormat": RECORD_FORMAT,
        "tableName": table_name,
        "dynamodb": change,
        "eventSource": EVENT_SOURCE,
    }


def encode_change(document: Mapping[str, Any]) -> bytes:
    """The bytes put on the Kinesis stream for ``document`` (UTF-8 JSON)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_change(data: bytes) -> ChangeRecord:
    """Read one record's data (already base64-decoded); ``UndecodableEventError`` saying why if
    it is not a change record of a table shaped like the events table."""
    try:
        document = json.loads(data)
        change = document["dynamodb"]
        event_name = document["eventName"]
        keys = change["Keys"]
        record = ChangeRecord(
            event_name=str(event_name),
            table_name=str(document.get("tableName", "")),
            keys={"pk": {"S": str(keys["pk"]["S"])}, "sk": {"N": str(int(keys["sk"]["N"]))}},
            new_image=change.get("NewImage"),
            created_at_ms=int(change.get("ApproximateCreationDateTime", 0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise UndecodableEventError(
            f"not a DynamoDB change record: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    if record.event_name not in EVENT_NAMES:
        raise UndecodableEventError(f"unknown change type {record.event_name[:32]!r}")
    if record.event_name == "INSERT" and not isinstance(record.new_image, dict):
        raise UndecodableEventError("an INSERT change record without a NewImage")
    return record


def event_of(record: ChangeRecord) -> RecordedEvent | None:
    """The event an INSERT record carries (None for MODIFY and REMOVE, which are not events).

    Raises ``UndecodableEventError`` when the image is not an event item or does not match the
    record's keys. The payload is not checked here: that is ``ledger.decoding.decode_event``.
    """
    if record.event_name != "INSERT":
        return None
    assert record.new_image is not None
    try:
        event = item_to_event(record.new_image)
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        raise UndecodableEventError(
            f"NewImage is not an event item: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    if (event.stream_id, str(event.version)) != (record.keys["pk"]["S"], record.keys["sk"]["N"]):
        raise UndecodableEventError("NewImage does not match the record's Keys")
    return event
