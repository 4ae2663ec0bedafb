"""The events table's Kinesis Data Streams destination, which moto does not play.

``TableForwarder`` reads one shard of the table's DynamoDB stream and puts every change on the
Kinesis stream in the destination's exact record format (``ledger.changes.change_document``),
partition key = the item's ``pk``. Like the real destination it delivers at least once: it
checkpoints after Kinesis accepted a whole read, so a forwarder killed in between puts some
changes twice, which every Kinesis consumer tolerates (they dedupe by ``event_id``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from devstack.checkpoints import CheckpointStore
from devstack.mappings import TableDestination
from devstack.streams import ShardCursor, SourceRecord, StreamSource
from ledger.changes import change_document, encode_change

PUT_RECORDS_MAX = 500  # Kinesis PutRecords limit
PUT_ATTEMPTS_MAX = 10
_PUT_RETRY_DELAY_S = 0.1

logger = logging.getLogger(__name__)


def destination_consumer(destination: TableDestination) -> str:
    """The forwarder's name among the stream's consumers (status, checkpoints)."""
    return f"kinesis-destination-{destination.table_name}"


def destination_record(record: SourceRecord, destination: TableDestination) -> tuple[bytes, str]:
    """The Kinesis record (data, partition key) of one DynamoDB stream record."""
    lambda_record = record.record
    change = lambda_record["dynamodb"]
    event_name = str(lambda_record["eventName"])
    item = change["Keys"] if event_name == "REMOVE" else change["NewImage"]
    # One id per change, stable across redeliveries of it.
    change_id = uuid.uuid5(
        uuid.NAMESPACE_URL, f"{lambda_record['eventSourceARN']}/{record.sequence_number}"
    )
    document = change_document(
        item,
        event_name=event_name,
        table_name=destination.table_name,
        region=str(lambda_record["awsRegion"]),
        created_at_ms=int(record.arrival_s * 1000),
        change_id=str(change_id),
        user_identity=lambda_record.get("userIdentity"),
    )
    return encode_change(document), str(change["Keys"]["pk"]["S"])


class TableForwarder:
    """One shard of the table's stream → the Kinesis stream; ``step`` like a pump's."""

    def __init__(
        self,
        destination: TableDestination,
        source: StreamSource,
        shard_id: str,
        kinesis_client: Any,
        store: CheckpointStore,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        assert source.arn == destination.table_stream_arn
        self.destination = destination
        self.consumer = destination_consumer(destination)
        self.shard_id = shard_id
        self._source = source
        self._kinesis = kinesis_client
        self._store = store
        self._sleep = sleep
        self.recover()

    def recover(self) -> None:
        self.state = self._store.load(self.consumer, self.shard_id)
        self._cursor = ShardCursor(
            self._source, self.shard_id, after=self.state.checkpoint, position="TRIM_HORIZON"
        )

    def step(self) -> bool:
        records = self._cursor.read(PUT_RECORDS_MAX)
        if not records:
            return False
        self._put(records)
        self.state.checkpoint = records[-1].sequence_number
        self.state.invocations += 1
        self._store.save(self.consumer, self.shard_id, self.state)
        return True

    def _put(self, records: Sequence[SourceRecord]) -> None:
        entries = []
        for record in records:
            data, partition_key = destination_record(record, self.destination)
            entries.append({"Data": data, "PartitionKey": partition_key})
        for attempt in range(PUT_ATTEMPTS_MAX):
            answer = self._kinesis.put_records(
                StreamARN=self.destination.kinesis_stream_arn, Records=entries
            )
            if not answer.get("FailedRecordCount"):
                return
            entries = [
                entry
                for entry, result in zip(entries, answer["Records"], strict=True)
                if result.get("ErrorCode")
            ]
            self.state.errors += 1
            logger.warning("%s: Kinesis refused %d records; retrying", self.consumer, len(entries))
            self._sleep(_PUT_RETRY_DELAY_S * 2**attempt)
        raise RuntimeError(f"{self.consumer}: Kinesis kept refusing {len(entries)} records")
