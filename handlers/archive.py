"""The archive Lambda: the events table's Kinesis destination → Parquet on S3 (DESIGN §7).

Per batch (see ``archive.writer``): decode the batch column-wise (record by record when a record
is malformed), dedupe by ``event_id``, order by (stream id, version), write one object per
recorded day under a key made of the shard id and the batch's sequence range. The archive holds
every event of the table; it refuses only a record it cannot store faithfully (``archive.records``),
never an event because its payload fails the domain model. A poison record (and every later
record of its partition key) is reported in ``batchItemFailures``, so Lambda retries it, bisects
the batch, then sends it to the dead-letter queue; the rest of the batch is archived. An S3
failure fails the invocation and Lambda retries the whole batch, which rewrites the same keys.
``BatchesDecodedRecordByRecord`` counts the batches that could not be decoded column-wise.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from archive.storage import ArchiveStorage
from archive.writer import DecodedBatch, WrittenObject, decode_batch, write_batch
from handlers.batch import partial_batch_response
from handlers.bootstrap import archive_settings_from_environment, build_archive_storage
from handlers.observability import make_logger
from ledger.delivery import REASON_CHARS_MAX

logger = make_logger()
tracer = Tracer()
metrics = Metrics()  # namespace from POWERTOOLS_METRICS_NAMESPACE

storage = build_archive_storage(archive_settings_from_environment())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process(event, storage, context)


def process(
    event: dict[str, Any], storage: ArchiveStorage, context: LambdaContext | None = None
) -> PartialItemFailureResponse:
    """Archive one Kinesis batch; the partial batch response naming the failed records."""
    records = event["Records"]
    if not records:
        return partial_batch_response(event, EventType.KinesisDataStreams, {}, context)
    batch = decode_batch(records)
    written = write_batch(storage, batch)
    _report(batch, written)
    return partial_batch_response(event, EventType.KinesisDataStreams, batch.failures, context)


def _report(batch: DecodedBatch, written: list[WrittenObject]) -> None:
    for sequence, reason in batch.failures.items():
        logger.error(
            "record failed",
            extra={"sequence_number": sequence, "reason": reason[:REASON_CHARS_MAX]},
        )
    if written:
        logger.info(
            "archived",
            extra={"objects": [item.key for item in written], "shard_id": batch.shard_id},
        )
    counts = {
        "RecordsReceived": batch.received,
        "RecordsIgnored": batch.ignored,
        "RecordsPoison": batch.poison,
        "RecordsFailed": len(batch.failures),
        "EventsArchived": batch.rows.num_rows,
        "EventsDuplicate": batch.duplicates,
        "ObjectsWritten": len(written),
        "BatchesDecodedRecordByRecord": 0 if batch.column_wise else 1,
    }
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    size = sum(item.size_bytes for item in written)
    metrics.add_metric(name="BytesWritten", unit=MetricUnit.Bytes, value=size)
