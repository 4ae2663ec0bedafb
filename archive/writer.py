"""A Kinesis batch of the events table's change records → one Parquet object per recorded day.

Per batch (one shard, records in sequence order):
- Only INSERT records are events; MODIFY and REMOVE records are ignored and counted.
- Every record is decoded with the shared codec (``decode_change``, ``event_of``) and the one gate
  (``decode_event``). A record that fails is poison: it is reported failed, and so is every later
  record of its partition key (its payment), so Lambda retries it, bisects, then dead-letters it;
  it is never dropped silently. Other payments' events are archived.
- Events are deduplicated by ``event_id`` (the destination may deliver a change twice) and
  ordered by (stream id, version), never by arrival. The same ``event_id`` with different content
  is poison too: the archive never picks one.
- The events are written per day of ``recorded_at`` (UTC) to
  ``events/year=/month=/day=/<shard>-<first sequence>-<last sequence>.parquet``: a retried batch
  writes the same keys with the same content. A split or partially failed batch writes other
  keys, so an event may sit in two objects until compaction drops the copy; every report dedupes
  by ``event_id`` meanwhile.
- A storage failure propagates: the whole invocation fails and Lambda retries the batch.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import groupby
from typing import Any

from archive.layout import batch_key
from archive.parquet import encode
from archive.schema import events_to_table
from archive.storage import ArchiveStorage
from ledger.changes import decode_change, event_of
from ledger.decoding import decode_event
from ledger.domain.errors import LedgerError, UndecodableEventError
from ledger.domain.events import Payload
from ledger.envelope import PAYMENT_STREAM_PREFIX, RecordedEvent

REASON_CHARS_MAX = 500
_SHARD_UNKNOWN = "shard-unknown"


@dataclass(slots=True)
class DecodedBatch:
    """What one Lambda batch holds for the archive."""

    shard_id: str
    first_sequence: str
    last_sequence: str
    events: list[RecordedEvent] = field(default_factory=list)  # deduplicated, (stream, version)
    payloads: list[Payload] = field(default_factory=list)  # decoded payload of each event
    failures: dict[str, str] = field(default_factory=dict)  # sequence number -> reason
    received: int = 0
    ignored: int = 0  # MODIFY / REMOVE records
    duplicates: int = 0  # events delivered twice within the batch
    poison: int = 0  # records that failed themselves (not only held behind one)


@dataclass(frozen=True, slots=True)
class WrittenObject:
    key: str
    day: date
    rows: int
    size_bytes: int


def decode_batch(records: Sequence[Mapping[str, Any]]) -> DecodedBatch:
    """Decode a Lambda Kinesis event's ``Records`` (non-empty, one shard, in sequence order)."""
    assert records, "Lambda never invokes with an empty batch"
    batch = DecodedBatch(
        shard_id=shard_id_of(records[0]),
        first_sequence=str(records[0]["kinesis"]["sequenceNumber"]),
        last_sequence=str(records[-1]["kinesis"]["sequenceNumber"]),
        received=len(records),
    )
    held: dict[str, str] = {}  # partition key -> why its later records fail
    kept: dict[str, tuple[RecordedEvent, Payload]] = {}
    for record in records:
        kinesis = record["kinesis"]
        sequence, partition_key = str(kinesis["sequenceNumber"]), str(kinesis["partitionKey"])
        reason = held.get(partition_key)
        if reason is None:
            try:
                decoded = _decode(kinesis["data"])
            except (LedgerError, ValueError) as exc:  # binascii.Error is a ValueError
                reason = f"undecodable: {type(exc).__name__}: {exc}"[:REASON_CHARS_MAX]
            else:
                if decoded is None:
                    batch.ignored += 1
                    continue
                reason = _keep(kept, decoded, batch)
                if reason is None:
                    continue
            batch.poison += 1
            held[partition_key] = f"an earlier record of the stream failed: {reason}"
        batch.failures[sequence] = reason
    ordered = sorted(kept.values(), key=lambda pair: (pair[0].stream_id, pair[0].version))
    batch.events = [event for event, _ in ordered]
    batch.payloads = [payload for _, payload in ordered]
    return batch


def _decode(data: str) -> tuple[RecordedEvent, Payload] | None:
    """The event and payload a record carries; None for a change that is not an event."""
    event = event_of(decode_change(base64.b64decode(data, validate=True)))
    if event is None:
        return None
    payload = decode_event(event)
    if not event.stream_id.startswith(PAYMENT_STREAM_PREFIX):
        # decode_event accepts a later version on any stream; the archive's payment_id cannot
        # be filled for one, and no such stream can start (version 1 is PaymentInitiated).
        raise UndecodableEventError(f"{event.stream_id[:64]!r} is not a payment stream")
    return event, payload


def _keep(
    kept: dict[str, tuple[RecordedEvent, Payload]],
    decoded: tuple[RecordedEvent, Payload],
    batch: DecodedBatch,
) -> str | None:
    """Keep a decoded event unless already kept; the reason it is poison, if it is."""
    event = decoded[0]
    previous = kept.get(event.event_id)
    if previous is None:
        kept[event.event_id] = decoded
        return None
    if previous[0] == event:
        batch.duplicates += 1
        return None
    return f"event {event.event_id} was delivered twice with different content"


def shard_id_of(record: Mapping[str, Any]) -> str:
    """The shard a Lambda Kinesis record came from (its ``eventID`` is ``shardId-…:sequence``)."""
    shard_id = str(record.get("eventID", "")).rpartition(":")[0]
    if not shard_id or not all(char.isalnum() or char in "-_" for char in shard_id):
        return _SHARD_UNKNOWN
    return shard_id


def write_batch(storage: ArchiveStorage, batch: DecodedBatch) -> list[WrittenObject]:
    """Write the batch's events, one object per recorded day; storage errors propagate."""
    written: list[WrittenObject] = []
    pairs = sorted(zip(batch.events, batch.payloads, strict=True), key=_day_then_order)
    for day_text, group in groupby(pairs, key=lambda pair: pair[0].recorded_at[:10]):
        events, payloads = zip(*group, strict=True)
        day = date.fromisoformat(day_text)
        data = encode(events_to_table(events, payloads))
        key = batch_key(day, batch.shard_id, batch.first_sequence, batch.last_sequence)
        storage.put_bytes(key, data)
        written.append(WrittenObject(key, day, len(events), len(data)))
    return written


def _day_then_order(pair: tuple[RecordedEvent, Payload]) -> tuple[str, str, int]:
    event = pair[0]
    return event.recorded_at[:10], event.stream_id, event.version
