"""The partial batch response every stream-consumer Lambda returns, built with Powertools' batch
utilities from the failures ``ledger.delivery`` decided (sequence number -> reason)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from ledger.delivery import RecordFailedError

# Where each event source puts a record's sequence number.
_SEQUENCE_NUMBER_KEYS = {
    EventType.DynamoDBStreams: ("dynamodb", "SequenceNumber"),
    EventType.KinesisDataStreams: ("kinesis", "sequenceNumber"),
}


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
