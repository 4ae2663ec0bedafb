"""The auditors' ``events`` table on DuckDB: one-day queries open only that day's objects, the
reports give the answers the events imply (duplicates included), old objects stay readable as
the schema grows, and an empty archive is an empty table."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from contextlib import closing
from datetime import date
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archive.audit import DuckDBAudit
from archive.engine import connect, files_read
from archive.layout import EVENTS_PREFIX, day_of_key, day_prefix
from archive.local import LocalArchiveStorage
from archive.parquet import encode
from archive.reports import REPORTS, report_named
from archive.schema import COLUMNS, Column, events_to_table
from archive.storage import ArchiveStorage
from ledger.decoding import decode_event
from tests.archive_events import LedgerHistory
from tests.kinesis_events import KinesisShard, change_record, kinesis_event

DAY_QUERY = "SELECT count(*) FROM events WHERE year = ? AND month = ? AND day = ?"


@pytest.fixture
def archived(
    storage: ArchiveStorage, history: LedgerHistory, archive_handler: ModuleType
) -> ArchiveStorage:
    """The history archived in batches of 4, the first batch delivered twice under another
    range (copies the reports must not count)."""
    shard = KinesisShard()
    records = [change_record(event, shard) for event in history.events()]
    batches = [records[start : start + 4] for start in range(0, len(records), 4)]
    batches.append([change_record(event, shard) for event in history.events()[:4]])
    for batch in batches:
        archive_handler.process(kinesis_event(batch), storage)
    return storage


def _keys(storage: ArchiveStorage, day: date | None = None) -> set[str]:
    prefix = day_prefix(day) if day else EVENTS_PREFIX
    return {item.key for item in storage.list(prefix, limit=10_000)}


def test_a_one_day_query_opens_only_that_days_objects(archived: ArchiveStorage) -> None:
    all_keys = _keys(archived)
    day = date(2026, 11, 3)
    wanted = _keys(archived, day)
    assert 0 < len(wanted) < len(all_keys)
    source = archived.duckdb_source()
    with closing(connect(archived, file_log=True)) as connection:
        (count,) = connection.execute(DAY_QUERY, ["2026", "11", "03"]).fetchone() or (0,)
        opened = files_read(connection)
        plan = connection.execute("EXPLAIN ANALYZE " + DAY_QUERY, ["2026", "11", "03"]).fetchall()
    assert count > 0
    assert {source.url(key) for key in wanted} == set(opened)
    scanned = re.search(r"Scanning Files: (\d+)/(\d+)", plan[0][1])
    assert scanned is not None
    assert (int(scanned[1]), int(scanned[2])) == (len(wanted), len(all_keys))


def test_a_period_report_opens_only_the_periods_objects(archived: ArchiveStorage) -> None:
    report = report_named("events_per_day")
    values = report.bind({"start_day": "2026-11-02", "end_day": "2026-11-03"})
    wanted = _keys(archived, date(2026, 11, 2)) | _keys(archived, date(2026, 11, 3))
    source = archived.duckdb_source()
    with closing(connect(archived, file_log=True)) as connection:
        rows = connection.execute(report.sql, values).fetchall()
        opened = files_read(connection)
    assert [row[0] for row in rows] == ["2026-11-02", "2026-11-03"]
    assert set(opened) == {source.url(key) for key in wanted}


def _by_day(history: LedgerHistory) -> dict[str, list[Any]]:
    days: dict[str, list[Any]] = defaultdict(list)
    for event in history.events():
        days[event.recorded_at[:10]].append(event)
    return days


def _payload(event: Any) -> dict[str, Any]:
    return json.loads(event.payload)  # type: ignore[no-any-return]


def test_the_reports_answer_what_the_events_say(
    archived: ArchiveStorage, history: LedgerHistory
) -> None:
    audit = DuckDBAudit(archived)
    events = history.events()
    period = {"start_day": "2026-11-01", "end_day": "2026-11-30"}

    def run(name: str, **arguments: str) -> list[dict[str, Any]]:
        report = report_named(name)
        result = audit.run(report.sql, report.bind(arguments))
        return [dict(zip(result.columns, row, strict=True)) for row in result.rows]

    per_day = run("events_per_day", **period)
    assert {row["recorded_day"]: row["events"] for row in per_day} == {
        day: len(items) for day, items in _by_day(history).items()
    }
    assert sum(row["rows_stored"] for row in per_day) == len(events) + 4  # copies, not events

    actions = run("agent_actions", actor_id="fraud-agent", **period)
    fraud = [event for event in events if event.actor.id == "fraud-agent"]
    assert [row["event_id"] for row in actions] == [event.event_id for event in fraud]
    assert {row["decision"] for row in actions} == {"approve", "review", "decline"}

    declined = run("declined_risk_assessments", **period)
    expected = [
        event
        for event in events
        if event.event_type == "RiskAssessed" and _payload(event)["decision"] == "decline"
    ]
    assert [row["event_id"] for row in declined] == [event.event_id for event in expected]
    assert {row["actor_kind"] for row in declined} == {"agent", "operator"}

    above = run("payments_above_threshold", currency="EUR", amount_minor="5000", **period)
    initiated = [e for e in events if e.event_type == "PaymentInitiated"]
    big = [e for e in initiated if _payload(e)["currency"] == "EUR"]
    big = [e for e in big if _payload(e)["amount_minor"] > 5000]
    assert sorted(row["payment_id"] for row in above) == sorted(
        _payload(e)["payment_id"] for e in big
    )

    ratio = run("refund_ratio_by_merchant", **period)
    totals: Counter[tuple[str, str, str]] = Counter()
    for event in events:
        if event.event_type in ("PaymentCaptured", "PaymentRefunded"):
            payload = _payload(event)
            totals[payload["merchant_id"], payload["currency"], event.event_type] += payload[
                "amount_minor"
            ]
    for row in ratio:
        captured = totals[row["merchant_id"], row["currency"], "PaymentCaptured"]
        refunded = totals[row["merchant_id"], row["currency"], "PaymentRefunded"]
        assert (row["captured_minor"], row["refunded_minor"]) == (captured, refunded)
        assert row["refund_ratio"] == round(refunded / captured, 4)

    assert run("captures_exceeding_authorization") == []

    history_rows = run("payment_history", payment_id="pay-000")
    assert [row["version"] for row in history_rows] == list(range(1, len(history_rows) + 1))
    assert [row["hash"] for row in history_rows] == [
        event.hash for event in history.store.load("payment#pay-000")
    ]

    stuck = run("stuck_authorized", as_of="2026-12-31T00:00:00Z")
    still_authorized = [
        stream[-1] for stream in history.streams() if stream[-1].event_type == "PaymentAuthorized"
    ]
    assert sorted(row["payment_id"] for row in stuck) == sorted(
        event.stream_id.removeprefix("payment#") for event in still_authorized
    )
    assert run("stuck_authorized", as_of="2026-11-01T00:00:00Z") == []


def test_the_reports_run_on_an_empty_archive(storage: ArchiveStorage) -> None:
    audit = DuckDBAudit(storage)
    samples = {
        "actor_id": "a",
        "start_day": "2026-01-01",
        "end_day": "2026-01-02",
        "currency": "EUR",
        "amount_minor": "1",
        "payment_id": "p",
        "as_of": "2026-01-01T00:00:00Z",
    }
    for report in REPORTS:
        values = report.bind({p.name: samples[p.name] for p in report.parameters})
        result = audit.run(report.sql, values)
        assert result.rows == []
        assert result.columns


def test_objects_written_before_a_column_existed_read_it_as_null(
    local_storage: LocalArchiveStorage, history: LedgerHistory
) -> None:
    events = history.events()
    v1_objects = _write_day(local_storage, events[:5], "v1")
    later = (*COLUMNS, Column("risk_band", pa.string(), True, "string", 23, "VARCHAR"))
    v2_table = events_to_table(events[5:10], [decode_event(e) for e in events[5:10]])
    v2_table = v2_table.append_column(
        pa.field("risk_band", pa.string(), metadata={b"PARQUET:field_id": b"23"}),
        pa.array(["high"] * 5),
    )
    v2_key = f"{day_prefix(date(2026, 11, 1))}v2.parquet"
    (local_storage.root / v2_key).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(v2_table, local_storage.root / v2_key)

    with closing(connect(local_storage, columns=later)) as connection:
        rows = connection.execute(
            "SELECT risk_band, count(*) FROM events GROUP BY 1 ORDER BY 1 NULLS FIRST"
        ).fetchall()
    assert rows == [(None, 5), ("high", 5)]
    with closing(connect(local_storage)) as connection:  # today's readers ignore the new column
        (count,) = connection.execute("SELECT count(*) FROM events").fetchone() or (0,)
        columns = [row[0] for row in connection.execute("DESCRIBE events").fetchall()]
    assert count == 10
    assert "risk_band" not in columns
    assert v1_objects


def test_new_event_types_and_payload_fields_do_not_break_old_data(
    local_storage: LocalArchiveStorage, history: LedgerHistory
) -> None:
    old = history.events()[:6]
    _write_day(local_storage, old, "old")
    future = events_to_table(old[:1], [decode_event(old[0])])
    future = future.set_column(
        future.schema.get_field_index("event_type"),
        future.schema.field("event_type"),
        pa.array(["PaymentDisputed"]),
    )
    payload = json.dumps({"merchant_id": "m-1", "dispute_reason": "fraud"})
    future = future.set_column(
        future.schema.get_field_index("payload"),
        future.schema.field("payload"),
        pa.array([payload]),
    )
    future = future.set_column(
        future.schema.get_field_index("event_id"),
        future.schema.field("event_id"),
        pa.array(["e-x"]),
    )
    local_storage.put_bytes(f"{day_prefix(date(2026, 11, 1))}future.parquet", encode(future))
    with closing(connect(local_storage)) as connection:
        rows = connection.execute(
            "SELECT event_type, json_extract_scalar(payload, '$.dispute_reason') FROM events"
            " WHERE year = '2026' ORDER BY event_type"
        ).fetchall()
    assert ("PaymentDisputed", "fraud") in rows
    assert all(reason is None for kind, reason in rows if kind != "PaymentDisputed")
    for report in REPORTS:
        if not report.parameters:
            DuckDBAudit(local_storage).run(report.sql, [])


def _write_day(storage: LocalArchiveStorage, events: list[Any], name: str) -> list[str]:
    keys = []
    for day_text in sorted({event.recorded_at[:10] for event in events}):
        chosen = [event for event in events if event.recorded_at[:10] == day_text]
        table = events_to_table(chosen, [decode_event(event) for event in chosen])
        key = f"{day_prefix(date.fromisoformat(day_text))}{name}.parquet"
        storage.put_bytes(key, encode(table))
        assert day_of_key(key) is not None
        keys.append(key)
    return keys
