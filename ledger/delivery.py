"""The stream-consumer delivery rule (DESIGN §6), shared by every consumer of the events' change
feed (DynamoDB Streams, Kinesis).

Lambda delivers a shard's records in order and, when a batch reports failed records,
checkpoints at the lowest failed sequence number and redelivers from there. Events of one stream
must be applied in version order, so:
- a record that fails is reported, and so is every later record of the same stream id (a
  Kinesis record's partition key is its item's ``pk``, the stream id);
- a record whose stream cannot be read (its key is unreadable) holds every record after it;
- records of other streams proceed.
Reporting later records costs only a redelivery: consumers skip what they already applied.

Every Lambda consumer builds its partial batch response, the same way, from the reasons decided
here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

# A reason is logged (never returned to Lambda, which only takes sequence numbers): bounded so a
# driver error quoting a whole statement or payload cannot flood the logs.
REASON_CHARS_MAX = 500


class DeliveredRecord(Protocol):
    """What the rule needs of a record: its position in the shard and its stream."""

    @property
    def sequence_number(self) -> str: ...

    @property
    def stream_id(self) -> str | None:
        """None when the record's stream cannot be read."""
        ...


Record = TypeVar("Record", bound=DeliveredRecord)


class RecordFailedError(Exception):
    """A record reported failed to Lambda (it will be redelivered), with the reason."""


def failed_records(
    records: Iterable[Record], own_failure: Callable[[Record], str | None]
) -> dict[str, str]:
    """Sequence number -> reason for every record of a batch (in shard order) to report failed.

    ``own_failure`` says why a record fails by itself (None: it does not); it is called only for
    records no earlier failure holds, in order, so a consumer may decode records inside it.
    """
    failures: dict[str, str] = {}
    held: dict[str, str] = {}  # stream id -> why its later records fail
    held_all: str | None = None
    for record in records:
        stream_id = record.stream_id
        reason = held_all
        if reason is None and stream_id is not None:
            reason = held.get(stream_id)
        if reason is None:
            reason = own_failure(record)
            if reason is None:
                continue
            if stream_id is None:
                held_all = f"an earlier record with an unreadable key failed: {reason}"
            else:
                held[stream_id] = f"an earlier record of the stream failed: {reason}"
        failures[record.sequence_number] = reason
    return failures


def describe(exc: BaseException) -> str:
    """An exception as a failure reason: its type and message, bounded."""
    return f"{type(exc).__name__}: {exc}"[:REASON_CHARS_MAX]
