"""The projection Lambda: the events table's DynamoDB Stream → every read model (DESIGN §6).

Per batch (one shard, records in stream order):
- Only INSERT records are events. REMOVE (e.g. a retention TTL run by DynamoDB) and MODIFY records
  are ignored and counted, never treated as history.
- Every NewImage is decoded (envelope and payload). An undecodable one is poison: that record
  fails, and so does every later record of its stream; the stream's earlier events and every
  other stream proceed. A record whose key cannot be read holds every record after it (its stream
  is unknown).
- Each projection receives all decodable events of the batch that are not held, in batch order,
  in ONE call: one transaction or one write per payment per batch, never one per record.
- A record fails when any projection failed its stream at or before its version, or when an
  earlier record of its stream failed; other streams succeed (``ledger.delivery``). Lambda
  checkpoints at the lowest failed sequence number and redelivers from there, and projections
  skip what they already applied, so reporting later records as failed costs only a duplicate
  read.
- Whatever a projection raises (not a per-stream failure: a lost connection, a bug) propagates:
  the invocation fails, Lambda retries the batch, bisecting it, then dead-letters it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.batch import partial_batch_response
from handlers.bootstrap import build_payment_state_projection, settings_from_environment
from handlers.database import build_postgres_projection
from handlers.observability import make_logger
from ledger.decoding import decode_event
from ledger.delivery import REASON_CHARS_MAX, describe, failed_records
from ledger.domain.errors import LedgerError
from ledger.dynamodb import item_to_event
from ledger.envelope import RecordedEvent
from projections.core import ApplyResult, Projection, StreamFailure

# What decoding a malformed NewImage can raise: missing or mistyped attributes (KeyError,
# TypeError, AttributeError, ValueError), an unknown actor kind (AssertionError in
# item_to_event), an unknown event type or invalid payload (UndecodableEventError).
_UNDECODABLE = (KeyError, TypeError, AttributeError, ValueError, AssertionError, LedgerError)

logger = make_logger()
tracer = Tracer()
metrics = Metrics()  # namespace from POWERTOOLS_METRICS_NAMESPACE

settings = settings_from_environment()
# Every read model fed by the stream: adding one is one line.
projections: list[Projection] = [
    build_payment_state_projection(settings),
    *filter(None, [build_postgres_projection(settings)]),
]


@dataclass(frozen=True, slots=True)
class _Record:
    sequence_number: str
    name: str  # INSERT, MODIFY or REMOVE
    stream_id: str | None  # None: the record's key is unreadable
    event: RecordedEvent | None  # a decodable INSERT
    poison: str | None  # why an INSERT (or its key) could not be decoded


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process(event, projections, context)


def process(
    event: dict[str, Any],
    projections: Sequence[Projection],
    context: LambdaContext | None = None,
) -> PartialItemFailureResponse:
    """Apply a DynamoDB Streams batch to ``projections``; the partial batch response."""
    records = [_read_record(raw) for raw in event["Records"]]
    assert len({record.sequence_number for record in records}) == len(records), "one shard"
    poisoned = failed_records(records, lambda record: record.poison)
    events = [
        record.event
        for record in records
        if record.event is not None and record.sequence_number not in poisoned
    ]
    failed: dict[str, StreamFailure] = {}
    for projection in projections:
        for failure in _apply(projection, events).failures.values():
            current = failed.get(failure.stream_id)
            if current is None or failure.version < current.version:
                failed[failure.stream_id] = failure
    failures = failed_records(records, lambda record: _own_failure(record, failed))
    # A stream failure that no record carries would be reported as success: never.
    reported = {record.stream_id for record in records if record.sequence_number in failures}
    assert set(failed) <= reported or None in reported, sorted(set(failed) - reported)
    _count(records, failures)
    return partial_batch_response(event, EventType.DynamoDBStreams, failures, context)


def _read_record(raw: Mapping[str, Any]) -> _Record:
    change = raw["dynamodb"]
    sequence_number = str(change["SequenceNumber"])
    name = str(raw.get("eventName"))
    try:
        stream_id = str(change["Keys"]["pk"]["S"])
        version = int(change["Keys"]["sk"]["N"])
    except (KeyError, TypeError, ValueError) as exc:
        return _Record(sequence_number, name, None, None, f"unreadable key: {describe(exc)}")
    if name != "INSERT":
        return _Record(sequence_number, name, stream_id, None, None)
    try:
        event = item_to_event(change["NewImage"])
        decode_event(event)  # the one gate: what one read model refuses, none applies
    except _UNDECODABLE as exc:
        return _Record(sequence_number, name, stream_id, None, f"undecodable: {describe(exc)}")
    if (event.stream_id, event.version) != (stream_id, version):
        return _Record(sequence_number, name, stream_id, None, "NewImage does not match Keys")
    return _Record(sequence_number, name, stream_id, event, None)


def _own_failure(record: _Record, failed: Mapping[str, StreamFailure]) -> str | None:
    if record.poison is not None:
        return record.poison
    if record.event is None:
        return None
    failure = failed.get(record.event.stream_id)
    if failure is None or record.event.version < failure.version:
        return None
    return f"version {failure.version} failed: {failure.reason}"


@tracer.capture_method(capture_response=False)
def _apply(projection: Projection, events: Sequence[RecordedEvent]) -> ApplyResult:
    tracer.put_annotation(key="projection", value=projection.name)
    result = projection.apply(events)
    for failure in result.failures.values():
        logger.warning(
            "stream held",
            extra={
                "projection": projection.name,
                "stream_id": failure.stream_id,
                "version": failure.version,
                "event_id": failure.event_id,
                "reason": failure.reason[:REASON_CHARS_MAX],
            },
        )
    counts = {
        "EventsApplied": result.applied,
        "EventsDuplicate": result.duplicates,
        "StreamsFailed": len(result.failures),
    }
    for name, value in counts.items():
        with single_metric(name=name, unit=MetricUnit.Count, value=value) as metric:
            metric.add_dimension(name="projection", value=projection.name)
    return result


def _count(records: Sequence[_Record], failures: Mapping[str, str]) -> None:
    poison = [record for record in records if record.poison is not None]
    for record in poison:
        logger.error(
            "poison record",
            extra={
                "sequence_number": record.sequence_number,
                "stream_id": record.stream_id,
                "reason": (record.poison or "")[:REASON_CHARS_MAX],
            },
        )
    counts = {
        "RecordsReceived": len(records),
        "RecordsIgnored": sum(record.name != "INSERT" for record in records),
        "RecordsPoison": len(poison),
        "RecordsFailed": len(failures),
    }
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
