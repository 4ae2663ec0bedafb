"""The events table → Kinesis → archive Lambda → compaction, with every delivery fault Kinesis and
Lambda produce: after compaction each event is stored exactly once and the archive equals the
table's events."""

from __future__ import annotations

import random
from collections import Counter
from contextlib import closing
from datetime import date
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archive.compaction import compact_day
from archive.engine import connect
from archive.layout import EVENTS_PREFIX, day_of_key
from archive.reader import ArchiveReader
from archive.schema import ARCHIVE_SCHEMA, SCHEMA_VERSION_KEY
from archive.storage import ArchiveStorage
from ledger.codec import verify_chain
from ledger.envelope import RecordedEvent
from tests.archive_events import LedgerHistory
from tests.kinesis_events import KinesisShard, change_record, kinesis_event

BATCH_SIZE = 7


def _stream_of_changes(events: list[RecordedEvent], rng: random.Random) -> list[dict[str, Any]]:
    """The shard as the destination fills it: every insert, some twice (a later copy with a new
    sequence number), and changes that are not inserts."""
    shard = KinesisShard()
    records: list[dict[str, Any]] = []
    for event in events:
        records.append(change_record(event, shard))
        if rng.random() < 0.2:
            records.append(change_record(event, shard, event_name="MODIFY"))
    for event in rng.sample(events, len(events) // 4):
        records.append(change_record(event, shard))
    return records


def _deliver(handler: ModuleType, storage: ArchiveStorage, records: list[dict[str, Any]]) -> int:
    """Lambda's deliveries of ``records``: batches, some retried whole, some bisected and
    retried in halves; the number of invocations."""
    rng = random.Random(11)
    invocations = 0
    for start in range(0, len(records), BATCH_SIZE):
        batch = records[start : start + BATCH_SIZE]
        attempts = [batch]
        roll = rng.random()
        if roll < 0.3:
            attempts.append(batch)  # a retry after a timeout: the same records again
        elif roll < 0.6:
            half = len(batch) // 2 or 1
            attempts += [batch[:half], batch[half:]]  # bisected after a failure
        for attempt in attempts:
            if attempt:
                response = handler.process(kinesis_event(attempt), storage)
                assert response == {"batchItemFailures": []}
                invocations += 1
    return invocations


def test_every_event_is_archived_exactly_once_after_compaction(
    storage: ArchiveStorage, history: LedgerHistory, archive_handler: ModuleType
) -> None:
    table_events = history.events()
    records = _stream_of_changes(table_events, random.Random(5))
    assert _deliver(archive_handler, storage, records) > len(records) // BATCH_SIZE

    with closing(connect(storage)) as connection:
        rows, distinct = connection.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM events"
        ).fetchone() or (0, 0)
    assert distinct == len(table_events)
    assert rows > distinct  # the faults above left copies

    days = sorted({date.fromisoformat(event.recorded_at[:10]) for event in table_events})
    reports = [compact_day(storage, day) for day in days]
    assert sum(report.duplicates_dropped for report in reports) == rows - distinct

    with closing(connect(storage)) as connection:
        per_event = connection.execute(
            "SELECT event_id, count(*) FROM events GROUP BY 1"
        ).fetchall()
    assert Counter(count for _, count in per_event) == {1: len(table_events)}
    reader = ArchiveReader(storage)
    assert list(reader.streams()) == history.streams()
    for stream in reader.streams():
        verify_chain(stream)
    assert reader.events_count() == len(table_events)

    again = [compact_day(storage, day) for day in days]
    assert all(report.unchanged for report in again)
    keys = [item.key for item in storage.list(EVENTS_PREFIX, limit=1000)]
    assert [day_of_key(key) for key in keys] == days  # one object per day
    assert all("/compacted-" in key for key in keys)


