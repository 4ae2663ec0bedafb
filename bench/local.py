"""Local stack benchmark: what the moto patches buy, and what the stream pumps cost.

Prints, on a patched and an unpatched moto server side by side (``devstack.motopatches``), for
an events table holding ``TABLE_EVENTS`` events (a demo's worth):
- the median latency of a payment's Query (one partition) and of a 2-item TransactWriteItems
  (a final capture), and the ratio unpatched / patched; the baseline in the same run is a
  GetItem of one item, which neither patch touches (the server's fixed cost per request);
- the pump's throughput on the patched server: records/s through a ``ShardPump`` reading the
  table's DynamoDB stream in batches of 1,000 and invoking an in-process function that does
  nothing (no handler's cost; moto serving GetRecords takes most of it: about 0.75 ms per
  record on the machine this was written on, against 0.15 ms for the pump and boto3);
- peak RSS of this process.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _archive_path  # noqa: F401 - before devstack: bench/archive.py shadows the package
import boto3
from botocore.config import Config

from devstack.checkpoints import CheckpointStore
from devstack.functions import Invocation
from devstack.mappings import EventSourceMapping
from devstack.motoserver import MotoServer
from devstack.pump import ShardPump
from devstack.streams import DynamoDBStreamSource
from devstack.template import create_table

TABLE = "bench-events"
TABLE_EVENTS = 3_000
EVENTS_PER_PAYMENT = 6
SAMPLES = 60


def client(endpoint_url: str, service: str = "dynamodb") -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(account_id_endpoint_mode="disabled"),
    )


def item(payment: int, version: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"payment#pay-{payment:06d}"},
        "sk": {"N": str(version)},
        "event_type": {"S": "PaymentCaptured"},
        "payload": {"S": '{"amount_minor":1299,"currency":"EUR","merchant_id":"m-1"}'},
    }


def fill(dynamodb: Any) -> int:
    create_table(dynamodb, "EventsTable", TABLE)
    payments = TABLE_EVENTS // EVENTS_PER_PAYMENT
    for payment in range(payments):
        for version in range(1, EVENTS_PER_PAYMENT + 1):
            dynamodb.put_item(TableName=TABLE, Item=item(payment, version))
    return payments


def median_ms(call: Callable[[int], None]) -> float:
    durations = []
    for sample in range(SAMPLES):
        start = time.perf_counter()
        call(sample)
        durations.append(time.perf_counter() - start)
    return statistics.median(durations) * 1000


def measure_requests(endpoint_url: str) -> dict[str, float]:
    dynamodb = client(endpoint_url)
    payments = fill(dynamodb)

    def get(sample: int) -> None:
        key = {"pk": {"S": f"payment#pay-{sample % payments:06d}"}, "sk": {"N": "1"}}
        dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)

    def query(sample: int) -> None:
        dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"payment#pay-{sample % payments:06d}"}},
            ConsistentRead=True,
        )

    def transact(sample: int) -> None:
        new = EVENTS_PER_PAYMENT + 1
        put = {"ConditionExpression": "attribute_not_exists(pk)", "TableName": TABLE}
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {**put, "Item": item(sample % payments, new + 2 * (sample // payments))}},
                {
                    "Put": {
                        **put,
                        "Item": item(sample % payments, new + 1 + 2 * (sample // payments)),
                    }
                },
            ]
        )

    return {"get": median_ms(get), "query": median_ms(query), "transact": median_ms(transact)}


def measure_pump(endpoint_url: str) -> float:
    dynamodb = client(endpoint_url)
    arn = dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    source = DynamoDBStreamSource(client(endpoint_url, "dynamodbstreams"), arn)
    (shard_id,) = source.shard_ids()
    mapping = EventSourceMapping(name="bench", function="bench", source_arn=arn, batch_size=1_000)
    delivered = 0

    def function(event: dict[str, Any]) -> Invocation:
        nonlocal delivered
        delivered += len(event["Records"])
        return Invocation(result=None)

    with tempfile.TemporaryDirectory() as directory:
        pump = ShardPump(mapping, source, shard_id, function, CheckpointStore(Path(directory)))
        start = time.perf_counter()
        while pump.step():
            pass
        elapsed = time.perf_counter() - start
    return delivered / elapsed


def main() -> int:
    with MotoServer() as patched, MotoServer(patched=False) as unpatched:
        fast = measure_requests(patched.endpoint_url)
        slow = measure_requests(unpatched.endpoint_url)
        records_per_s = measure_pump(patched.endpoint_url)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bench/local.py — local stack ({TABLE_EVENTS:,} events in the table)")
    print("  median ms per request      patched  unpatched  unpatched / patched")
    for name, label in (("get", "GetItem (baseline)"), ("query", "Query one payment"),
                        ("transact", "TransactWriteItems 2")):  # fmt: skip
        print(
            f"  {label:<26} {fast[name]:7.1f}  {slow[name]:9.1f}  {slow[name] / fast[name]:9.1f}×"
        )
    print(
        f"  Query / GetItem: patched {fast['query'] / fast['get']:.1f}×, "
        f"unpatched {slow['query'] / slow['get']:.1f}×"
    )
    print(f"  pump (no-op function, batches of 1,000): {records_per_s:,.0f} records/s")
    print(f"  peak RSS: {peak_rss_mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
