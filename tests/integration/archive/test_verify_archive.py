"""``verify --archive``: real Parquet objects, altered the way an attacker or a bug would alter
them, each problem found at its object and row; retried batches' copies are not problems."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from itertools import groupby
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archive.layout import COMPACTED_PREFIX, day_prefix
from archive.local import LocalArchiveStorage
from archive.parquet import encode
from archive.s3 import S3ArchiveStorage
from archive.schema import events_to_table
from archive.storage import ArchiveStorage
from archive.verify import (
    ARCHIVE_CONFLICT,
    ARCHIVE_DUPLICATE,
    ARCHIVE_EXTRA,
    ARCHIVE_MISMATCH,
    ARCHIVE_MISSING,
    ArchiveCheck,
    surveyed_chains,
    verify_archive_chains,
)
from ledger.codec import event_hash
from ledger.decoding import decode_event
from ledger.envelope import GENESIS_HASH, Actor, RecordedEvent
from ledger.integrity.chains import (
    HASH_MISMATCH,
    PREV_HASH_MISMATCH,
    UNREADABLE_EVENT,
    VERSION_GAP,
)
from ledger.integrity.runner import Verification, VerifyReport, run_verification
from ledger.memory import MemoryEventStore
from tests.archive_events import LedgerHistory

Tamper = Callable[[pa.Table], pa.Table]


def write(
    storage: ArchiveStorage,
    name: str,
    events: list[RecordedEvent],
    tamper: Tamper | None = None,
) -> str:
    """One object of ``events`` (all of one day) named ``name``, altered by ``tamper``."""
    day = date.fromisoformat(events[0].recorded_at[:10])
    table = events_to_table(events, [decode_event(event) for event in events])
    if tamper is not None:
        table = tamper(table)
    key = f"{day_prefix(day)}{name}.parquet"
    storage.put_bytes(key, encode(table))
    return key


def archive_all(storage: ArchiveStorage, events: list[RecordedEvent]) -> list[str]:
    """One object per day, as a batch per day would write them."""
    return [
        write(storage, f"batch-{day}", list(group))
        for day, group in groupby(events, key=lambda event: event.recorded_at[:10])
    ]


def with_cell(row: int, column: str, value: Any) -> Tamper:
    def tamper(table: pa.Table) -> pa.Table:
        values = table.column(column).to_pylist()
        values[row] = value(values[row]) if callable(value) else value
        field = table.schema.field(column)
        array = pa.array(values, field.type)
        return table.set_column(table.schema.get_field_index(column), field, array)

    return tamper


def verify(store: MemoryEventStore, storage: ArchiveStorage) -> VerifyReport:
    check = ArchiveCheck(storage)
    return run_verification(Verification(store=store, chains=False, stream_checks=[check]))


def found(report: VerifyReport) -> list[tuple[str, str, str | None, int | None, str | None]]:
    return [(p.check, p.kind, p.stream_id, p.version, p.location) for p in report.problems]


@pytest.fixture
def storage(local_storage: LocalArchiveStorage) -> LocalArchiveStorage:
    return local_storage


@pytest.fixture
def events(history: LedgerHistory) -> list[RecordedEvent]:
    return history.events()


@pytest.fixture
def store(history: LedgerHistory) -> MemoryEventStore:
    copy = MemoryEventStore()
    for stream in history.streams():
        copy.append(stream)
    return copy


def test_an_archive_equal_to_the_table_verifies(
    storage: LocalArchiveStorage, store: MemoryEventStore, events: list[RecordedEvent]
) -> None:
    keys = archive_all(storage, events)
    retried = [e for e in events if e.recorded_at[:10] == keys[0].split("batch-")[1][:10]]
    write(storage, "retried-batch", retried)  # a retried Lambda batch's copies
    report = verify(store, storage)
    assert report.problems == []
    assert report.checks == ["archive"]
    assert report.counts["archive"] == {
        "rows": len(events) + len(retried),
        "behind": 0,
        "copies": len(retried),
    }


def test_an_archive_on_s3_verifies_and_locates_an_altered_row(
    s3_storage: Any, store: MemoryEventStore, events: list[RecordedEvent]
) -> None:
    day = [e for e in events if e.recorded_at[:10] == events[0].recorded_at[:10]]
    rest = [e for e in events if e not in day]
    for name, group in groupby(rest, key=lambda event: event.recorded_at[:10]):
        write(s3_storage, f"batch-{name}", list(group))
    key = write(s3_storage, "first-day", day)
    assert verify(store, s3_storage).problems == []
    write(s3_storage, "first-day", day, with_cell(0, "idempotency_key", "forged"))
    kinds = {(p.kind, p.location) for p in verify(store, s3_storage).problems}
    assert (HASH_MISMATCH, f"s3://{s3_storage.bucket}/{key} row 0") in kinds


def test_one_byte_of_a_row_changed(
    storage: LocalArchiveStorage, store: MemoryEventStore, events: list[RecordedEvent]
) -> None:
    day = [e for e in events if e.recorded_at[:10] == events[0].recorded_at[:10]]
    archive_all(storage, events)
    flip = with_cell(2, "payload", lambda text: text[:10] + chr(ord(text[10]) ^ 1) + text[11:])
    key = write(storage, f"batch-{day[0].recorded_at[:10]}", day, flip)
    report = verify(store, storage)
    where = f"{storage.location}/{key} row 2"
    target = day[2]
    assert ("archive", HASH_MISMATCH, target.stream_id, target.version, where) in found(report)
    assert ("archive", ARCHIVE_MISMATCH, target.stream_id, target.version, where) in found(report)
    mismatch = next(p for p in report.problems if p.kind == ARCHIVE_MISMATCH)
    assert mismatch.detail == "differs from the events table in payload"
    assert mismatch.event_id == target.event_id


def test_an_altered_hash_breaks_the_archived_chain(
    storage: LocalArchiveStorage, store: MemoryEventStore, events: list[RecordedEvent]
) -> None:
    stream = store.load(events[0].stream_id)
    others = [e for e in events if e.stream_id != stream[0].stream_id]
    archive_all(storage, others)
    for event in stream:  # one object per event of this stream, the second one altered
        tamper = with_cell(0, "hash", "f" * 64) if event.version == 2 else None
        write(storage, f"one-{event.version}", [event], tamper)
    kinds = [(p.kind, p.version) for p in verify(store, storage).problems]
    assert kinds == [(HASH_MISMATCH, 2), (PREV_HASH_MISMATCH, 3), (ARCHIVE_MISMATCH, 2)]


def test_a_missing_event_is_found_and_recent_ones_are_lag(
    storage: LocalArchiveStorage, store: MemoryEventStore, events: list[RecordedEvent]
) -> None:
    lost = next(e for e in events if e.version == 2 and len(store.load(e.stream_id)) > 2)
    late = events[-2:]  # recorded last: not archived yet
    archive_all(storage, [e for e in events if e != lost and e not in late])
    report = verify(store, storage)
    found_kinds = {(p.check, p.kind, p.stream_id, p.version) for p in report.problems}
    assert ("archive", ARCHIVE_MISSING, lost.stream_id, lost.version) in found_kinds
    assert ("archive", VERSION_GAP, lost.stream_id, lost.version + 1) in found_kinds
    assert not any(p.version == late[-1].version and p.stream_id == late[-1].stream_id
                   for p in report.problems)  # fmt: skip
    assert report.counts["archive"]["behind"] == len(late)


def test_an_event_the_table_does_not_have_is_extra(
    storage: LocalArchiveStorage, history: LedgerHistory, events: list[RecordedEvent]
) -> None:
    archive_all(storage, events)
    gone = events[0].stream_id
    table = MemoryEventStore()
    for stream in history.streams():
        if stream[0].stream_id != gone:
            table.append(stream)
    report = verify(table, storage)
    assert {(p.kind, p.stream_id) for p in report.problems} == {(ARCHIVE_EXTRA, gone)}
    assert len(report.problems) == len(history.store.load(gone))


def test_two_different_rows_for_one_version_conflict(
    storage: LocalArchiveStorage, store: MemoryEventStore, events: list[RecordedEvent]
) -> None:
    archive_all(storage, events)
    key = write(storage, "forged", [events[0]], with_cell(0, "correlation_id", "forged"))
    report = verify(store, storage)
    conflict = [p for p in report.problems if p.kind == ARCHIVE_CONFLICT]
    assert len(conflict) == 1
    assert (conflict[0].stream_id, conflict[0].version) == (events[0].stream_id, 1)
    assert key in (conflict[0].location or "") or key in conflict[0].detail


def test_compacted_objects_hold_each_event_once(
    storage: LocalArchiveStorage, store: MemoryEventStore, events: list[RecordedEvent]
) -> None:
    archive_all(storage, events[1:])
    write(storage, f"{COMPACTED_PREFIX}aaaa-00000", events[:1])
    write(storage, f"{COMPACTED_PREFIX}bbbb-00000", events[:1])
    report = verify(store, storage)
    assert [(p.kind, p.stream_id, p.version) for p in report.problems] == [
        (ARCHIVE_DUPLICATE, events[0].stream_id, 1)
    ]


def test_reordered_rows_are_located(
    storage: LocalArchiveStorage, store: MemoryEventStore, events: list[RecordedEvent]
) -> None:
    """Rows 0 and 1 of one object swap their version numbers."""
    day = [e for e in events if e.recorded_at[:10] == events[0].recorded_at[:10]]
    same = [e for e in day if e.stream_id == day[0].stream_id][:2]
    assert len(same) == 2
    rest = [e for e in events if e not in same]
    archive_all(storage, rest)

    def swap(table: pa.Table) -> pa.Table:
        versions = table.column("version").to_pylist()
        versions[0], versions[1] = versions[1], versions[0]
        index = table.schema.get_field_index("version")
        return table.set_column(
            index, table.schema.field("version"), pa.array(versions, pa.int64())
        )

    key = write(storage, "swapped", same, swap)
    problems = verify(store, storage).problems
    at = {(p.kind, p.version): p.location for p in problems}
    for version, row in ((1, 1), (2, 0)):
        assert at[(HASH_MISMATCH, version)] == f"{storage.location}/{key} row {row}"
        assert at[(ARCHIVE_MISMATCH, version)] == f"{storage.location}/{key} row {row}"


def test_a_row_that_is_not_an_event_is_located(
    storage: LocalArchiveStorage, store: MemoryEventStore, events: list[RecordedEvent]
) -> None:
    archive_all(storage, events[1:])

    table = events_to_table(events[:1], [decode_event(events[0])])
    index = table.schema.get_field_index("hash")
    damaged = table.set_column(index, pa.field("hash", pa.string()), pa.array([None], pa.string()))
    key = f"{day_prefix(date.fromisoformat(events[0].recorded_at[:10]))}damaged.parquet"
    sink = pa.BufferOutputStream()
    pq.write_table(damaged, sink)  # written by something else than the archive's writer
    storage.put_bytes(key, bytes(sink.getvalue()))
    problems = verify(store, storage).problems
    assert (UNREADABLE_EVENT, f"{storage.location}/{key} row 0") in {
        (p.kind, p.location) for p in problems
    }


def test_chains_from_the_archive_alone(
    storage: LocalArchiveStorage, events: list[RecordedEvent]
) -> None:
    """What an auditor holding only the Parquet objects can check: no events table."""
    keys = archive_all(storage, events)
    clean = verify_archive_chains(storage)
    assert (clean.rows, clean.problems) == (len(events), [])
    assert clean.streams == len({event.stream_id for event in events})
    day = [e for e in events if e.recorded_at[:10] == events[0].recorded_at[:10]]
    write(storage, keys[0].rsplit("/", 1)[1].removesuffix(".parquet"), day,
          with_cell(1, "actor_id", "someone-else"))  # fmt: skip
    [problem] = verify_archive_chains(storage).problems
    assert (problem.kind, problem.stream_id, problem.version) == (
        HASH_MISMATCH,
        day[1].stream_id,
        day[1].version,
    )
    assert problem.location == f"{storage.location}/{keys[0]} row 1"


def rechained(events: list[RecordedEvent]) -> list[RecordedEvent]:
    """``events`` with every hash and link recomputed (a history the ledger could have written)."""
    chained, prev_hash = [], GENESIS_HASH
    for event in events:
        event = replace(event, prev_hash=prev_hash)
        event = replace(event, hash=event_hash(event))
        chained.append(event)
        prev_hash = event.hash
    return chained


@pytest.mark.parametrize(
    ("actor_id", "stored_as"),
    [('agent "7"', 'agent \\"7\\"'), ("agent\\7", "agent\\\\7")],
    ids=["quote", "backslash"],
)
def test_a_value_stored_as_its_json_escaping_is_found(
    storage: LocalArchiveStorage, history: LedgerHistory, actor_id: str, stored_as: str
) -> None:
    """Stored escaped, the value assembles exactly the event's JSON text, so its hash matches:
    only escaping the stored value (as the exact check does) shows it was changed."""
    stream = list(history.streams()[0])  # the session's history stays as recorded
    stream[1] = replace(stream[1], actor=Actor("agent", actor_id, model="router"))
    stream = rechained(stream)
    assert json.dumps(actor_id, ensure_ascii=False) == f'"{stored_as}"'
    key = write(storage, "batch", stream, with_cell(1, "actor_id", stored_as))
    [problem] = verify_archive_chains(storage).problems
    assert (problem.kind, problem.version, problem.location) == (
        HASH_MISMATCH,
        2,
        f"{storage.location}/{key} row 1",
    )


def test_the_survey_hands_only_doubtful_streams_to_the_exact_check(
    s3_storage: S3ArchiveStorage, events: list[RecordedEvent]
) -> None:
    keys = archive_all(s3_storage, events)
    streams = {event.stream_id for event in events}
    survey = surveyed_chains(s3_storage)
    assert (survey.streams, survey.rows, survey.suspects) == (
        len(streams),
        len(events),
        frozenset(),
    )

    day = [e for e in events if e.recorded_at[:10] == events[0].recorded_at[:10]]
    write(s3_storage, "retried-batch", day[:1])  # a copy awaiting compaction
    name = keys[-1].rsplit("/", 1)[1].removesuffix(".parquet")
    last_day = [e for e in events if e.recorded_at[:10] == events[-1].recorded_at[:10]]
    respaced, altered = last_day[0], last_day[-1]
    assert respaced.stream_id != altered.stream_id
    tampers = [with_cell(0, "payload", lambda text: text + " "),
               with_cell(len(last_day) - 1, "correlation_id", "another-flow")]  # fmt: skip
    write(s3_storage, name, last_day, lambda table: tampers[1](tampers[0](table)))
    survey = surveyed_chains(s3_storage)
    assert survey.suspects == {day[0].stream_id, respaced.stream_id, altered.stream_id}
    assert survey.rows == len(events) + 1
    # The copy is checked once; the re-spaced payload is the same JSON document: no problem.
    [problem] = verify_archive_chains(s3_storage).problems
    assert (problem.kind, problem.stream_id, problem.version) == (
        HASH_MISMATCH,
        altered.stream_id,
        altered.version,
    )
