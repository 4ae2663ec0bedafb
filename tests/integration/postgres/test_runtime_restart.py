"""The local runtime killed in the middle of a batch and started again: nothing lost, nothing
doubled.

The runtime runs as its own process (``python -m devstack.runtime HOME``) with the projection
function in its own runtime process, against a real events table and payment-state table (from
template.yaml) and a real PostgreSQL schema. The function pauses after it applied its first
batch; the test kills the runtime and the function there (the batch applied, its checkpoint not
saved), writes more events, and starts the runtime again. The batch is delivered a second time
(at-least-once), and both read models still equal the events applied once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import psycopg
from botocore.config import Config

from devstack.checkpoints import CheckpointStore
from devstack.mappings import EventSourceMapping, FunctionTarget, RuntimeConfig
from devstack.runtime import CHECKPOINTS_DIRECTORY, write_config
from devstack.streams import DynamoDBStreamSource, count_after
from devstack.template import create_table
from ledger.dynamodb import DynamoDBEventStore
from ledger.service import fold
from projections.payment_state import item_to_snapshot
from projections.postgres.checksums import table_checksums
from projections.postgres.projection import PostgresProjection, connect_url
from tests.integration.postgres.conftest import random_history

REPO_ROOT = Path(__file__).resolve().parents[3]
WAIT_S = 60
BATCH_SIZE = 10


def wait_for(condition: Any, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_runtime(home: Path) -> subprocess.Popen[bytes]:
    log = (home / "runtime.log").open("ab")
    with log:
        return subprocess.Popen(
            [sys.executable, "-m", "devstack.runtime", str(home)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=log,
        )


def test_a_pump_killed_mid_batch_loses_nothing_and_doubles_nothing(
    moto_endpoint: str,
    postgres_url: str,
    schema: str,
    other_schema: str,
    connection: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    client = boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        config=Config(account_id_endpoint_mode="disabled"),
    )
    events_table, state_table = (f"{name}-{uuid.uuid4().hex[:12]}" for name in ("ev", "state"))
    create_table(client, "EventsTable", events_table)
    create_table(client, "PaymentStateTable", state_table)
    stream_arn = client.describe_table(TableName=events_table)["Table"]["LatestStreamArn"]
    store = DynamoDBEventStore(client, events_table)
    history = random_history(seed=5, payments=6, count=60)
    events = history.events()
    for event in events[:40]:
        store.append([event])

    pauses = tmp_path / "pauses"
    pauses.mkdir()
    (pauses / "pause").touch()
    home = tmp_path / "home"
    function = FunctionTarget(
        name="project",
        handler="tests.integration.local.pausing_project.handler",
        environment={
            "EVENTS_TABLE": events_table,
            "PAYMENT_STATE_TABLE": state_table,
            "DATABASE_SCHEMA": schema,
            "POWERTOOLS_SERVICE_NAME": "payledger",
            "POWERTOOLS_METRICS_NAMESPACE": "Payledger",
            "PAUSE_DIRECTORY": str(pauses),
        },
        timeout_s=60,
    )
    mapping = EventSourceMapping(
        name="project-events",
        function="project",
        source_arn=stream_arn,
        batch_size=BATCH_SIZE,
        report_batch_item_failures=True,
        bisect_on_error=True,
        maximum_retry_attempts=5,
    )
    write_config(
        home,
        RuntimeConfig(
            endpoint_url=moto_endpoint,
            region="us-east-1",
            functions=(function,),
            mappings=(mapping,),
            database_url=postgres_url,
        ),
    )

    runtime = start_runtime(home)
    try:
        wait_for((pauses / "paused").exists, "the first batch to be applied")
        worker_pid = int((pauses / "paused").read_text())
        runtime.send_signal(signal.SIGKILL)
        os.kill(worker_pid, signal.SIGKILL)
        runtime.wait(timeout=10)
    finally:
        if runtime.poll() is None:
            runtime.kill()
            runtime.wait()
    (pauses / "pause").unlink()
    for event in events[40:]:
        store.append([event])

    streams = DynamoDBStreamSource(
        boto3.client(
            "dynamodbstreams",
            endpoint_url=moto_endpoint,
            region_name="us-east-1",
            config=Config(account_id_endpoint_mode="disabled"),
        ),
        stream_arn,
    )
    (shard_id,) = streams.shard_ids()
    checkpoints = CheckpointStore(home / CHECKPOINTS_DIRECTORY)
    assert checkpoints.load("project-events", shard_id).checkpoint is None
    runtime = start_runtime(home)
    try:

        def caught_up() -> bool:
            checkpoint = checkpoints.load("project-events", shard_id).checkpoint
            after = count_after(streams, shard_id, checkpoint, position="TRIM_HORIZON", cap=100)
            return checkpoint is not None and after == 0

        wait_for(caught_up, "the runtime to catch up")
        runtime.send_signal(signal.SIGTERM)
        assert runtime.wait(timeout=30) == 0
    finally:
        if runtime.poll() is None:
            runtime.kill()
            runtime.wait()

    deliveries = [
        json.loads(line)
        for line in (pauses / "delivered.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    first_batch = deliveries[0]
    assert len(first_batch) == BATCH_SIZE
    assert deliveries[1] == first_batch  # redelivered after the kill: at least once
    delivered = [number for batch in deliveries[1:] for number in batch]
    assert len(delivered) == len(set(delivered)) == len(events)  # each once after the restart

    # Nothing lost, nothing doubled: both read models are the events applied exactly once.
    scan = client.scan(TableName=state_table, ConsistentRead=True)["Items"]
    snapshots = {item_to_snapshot(item).state.payment_id: item_to_snapshot(item) for item in scan}
    expected = {
        snapshot.state.payment_id: snapshot
        for stream_id in history.stream_ids
        if (snapshot := fold(history.stream(stream_id))) is not None
    }
    assert {key: value.to_dict() for key, value in snapshots.items()} == {
        key: value.to_dict() for key, value in expected.items()
    }
    direct = PostgresProjection(connect_url(postgres_url), other_schema)
    try:
        assert direct.apply(events).applied == len(events)
    finally:
        direct.close()
    assert table_checksums(connection, schema) == table_checksums(connection, other_schema)
