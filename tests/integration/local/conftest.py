"""Streams, queues and a checkpoint directory on the session's moto server, for the local
runtime's pumps and forwarder; functions are played by ``RecordingFunction`` (in process) or run
in their own runtime process (``devstack.functions``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from devstack.checkpoints import CheckpointStore
from devstack.functions import Invocation
from devstack.mappings import EventSourceMapping
from devstack.pump import DeadLetters, ShardPump
from devstack.streams import DynamoDBStreamSource, KinesisStreamSource, StreamSource
from devstack.template import create_table

REGION = "us-east-1"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:consumer"
ROLE_ARN = "arn:aws:iam::123456789012:role/consumer"


def client(moto_endpoint: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto_endpoint,
        region_name=REGION,
        config=Config(account_id_endpoint_mode="disabled"),
    )


@dataclass
class Aws:
    endpoint_url: str
    dynamodb: Any
    streams: Any
    kinesis: Any
    sqs: Any

    def events_table(self) -> tuple[str, str]:
        """A fresh table shaped as template.yaml's ``EventsTable``: its name and stream ARN."""
        name = f"events-{uuid.uuid4().hex[:12]}"
        create_table(self.dynamodb, "EventsTable", name)
        return name, self.dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]

    def kinesis_stream(self, shards: int = 1) -> str:
        name = f"changes-{uuid.uuid4().hex[:12]}"
        self.kinesis.create_stream(StreamName=name, ShardCount=shards)
        self.kinesis.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
        )
        return str(
            self.kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                "StreamARN"
            ]
        )

    def queue(self) -> tuple[str, str]:
        """A queue: its URL and ARN."""
        url = self.sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def messages(self, queue_url: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
            batch = answer.get("Messages", [])
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def put_items(self, table: str, count: int, *, streams: int = 3, start: int = 0) -> None:
        """``count`` small items over ``streams`` partition keys (the pumps never look inside)."""
        for index in range(start, start + count):
            self.dynamodb.put_item(
                TableName=table,
                Item={"pk": {"S": f"payment#p{index % streams}"}, "sk": {"N": str(index + 1)}},
            )

    def put_kinesis(self, stream_arn: str, count: int, *, keys: int = 4, start: int = 0) -> None:
        for index in range(start, start + count):
            self.kinesis.put_record(
                StreamARN=stream_arn,
                Data=json.dumps({"n": index}).encode(),
                PartitionKey=f"key-{index % keys}",
            )


@pytest.fixture
def aws(moto_endpoint: str) -> Aws:
    return Aws(
        endpoint_url=moto_endpoint,
        dynamodb=client(moto_endpoint, "dynamodb"),
        streams=client(moto_endpoint, "dynamodbstreams"),
        kinesis=client(moto_endpoint, "kinesis"),
        sqs=client(moto_endpoint, "sqs"),
    )


@pytest.fixture
def checkpoints(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints")


class FakeClock:
    """Wall-clock seconds that a test moves by hand (starts at the real time: records carry it)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Behaviour = Callable[[dict[str, Any]], Invocation]


@dataclass
class RecordingFunction:
    """A function played in process: it records every event it gets and answers with
    ``behaviour`` (success with no failures by default)."""

    behaviour: Behaviour | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, event: dict[str, Any]) -> Invocation:
        self.events.append(json.loads(json.dumps(event)))
        if self.behaviour is None:
            return Invocation(result={"batchItemFailures": []})
        return self.behaviour(event)

    def batches(self) -> list[list[str]]:
        """The sequence numbers of each invocation's records."""
        return [[sequence_number(record) for record in event["Records"]] for event in self.events]


def sequence_number(record: dict[str, Any]) -> str:
    if "kinesis" in record:
        return str(record["kinesis"]["sequenceNumber"])
    return str(record["dynamodb"]["SequenceNumber"])


def source_for(aws: Aws, arn: str) -> StreamSource:
    if ":kinesis:" in arn:
        return KinesisStreamSource(aws.kinesis, arn, invoke_identity_arn=ROLE_ARN)
    return DynamoDBStreamSource(aws.streams, arn)


def pumps(
    aws: Aws,
    mapping: EventSourceMapping,
    function: RecordingFunction,
    store: CheckpointStore,
    *,
    clock: Callable[[], float] | None = None,
) -> list[ShardPump]:
    """One pump per shard of the mapping's stream (retries without delay)."""
    source = source_for(aws, mapping.source_arn)
    dead_letters = DeadLetters(aws.sqs, mapping.on_failure_arn) if mapping.on_failure_arn else None
    options: dict[str, Any] = {} if clock is None else {"clock": clock}
    return [
        ShardPump(
            mapping,
            source,
            shard_id,
            function,
            store,
            function_arn=FUNCTION_ARN,
            dead_letters=dead_letters,
            retry_delay_s=0,
            **options,
        )
        for shard_id in source.shard_ids()
    ]


def drain(shard_pumps: Sequence[ShardPump], steps_max: int = 1_000) -> None:
    """Step every pump until none has anything left to do."""
    for _ in range(steps_max):
        if not any([pump.step() for pump in shard_pumps]):  # noqa: C419 - step every pump
            return
    raise AssertionError("the pumps never went idle")
