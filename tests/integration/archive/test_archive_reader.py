"""Reading the archive back as the events table's events: one payment, every stream in order,
and every stored row with where it sits (for verification)."""

from __future__ import annotations

import dataclasses
from datetime import date
from types import ModuleType

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archive.layout import day_prefix
from archive.local import LocalArchiveStorage
from archive.parquet import encode
from archive.reader import ArchiveReader
from archive.schema import events_to_table
from archive.storage import ArchiveStorage
from ledger.codec import event_hash
from ledger.decoding import decode_event
from ledger.domain.errors import ChainBrokenError
from ledger.envelope import RecordedEvent
from tests.archive_events import LedgerHistory
from tests.kinesis_events import KinesisShard, change_record, kinesis_event


def _archive(storage: ArchiveStorage, events: list[RecordedEvent], handler: ModuleType) -> None:
    shard = KinesisShard()
    records = [change_record(event, shard) for event in events]
    for start in range(0, len(records), 9):
        handler.process(kinesis_event(records[start : start + 9]), storage)
    handler.process(kinesis_event(records[:9]), storage)  # a retry: same keys
    handler.process(kinesis_event(records[5:12]), storage)  # a bisected retry: copies


def _write(storage: ArchiveStorage, name: str, events: list[RecordedEvent]) -> str:
    day = date.fromisoformat(events[0].recorded_at[:10])
    key = f"{day_prefix(day)}{name}.parquet"
    storage.put_bytes(key, encode(events_to_table(events, [decode_event(e) for e in events])))
    return key


def test_a_payment_reads_back_as_the_tables_events(
    storage: ArchiveStorage, history: LedgerHistory, archive_handler: ModuleType
) -> None:
    _archive(storage, history.events(), archive_handler)
    reader = ArchiveReader(storage)
    for payment_id in ("pay-000", "pay-003", "pay-011"):
        assert reader.payment_events(payment_id) == history.store.load(f"payment#{payment_id}")
    assert reader.payment_events("pay-999") == []
    assert list(reader.streams()) == history.streams()
    assert reader.events_count() == len(history.events())
    assert reader.days() == [date(2026, 11, day) for day in range(1, 7)]


def test_an_empty_archive_reads_as_no_events(storage: ArchiveStorage) -> None:
    reader = ArchiveReader(storage)
    assert (reader.payment_events("p"), list(reader.streams()), list(reader.rows())) == ([], [], [])
    assert reader.events_count() == 0


def test_two_different_rows_for_one_version_are_corruption(
    local_storage: LocalArchiveStorage, history: LedgerHistory
) -> None:
    stream = history.store.load("payment#pay-000")
    _write(local_storage, "a", stream[:1])
    _write(local_storage, "b", [dataclasses.replace(stream[0], correlation_id="forged")])
    reader = ArchiveReader(local_storage)
    with pytest.raises(
        ChainBrokenError, match="two different events for payment#pay-000 version 1"
    ):
        reader.payment_events("pay-000")
    with pytest.raises(ChainBrokenError):
        list(reader.streams())


def test_every_row_comes_with_its_object_and_row_number(
    local_storage: LocalArchiveStorage, history: LedgerHistory
) -> None:
    events = [e for e in history.events() if e.recorded_at.startswith("2026-11-01")]
    key = _write(local_storage, "a", events)
    copy_key = _write(local_storage, "b", events[:2])
    tampered = dataclasses.replace(events[1], payload=events[1].payload.replace("1", "2", 1))
    assert tampered.payload != events[1].payload
    tampered_key = _write(local_storage, "c", [tampered])
    rows = list(ArchiveReader(local_storage).rows())
    located = {(row.key, row.row_number): row.event for row in rows}
    assert len(rows) == len(events) + 3
    assert located[(key, 0)] == events[0]
    assert located[(copy_key, 1)] == events[1]
    suspicious = [row for row in rows if row.event and event_hash(row.event) != row.event.hash]
    assert [(row.key, row.row_number) for row in suspicious] == [(tampered_key, 0)]
    assert list(ArchiveReader(local_storage).rows(day=date(2026, 11, 2))) == []


def test_a_row_that_cannot_be_an_event_is_reported_not_raised(
    local_storage: LocalArchiveStorage, history: LedgerHistory
) -> None:
    events = history.events()[:2]
    table = events_to_table(events, [decode_event(e) for e in events])
    index = table.schema.get_field_index("hash")
    nullable = table.schema.field(index).with_nullable(True)  # keeps its field id
    table = table.set_column(index, nullable, pa.array([events[0].hash, None]))
    key = f"{day_prefix(date(2026, 11, 1))}broken.parquet"
    (local_storage.root / key).parent.mkdir(parents=True)
    pq.write_table(table, local_storage.root / key)
    rows = list(ArchiveReader(local_storage).rows())
    assert [(row.row_number, row.event is None) for row in rows] == [(0, False), (1, True)]
    assert rows[1].problem == "archived column hash holds a null"
