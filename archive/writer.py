"""A Kinesis batch of the events table's change records → one Parquet object per recorded day.

Per batch (one shard, records in sequence order):
- Only INSERT records are events; MODIFY and REMOVE records are ignored and counted.
- The archive holds exactly the events the table holds: it refuses only a record it cannot
  store faithfully (``archive.records``: not a well-formed event item, or not one row of the
  archive's schema), never an event because its payload fails the domain model. A refused
  record is poison: it is reported failed, and so is every later record of its partition key
  (its payment, ``ledger.delivery``), so Lambda retries it, bisects, then dead-letters it; it is
  never dropped silently. Other payments' events are archived.
- A batch is decoded column-wise in Arrow (``archive.columnar``) when every record is a
  well-formed change record; otherwise record by record (``archive.records``), with exactly the
  same result for every record the column-wise decoder would have accepted.
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

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from archive.columnar import decode_rows
from archive.layout import batch_key
from archive.parquet import encode
from archive.records import NestedTooDeeplyError, decode_record
from archive.schema import ARCHIVE_SCHEMA, PayloadFields, events_from_batch, events_to_table
from archive.storage import ArchiveStorage
from ledger.delivery import describe, failed_records
from ledger.domain.errors import LedgerError
from ledger.envelope import RecordedEvent

_SHARD_UNKNOWN = "shard-unknown"

Decoded = tuple[RecordedEvent, PayloadFields]


@dataclass(slots=True)
class DecodedBatch:
    """What one Lambda batch holds for the archive."""

    shard_id: str
    first_sequence: str
    last_sequence: str
    # One row per archived event (archive schema), ordered by (recorded day, stream, version).
    rows: pa.Table
    failures: dict[str, str] = field(default_factory=dict)  # sequence number -> reason
    received: int = 0
    ignored: int = 0  # MODIFY / REMOVE records
    duplicates: int = 0  # events delivered twice within the batch
    poison: int = 0  # records that failed themselves (not only held behind one)
    column_wise: bool = True  # False: decoded record by record, a record being malformed

    @property
    def events(self) -> list[RecordedEvent]:
        """The archived events, in row order."""
        return list(events_from_batch(self.rows))


@dataclass(frozen=True, slots=True)
class _KinesisRecord:
    sequence_number: str
    stream_id: str  # the partition key: the item's pk
    raw: Mapping[str, Any]

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> _KinesisRecord:
        kinesis = raw["kinesis"]
        return cls(str(kinesis["sequenceNumber"]), str(kinesis["partitionKey"]), raw)


@dataclass(frozen=True, slots=True)
class WrittenObject:
    key: str
    day: date
    rows: int
    size_bytes: int


def decode_batch(records: Sequence[Mapping[str, Any]]) -> DecodedBatch:
    """Decode a Lambda Kinesis event's ``Records`` (non-empty, one shard, in sequence order):
    column-wise, or record by record (``decode_records``) if a record is malformed."""
    assert records, "Lambda never invokes with an empty batch"
    decoded = decode_rows(records)
    if decoded is None:
        return decode_records(records)
    return DecodedBatch(
        shard_id=shard_id_of(records[0]),
        first_sequence=str(records[0]["kinesis"]["sequenceNumber"]),
        last_sequence=str(records[-1]["kinesis"]["sequenceNumber"]),
        rows=decoded.table,
        received=len(records),
        ignored=decoded.ignored,
        duplicates=decoded.duplicates,
    )


def decode_records(records: Sequence[Mapping[str, Any]]) -> DecodedBatch:
    """Decode ``Records`` record by record: the reference the column-wise decoder matches, and
    the path that reports poison."""
    assert records, "Lambda never invokes with an empty batch"
    batch = DecodedBatch(
        shard_id=shard_id_of(records[0]),
        first_sequence=str(records[0]["kinesis"]["sequenceNumber"]),
        last_sequence=str(records[-1]["kinesis"]["sequenceNumber"]),
        rows=ARCHIVE_SCHEMA.empty_table(),
        received=len(records),
        column_wise=False,
    )
    kept: dict[str, Decoded] = {}

    def own_failure(record: _KinesisRecord) -> str | None:
        try:
            decoded = _decode(record.raw)
        except (LedgerError, ValueError) as exc:  # binascii.Error is a ValueError
            reason: str | None = f"undecodable: {describe(exc)}"
        else:
            if decoded is None:
                batch.ignored += 1
                return None
            reason = _keep(kept, decoded, batch)
        batch.poison += reason is not None
        return reason

    batch.failures = failed_records(map(_KinesisRecord.of, records), own_failure)
    ordered = sorted(kept.values(), key=lambda pair: _day_then_order(pair[0]))
    batch.rows = events_to_table([event for event, _ in ordered], [fields for _, fields in ordered])
    return batch


def _decode(record: Mapping[str, Any]) -> Decoded | None:
    """The event and payload fields a record carries; None for a change that is not an event."""
    try:
        return decode_record(record["kinesis"]["data"])
    except NestedTooDeeplyError:
        # Python's parser stops where Arrow's reads on: decode this record alone column-wise.
        alone = decode_rows([record])
        if alone is None:
            raise
    if alone.ignored:
        return None
    (event,) = events_from_batch(alone.table)
    row = alone.table.select(["merchant_id", "amount_minor", "currency"]).to_pylist()[0]
    return event, PayloadFields(**row)


def _keep(kept: dict[str, Decoded], decoded: Decoded, batch: DecodedBatch) -> str | None:
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
    for day, rows in days_of(batch.rows):
        data = encode(rows)
        key = batch_key(day, batch.shard_id, batch.first_sequence, batch.last_sequence)
        storage.put_bytes(key, data)
        written.append(WrittenObject(key, day, rows.num_rows, len(data)))
    return written


def days_of(rows: pa.Table) -> Iterator[tuple[date, pa.Table]]:
    """Each recorded day of ``rows`` (ordered by day) and its rows."""
    if not rows.num_rows:
        return
    days = pc.run_end_encode(rows.column("recorded_at").combine_chunks().cast(pa.date32()))
    start = 0
    for day, end in zip(days.values.to_pylist(), days.run_ends.to_pylist(), strict=True):
        yield day, rows.slice(start, end - start)
        start = end


def _day_then_order(event: RecordedEvent) -> tuple[str, str, int]:
    return event.recorded_at[:10], event.stream_id, event.version