def test_objects_read_back_with_the_declared_schema(
    local_storage: ArchiveStorage, history: LedgerHistory, archive_handler: ModuleType
) -> None:
    shard = KinesisShard("shardId-000000000003")
    records = [change_record(event, shard) for event in history.events()]
    archive_handler.process(kinesis_event(records), local_storage)
    objects = local_storage.list(EVENTS_PREFIX, limit=100)
    assert len(objects) == 6  # one per recorded day
    first, last = records[0]["kinesis"]["sequenceNumber"], records[-1]["kinesis"]["sequenceNumber"]
    for item in objects:
        assert item.key.endswith(f"/shardId-000000000003-{first}-{last}.parquet")
        path = local_storage.root / item.key
        table = pq.read_table(path)
        assert table.schema.equals(ARCHIVE_SCHEMA, check_metadata=False)
        assert pq.read_metadata(path).metadata[SCHEMA_VERSION_KEY] == b"2"
        assert pq.read_metadata(path).row_group(0).column(0).compression == "ZSTD"
        day = day_of_key(item.key)
        assert day is not None
        assert {value.date() for value in table.column("recorded_at").to_pylist()} == {day}
        keys = list(zip(table["stream_id"].to_pylist(), table["version"].to_pylist(), strict=True))
        assert keys == sorted(keys)
    with closing(connect(local_storage)) as connection:
        described = connection.execute("DESCRIBE SELECT * FROM events").fetchall()
        direct = connection.execute(
            "DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false)",
            [str(local_storage.root / objects[0].key)],
        ).fetchall()
    expected = [
        ("event_id", "VARCHAR"), ("stream_id", "VARCHAR"), ("payment_id", "VARCHAR"),
        ("version", "BIGINT"), ("event_type", "VARCHAR"), ("schema_version", "INTEGER"),
        ("occurred_at", "TIMESTAMP"), ("recorded_at", "TIMESTAMP"), ("actor_kind", "VARCHAR"),
        ("actor_id", "VARCHAR"), ("actor_model", "VARCHAR"), ("actor_version", "VARCHAR"),
        ("correlation_id", "VARCHAR"), ("causation_id", "VARCHAR"),
        ("idempotency_key", "VARCHAR"), ("request_digest", "VARCHAR"),
        ("merchant_id", "VARCHAR"), ("amount_minor", "BIGINT"), ("currency", "VARCHAR"),
        ("payload", "VARCHAR"), ("prev_hash", "VARCHAR"), ("hash", "VARCHAR"),
    ]  # fmt: skip
    assert [(row[0], row[1]) for row in described] == [
        *expected, ("year", "VARCHAR"), ("month", "VARCHAR"), ("day", "VARCHAR"),
    ]  # fmt: skip
    assert [(row[0], row[1]) for row in direct] == expected


def test_poison_is_reported_and_the_rest_archived(
    local_storage: ArchiveStorage, history: LedgerHistory, archive_handler: ModuleType
) -> None:
    shard = KinesisShard()
    records = [change_record(event, shard) for event in history.events()[:10]]
    poisoned = records[3]
    poisoned["kinesis"]["data"] = "bm90IGpzb24="  # "not json"
    archive_handler.metrics.clear_metrics()
    response = archive_handler.process(kinesis_event(records), local_storage)
    counted = archive_handler.metrics.metric_set["BatchesDecodedRecordByRecord"]
    assert counted["Value"] == [1]  # what ArchiveRecordByRecordAlarm watches
    archive_handler.metrics.clear_metrics()
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    key = poisoned["kinesis"]["partitionKey"]
    expected = {
        record["kinesis"]["sequenceNumber"]
        for record in records[3:]
        if record["kinesis"]["partitionKey"] == key
    }
    assert failed == expected
    with closing(connect(local_storage)) as connection:
        (archived,) = connection.execute("SELECT count(*) FROM events").fetchone() or (0,)
    assert archived == len(records) - len(expected)


def test_a_storage_failure_fails_the_whole_invocation(
    history: LedgerHistory, archive_handler: ModuleType
) -> None:
    class Unavailable:
        location = "nowhere"

        def put_bytes(self, key: str, data: bytes) -> None:
            raise ConnectionError("S3 is unreachable")

    records = [change_record(event, KinesisShard()) for event in history.events()[:3]]
    with pytest.raises(ConnectionError):
        archive_handler.process(kinesis_event(records), Unavailable())  # type: ignore[arg-type]


def test_the_archive_schema_stays_readable_by_pyarrow_alone(local_storage: ArchiveStorage) -> None:
    # An archive with nothing in it still has a table with the declared columns.
    with closing(connect(local_storage)) as connection:
        result = connection.execute("SELECT * FROM events")
        assert result.fetchall() == []
        names = [column[0] for column in result.description or []]
    assert names == [*ARCHIVE_SCHEMA.names, "year", "month", "day"]
    assert pa.Table.from_pylist([], schema=ARCHIVE_SCHEMA).num_rows == 0
