"""Reading DynamoDB Streams and Kinesis shards, records shaped exactly as Lambda delivers them.

``StreamSource.read`` turns a GetRecords answer into the records of a Lambda event (the shapes in
``tests/stream_events.py`` and ``tests/kinesis_events.py``, which Powertools' models validate),
each with its sequence number, arrival time and size, so the pump never looks inside a record.
``ShardCursor`` reads one shard forward, keeping the shard iterator between reads as a consumer
does (a DynamoDB iterator is re-created only when it expires).
"""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from devstack.mappings import SourceKind, source_kind

DYNAMODB_GET_RECORDS_MAX = 1_000
KINESIS_GET_RECORDS_MAX = 10_000
_EXPIRED_ITERATOR = "ExpiredIteratorException"


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record of a shard: as Lambda delivers it, plus what batching needs."""

    sequence_number: str
    arrival_s: float  # ApproximateCreationDateTime / approximateArrivalTimestamp, epoch seconds
    record: dict[str, Any]
    size_bytes: int

    @property
    def order(self) -> int:
        """Sequence numbers are decimal strings that grow within a shard."""
        return int(self.sequence_number)


class StreamSource(ABC):
    """One stream (every shard of it) on a Streams or Kinesis endpoint."""

    def __init__(self, client: Any, arn: str) -> None:
        self.client = client
        self.arn = arn

    @property
    @abstractmethod
    def kind(self) -> SourceKind: ...

    @property
    @abstractmethod
    def read_max(self) -> int:
        """The most records one GetRecords call returns."""

    @abstractmethod
    def shard_ids(self) -> list[str]: ...

    @abstractmethod
    def iterator(self, shard_id: str, after: str | None, position: str) -> str:
        """An iterator after sequence number ``after``, or at ``position`` if None."""

    @abstractmethod
    def get_records(
        self, shard_id: str, iterator: str, limit: int
    ) -> tuple[list[SourceRecord], str | None]:
        """Records and the next iterator (None when the shard is closed and read to its end)."""


class DynamoDBStreamSource(StreamSource):
    kind = SourceKind.DYNAMODB
    read_max = DYNAMODB_GET_RECORDS_MAX

    def shard_ids(self) -> list[str]:
        shards: list[str] = []
        start: str | None = None
        while True:
            arguments: dict[str, Any] = {"StreamArn": self.arn}
            if start is not None:
                arguments["ExclusiveStartShardId"] = start
            description = self.client.describe_stream(**arguments)["StreamDescription"]
            shards.extend(shard["ShardId"] for shard in description.get("Shards", ()))
            start = description.get("LastEvaluatedShardId")
            if not start:
                return shards

    def iterator(self, shard_id: str, after: str | None, position: str) -> str:
        arguments: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard_id}
        if after is None:
            arguments["ShardIteratorType"] = position
        else:
            arguments.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        return str(self.client.get_shard_iterator(**arguments)["ShardIterator"])

    def get_records(
        self, shard_id: str, iterator: str, limit: int
    ) -> tuple[list[SourceRecord], str | None]:
        answer = self.client.get_records(ShardIterator=iterator, Limit=min(limit, self.read_max))
        records = [self._lambda_record(raw) for raw in answer.get("Records", ())]
        return records, answer.get("NextShardIterator")

    def _lambda_record(self, raw: dict[str, Any]) -> SourceRecord:
        change = dict(raw["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        arrival_s = created.timestamp() if isinstance(created, datetime) else float(created or 0)
        # Lambda delivers epoch seconds where GetRecords (through boto3) gives a datetime.
        change["ApproximateCreationDateTime"] = int(arrival_s)
        record: dict[str, Any] = {
            "eventID": raw["eventID"],
            "eventName": raw["eventName"],
            "eventVersion": raw.get("eventVersion", "1.1"),
            "eventSource": raw.get("eventSource", "aws:dynamodb"),
            "awsRegion": raw["awsRegion"],
            "dynamodb": change,
            "eventSourceARN": self.arn,
        }
        if raw.get("userIdentity"):
            record["userIdentity"] = raw["userIdentity"]
        return SourceRecord(
            sequence_number=str(change["SequenceNumber"]),
            arrival_s=arrival_s,
            record=record,
            size_bytes=_size(record),
        )


class KinesisStreamSource(StreamSource):
    kind = SourceKind.KINESIS
    read_max = KINESIS_GET_RECORDS_MAX

    def __init__(self, client: Any, arn: str, *, invoke_identity_arn: str = "") -> None:
        super().__init__(client, arn)
        self.region = arn.split(":")[3]
        self.invoke_identity_arn = invoke_identity_arn

    def shard_ids(self) -> list[str]:
        shards: list[str] = []
        arguments: dict[str, Any] = {"StreamARN": self.arn}
        while True:
            answer = self.client.list_shards(**arguments)
            shards.extend(shard["ShardId"] for shard in answer.get("Shards", ()))
            token = answer.get("NextToken")
            if not token:
                return shards
            arguments = {"NextToken": token}

    def iterator(self, shard_id: str, after: str | None, position: str) -> str:
        arguments: dict[str, Any] = {"StreamARN": self.arn, "ShardId": shard_id}
        if after is None:
            arguments["ShardIteratorType"] = position
        else:
            arguments.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after
            )
        return str(self.client.get_shard_iterator(**arguments)["ShardIterator"])

    def get_records(
        self, shard_id: str, iterator: str, limit: int
    ) -> tuple[list[SourceRecord], str | None]:
        answer = self.client.get_records(
            ShardIterator=iterator, Limit=min(limit, self.read_max), StreamARN=self.arn
        )
        records = [self._lambda_record(shard_id, raw) for raw in answer.get("Records", ())]
        return records, answer.get("NextShardIterator")

    def _lambda_record(self, shard_id: str, raw: dict[str, Any]) -> SourceRecord:
        arrived = raw["ApproximateArrivalTimestamp"]
        arrival_s = arrived.timestamp() if isinstance(arrived, datetime) else float(arrived)
        sequence_number = str(raw["SequenceNumber"])
        record = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": raw["PartitionKey"],
                "sequenceNumber": sequence_number,
                "data": base64.b64encode(raw["Data"]).decode("ascii"),
                "approximateArrivalTimestamp": round(arrival_s, 3),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{sequence_number}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": self.invoke_identity_arn,
            "awsRegion": self.region,
            "eventSourceARN": self.arn,
        }
        return SourceRecord(
            sequence_number=sequence_number,
            arrival_s=arrival_s,
            record=record,
            size_bytes=_size(record),
        )


def stream_source(
    arn: str, *, dynamodb_streams: Any, kinesis: Any, invoke_identity_arn: str = ""
) -> StreamSource:
    if source_kind(arn) is SourceKind.DYNAMODB:
        return DynamoDBStreamSource(dynamodb_streams, arn)
    return KinesisStreamSource(kinesis, arn, invoke_identity_arn=invoke_identity_arn)


class ShardCursor:
    """Reads one shard forward from after ``after`` (or from ``position`` if None)."""

    def __init__(
        self, source: StreamSource, shard_id: str, *, after: str | None, position: str
    ) -> None:
        self.source = source
        self.shard_id = shard_id
        self.last = after
        self._position = position
        self._iterator: str | None = None
        self.closed = False

    def read(self, limit: int) -> list[SourceRecord]:
        if self.closed:
            return []
        if self._iterator is None:
            self._iterator = self.source.iterator(self.shard_id, self.last, self._position)
        try:
            records, self._iterator = self.source.get_records(self.shard_id, self._iterator, limit)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != _EXPIRED_ITERATOR:
                raise
            self._iterator = None
            return []
        if self._iterator is None:
            self.closed = True
        if records:
            self.last = records[-1].sequence_number
        return records


def count_after(
    source: StreamSource, shard_id: str, after: str | None, *, position: str, cap: int
) -> int:
    """How many records the shard holds after ``after`` (at most ``cap``: counting reads them)."""
    cursor = ShardCursor(source, shard_id, after=after, position=position)
    count = 0
    while count < cap:
        records = cursor.read(min(source.read_max, cap - count))
        if not records:
            return count
        count += len(records)
    return count


def _size(record: dict[str, Any]) -> int:
    return len(json.dumps(record, separators=(",", ":")))
