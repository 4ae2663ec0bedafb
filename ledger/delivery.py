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

The partial batch response is built the same way by every consumer, with Powertools' batch
utilities, from the reasons decided here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

# A reason is logged (never returned to Lambda, which only takes sequence numbers): bounded so a
# driver error quoting a whole statement or payload cannot flood the logs.
REASON_CHARS_MAX = 500

# Where each event source puts a record's sequence number.
_SEQUENCE_NUMBER_KEYS = {
    EventType.DynamoDBStreams: ("dynamodb", "SequenceNumber"),
    EventType.KinesisDataStreams: ("kinesis", "sequenceNumber"),
}


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


def partial_batch_response(
    event: Mapping[str, Any],
    event_type: EventType,
    failures: Mapping[str, str],
    context: LambdaContext | None = None,
) -> PartialItemFailureResponse:
    """The response naming the records of ``failures`` (sequence number -> reason).

    The batch was applied as a whole before, never record by record, so the record handler only
    reports what was decided for each record; ``BatchProcessor`` builds ``batchItemFailures``.
    """
    records = event["Records"]
    # A tumbling window's final invocation may carry no record, which BatchProcessor refuses.
    if not records:
        assert not failures, failures
        return {"batchItemFailures": []}
    outer, inner = _SEQUENCE_NUMBER_KEYS[event_type]

    def report(record: Any) -> None:
        reason = failures.get(record.raw_event[outer][inner])
        if reason is not None:
            raise RecordFailedError(reason)

    # A batch whose every record failed is reported like any partial failure (Lambda checkpoints
    # at the lowest failed sequence number either way) rather than raised: it is a data
    # condition, retried then dead-lettered, not a crash of the function.
    processor = BatchProcessor(event_type=event_type, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=dict(event), record_handler=report, processor=processor, context=context
    )
    assert len(response["batchItemFailures"]) == len(failures), "a failure names no record"
    return response
