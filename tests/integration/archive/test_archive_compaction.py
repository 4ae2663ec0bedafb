"""Compaction: large sorted objects with each event once, corruption refused, crashes leaving only
duplicates, objects that appear meanwhile left alone, and nothing to do the second time."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import closing
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from archive.compaction import compact_day
from archive.engine import connect
from archive.layout import day_prefix
from archive.local import LocalArchiveStorage
from archive.parquet import encode
from archive.schema import events_to_table
from archive.storage import ArchiveStorage, StoredObject
from ledger.decoding import decode_event
from ledger.domain.errors import ChainBrokenError
from ledger.envelope import RecordedEvent
from tests.archive_events import LedgerHistory

DAY = date(2026, 11, 2)


def _day_events(history: LedgerHistory, day: date = DAY) -> list[RecordedEvent]:
    return [event for event in history.events() if event.recorded_at[:10] == day.isoformat()]


def _put(storage: ArchiveStorage, name: str, events: Sequence[RecordedEvent]) -> str:
    key = f"{day_prefix(DAY)}{name}.parquet"
    storage.put_bytes(key, encode(events_to_table(events, [decode_event(e) for e in events])))
    return key


def _keys(storage: ArchiveStorage) -> list[str]:
    return [item.key for item in storage.list(day_prefix(DAY), limit=1000)]


def _stored(storage: ArchiveStorage) -> list[tuple[str, int]]:
    with closing(connect(storage)) as connection:
        return connection.execute(
            "SELECT event_id, count(*) FROM events GROUP BY 1 ORDER BY 1"
        ).fetchall()


def test_a_day_becomes_sorted_parts_with_each_event_once(
    local_storage: LocalArchiveStorage, history: LedgerHistory
) -> None:
    events = _day_events(history)
    assert len(events) >= 8
    inputs = [_put(local_storage, f"s-{n}", events[n : n + 5]) for n in range(0, len(events), 3)]
    report = compact_day(local_storage, DAY, rows_per_file_max=4)
    assert report.files_read == sorted(inputs)
    assert report.events == len(events)
    assert report.rows_read > report.events
    assert len(report.files_written) == -(-len(events) // 4)
    assert sorted(_keys(local_storage)) == sorted(report.files_written)
    rows: list[tuple[str, int]] = []
    for key in report.files_written:  # parts in order, each sorted: the day is sorted
        table = pq.read_table(local_storage.root / key)
        assert table.num_rows <= 4
        rows += zip(table["stream_id"].to_pylist(), table["version"].to_pylist(), strict=True)
    assert rows == sorted((event.stream_id, event.version) for event in events)
    assert {count for _, count in _stored(local_storage)} == {1}

    again = compact_day(local_storage, DAY, rows_per_file_max=4)
    assert again.unchanged
    assert (again.files_written, again.files_deleted) == ([], [])


def test_one_event_id_with_two_contents_is_refused_and_nothing_changes(
    storage: ArchiveStorage, history: LedgerHistory
) -> None:
    events = _day_events(history)
    _put(storage, "a", events)
    tampered = [dataclasses.replace(events[0], correlation_id="forged")]
    tampered_key = _put(storage, "b", tampered)
    before = _keys(storage)
    with pytest.raises(ChainBrokenError, match="same event id with different content") as caught:
        compact_day(storage, DAY)
    assert events[0].event_id in caught.value.message
    assert tampered_key in caught.value.message
    assert _keys(storage) == before


def test_two_events_for_one_version_are_refused(
    local_storage: LocalArchiveStorage, history: LedgerHistory
) -> None:
    events = _day_events(history)
    _put(local_storage, "a", events)
    other = dataclasses.replace(events[0], event_id="another-id")
    _put(local_storage, "b", [other])
    with pytest.raises(ChainBrokenError, match="two events for one stream version"):
        compact_day(local_storage, DAY)


def test_a_row_of_another_day_is_refused(
    local_storage: LocalArchiveStorage, history: LedgerHistory
) -> None:
    _put(local_storage, "a", _day_events(history, date(2026, 11, 3)))
    with pytest.raises(ChainBrokenError, match="recorded on another day"):
        compact_day(local_storage, DAY)


class _CrashOnDelete(LocalArchiveStorage):
    def delete(self, keys: Sequence[str]) -> None:
        raise OSError("the process died before deleting")


def test_a_crash_between_writing_and_deleting_leaves_only_duplicates(
    tmp_path: Path, history: LedgerHistory
) -> None:
    crashing = _CrashOnDelete(tmp_path)
    events = _day_events(history)
    _put(crashing, "a", events[:6])
    _put(crashing, "b", events[4:])
    with pytest.raises(OSError, match="died"):
        compact_day(crashing, DAY)
    survivor = LocalArchiveStorage(tmp_path)
    assert len(_keys(survivor)) == 3  # two inputs and the new object
    assert {event_id for event_id, _ in _stored(survivor)} == {e.event_id for e in events}
    report = compact_day(survivor, DAY)
    assert len(report.files_deleted) == 2  # the inputs; the earlier output is rewritten in place
    assert {count for _, count in _stored(survivor)} == {1}
    assert len(_keys(survivor)) == 1


class _Arriving(LocalArchiveStorage):
    """An object of the day lands while compaction works (after its listing)."""

    arrival: tuple[str, bytes] | None = None

    def list(self, prefix: str, *, limit: int) -> list[StoredObject]:
        listed = super().list(prefix, limit=limit)
        if self.arrival is not None:
            key, data = self.arrival
            self.arrival = None
            self.put_bytes(key, data)
        return listed


def test_an_object_that_arrives_meanwhile_is_not_deleted(
    tmp_path: Path, history: LedgerHistory
) -> None:
    storage = _Arriving(tmp_path)
    events = _day_events(history)
    _put(storage, "a", events[:5])
    late = events[5:]
    late_key = f"{day_prefix(DAY)}late.parquet"
    storage.arrival = (late_key, encode(events_to_table(late, [decode_event(e) for e in late])))
    report = compact_day(storage, DAY)
    assert late_key not in report.files_read + report.files_deleted
    assert late_key in _keys(storage)
    assert {event_id for event_id, _ in _stored(storage)} == {e.event_id for e in events}
    compact_day(storage, DAY)
    assert len(_keys(storage)) == 1


def test_a_day_with_more_objects_than_one_pass_takes_several(
    local_storage: LocalArchiveStorage, history: LedgerHistory
) -> None:
    events = _day_events(history)
    for index, event in enumerate(events):
        _put(local_storage, f"s-{index:03d}", [event])
    first = compact_day(local_storage, DAY, files_max=3)
    assert first.more_files
    assert len(first.files_read) == 3
    passes = 1
    while compact_day(local_storage, DAY, files_max=3).more_files:
        passes += 1
        assert passes < len(events)
    assert len(_keys(local_storage)) == 1
    assert [event_id for event_id, _ in _stored(local_storage)] == sorted(
        e.event_id for e in events
    )


def test_an_empty_day_is_nothing_to_do(storage: ArchiveStorage) -> None:
    report = compact_day(storage, DAY)
    assert report.files_read == []
    assert report.to_dict()["duplicates_dropped"] == 0
