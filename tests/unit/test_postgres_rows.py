"""The pure half of the PostgreSQL projection: classification, checks, rows (no server)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger.domain.errors import ValidationError
from ledger.domain.events import decode_payload
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    InitiatePayment,
    RefundPayment,
    SettlePayment,
)
from ledger.domain.timestamps import format_timestamp
from ledger.envelope import Actor, RecordedEvent
from ledger.service import PaymentService, fold
from projections.core import ApplyResult
from projections.postgres.migrate import load_migrations
from projections.postgres.partitions import MonthlyPartitions
from projections.postgres.projection import PostgresApplyResult, _payment_streams
from projections.postgres.rows import (
    BatchRows,
    Gap,
    StreamHead,
    agent_metadata,
    find_gaps,
    gap_fill,
    payment_row,
    plan_batch,
    snapshot_from_row,
)
from projections.postgres.tables import (
    AGENT_ACTION_COLUMNS,
    PAYMENT_COLUMNS,
    POSITION_COLUMNS,
    POSTING_COLUMNS,
    check_schema_name,
)
from tests.unit.conftest import context

API = Actor(kind="api", id="checkout")
OPERATOR = Actor(kind="operator", id="ops-1")


@pytest.fixture
def history(service: PaymentService) -> list[RecordedEvent]:
    """pay-1 in 7 events: initiated, assessed and authorized (by the agent), captured in part,
    settled (the rest of the hold released, then settled), refunded in part."""
    for index, (command, actor) in enumerate(
        [
            (InitiatePayment("pay-1", "10.00", "EUR", "m-1", "c-1", metadata={"o": 1}), API),
            (AssessRisk("pay-1", "approve", "0.10", "low risk", {"rules": 2}), None),
            (AuthorizePayment("pay-1", "acme"), None),
            (CapturePayment("pay-1", "4.00"), API),
            (SettlePayment("pay-1"), API),
            (RefundPayment("pay-1", "1.00"), API),
        ]
    ):
        service.execute(
            command, context(f"k-{index}") if actor is None else context(f"k-{index}", actor)
        )
    return service.load("pay-1")


def plan(
    events: list[RecordedEvent],
    heads: dict[str, StreamHead] | None = None,
    fills: dict[str, list[RecordedEvent]] | None = None,
) -> tuple[BatchRows, ApplyResult]:
    result = ApplyResult()
    return plan_batch(by_stream(events), heads or {}, result, fills), result


def by_stream(events: list[RecordedEvent]) -> dict[str, list[RecordedEvent]]:
    streams: dict[str, list[RecordedEvent]] = {}
    for event in events:
        streams.setdefault(event.stream_id, []).append(event)
    return streams


def time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def as_read(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A typed payments row as ``tables.payment_select`` reads it back (numbers and times as
    text), which is what ``snapshot_from_row`` takes."""
    return tuple(
        format_timestamp(value)
        if isinstance(value, datetime)
        else str(value)
        if isinstance(value, Decimal)
        else value
        for value in row
    )


def head_after(events: list[RecordedEvent]) -> dict[str, StreamHead]:
    snapshot = fold(events)
    assert snapshot is not None
    return {events[0].stream_id: StreamHead(snapshot.version, snapshot.head_hash, snapshot)}


def test_rows_of_a_whole_history(history: list[RecordedEvent]) -> None:
    rows, result = plan(history)
    assert (result.applied, result.duplicates, result.failures) == (7, 0, {})
    assert [snapshot_from_row(as_read(row)) for row in rows.payments] == [fold(history)]
    assert rows.positions == [
        ("payment#pay-1", 7, history[-1].event_id, history[-1].hash, time(history[-1].recorded_at))
    ]
    # authorize 2 + capture 2 + settle (release 2 + settle 2) + refund 2 lines
    assert [(line[0], line[1]) for line in rows.postings] == [
        (event.event_id, number)
        for event in history
        for number in range(1, len(json.loads(event.payload).get("postings", [])) + 1)
    ]
    assert all(len(line) == len(POSTING_COLUMNS) for line in rows.postings)
    assert [action[7] for action in rows.agent_actions] == ["RiskAssessed", "PaymentAuthorized"]
    assert all(len(action) == len(AGENT_ACTION_COLUMNS) for action in rows.agent_actions)
    assert len(rows.payments[0]) == len(PAYMENT_COLUMNS)
    assert len(rows.positions[0]) == len(POSITION_COLUMNS)


def test_a_batch_resumes_from_the_stored_head(history: list[RecordedEvent]) -> None:
    rows, result = plan(history, head_after(history[:3]))
    assert (result.applied, result.duplicates) == (4, 3)
    assert [snapshot_from_row(as_read(row)) for row in rows.payments] == [fold(history)]
    assert {line[0] for line in rows.postings} == {
        e.event_id for e in history[3:] if "postings" in e.payload
    }


def test_only_duplicates_write_nothing(history: list[RecordedEvent]) -> None:
    rows, result = plan(history[:2], head_after(history))
    assert (result.applied, result.duplicates, result.failures) == (0, 2, {})
    assert rows == BatchRows()


def test_a_gap_fails_the_stream_from_the_gap_and_keeps_what_came_before(
    history: list[RecordedEvent],
) -> None:
    rows, result = plan([*history[:2], *history[3:]])
    failure = result.failures["payment#pay-1"]
    assert (failure.version, failure.event_id) == (4, history[3].event_id)
    assert failure.reason == "version_gap: version 4 follows applied version 2"
    assert result.applied == 2
    assert [snapshot_from_row(as_read(row)) for row in rows.payments] == [fold(history[:2])]


def test_gaps_are_the_streams_whose_first_new_event_does_not_follow_the_head(
    history: list[RecordedEvent],
) -> None:
    head = head_after(history[:2])
    assert find_gaps(by_stream(history[2:]), head) == {}
    assert find_gaps(by_stream(history[:2]), head) == {}  # only duplicates
    assert find_gaps(by_stream([history[1], *history[4:]]), head) == {
        "payment#pay-1": Gap(2, history[4])
    }
    assert find_gaps(by_stream(history[2:]), {}) == {"payment#pay-1": Gap(0, history[2])}


def test_a_gap_fill_is_the_missing_versions_or_nothing(history: list[RecordedEvent]) -> None:
    gap = Gap(2, history[5])
    assert gap_fill(gap, history[:5]) == history[2:5]
    assert gap_fill(gap, history[:4]) is None  # the store holds too few
    assert gap_fill(Gap(0, history[3]), history[:3]) == history[:3]


def test_a_fill_is_applied_before_the_delivered_events_as_if_delivered(
    history: list[RecordedEvent],
) -> None:
    delivered, result = plan(history[2:], head_after(history[:2]))
    filled, filled_result = plan(
        history[4:], head_after(history[:2]), {"payment#pay-1": history[2:4]}
    )
    assert filled.filled == 2
    assert replace(filled, filled=0) == delivered
    assert (filled_result.applied, filled_result.failures) == (3, {})
    assert result.applied == 5


def test_fill_versions_the_head_already_holds_are_skipped(history: list[RecordedEvent]) -> None:
    # The gap was seen at version 2; another applier reached version 3 before the fill applied.
    rows, result = plan(history[4:], head_after(history[:3]), {"payment#pay-1": history[2:4]})
    assert (rows.filled, result.applied, result.duplicates, result.failures) == (1, 3, 0, {})
    assert [snapshot_from_row(as_read(row)) for row in rows.payments] == [fold(history)]


@pytest.mark.parametrize(
    ("fill", "reason"),
    [
        (lambda h: [replace(h[2], prev_hash="0" * 64), h[3]], "at version 3: chain_broken"),
        (lambda h: [h[2], replace(h[3], payload="[]")], "at version 4: undecodable_event"),
        (lambda h: [h[2], replace(h[3], hash="0" * 64)], "at version 5: chain_broken: deliv"),
        (lambda h: [h[3]], "at version 3: validation_error: the event store's version 4"),
    ],
)
def test_a_fill_that_cannot_be_applied_whole_is_refused_and_leaves_no_rows(
    history: list[RecordedEvent],
    fill: Callable[[list[RecordedEvent]], list[RecordedEvent]],
    reason: str,
) -> None:
    rows, result = plan(
        history[1:2] + history[4:], head_after(history[:2]), {"payment#pay-1": fill(history)}
    )
    failure = result.failures["payment#pay-1"]
    assert (failure.version, failure.event_id) == (5, history[4].event_id)
    assert failure.reason.startswith(f"gap_fill_refused: {reason}"), failure.reason
    assert rows == BatchRows()
    assert (result.applied, result.duplicates) == (0, 1)


@pytest.mark.parametrize(
    ("version", "change", "reason"),
    [
        (3, {"payload": "[]"}, "undecodable_event: PaymentAuthorized v1 payload is invalid"),
        (3, {"event_type": "Nope"}, "undecodable_event: unknown event type 'Nope'"),
        (3, {"prev_hash": "0" * 64}, "chain_broken: prev_hash 000000000000…"),
        (3, {"recorded_at": "2026-11-21T12:00:00Z"}, "undecodable_event: recorded_at"),
        (3, {"occurred_at": "2026-13-21T12:00:00.000000Z"}, "undecodable_event: occurred_at"),
        (3, {"event_id": "a\x00b"}, "undecodable_event: the envelope holds a NUL"),
        (3, {"actor": Actor(kind="agent", id="a", model="m\x00")}, "undecodable_event: the env"),
        (2, {"payload": '{"decision":"approve","merchant_id":"m-1","reason":"r","score":"1e3"}'},
         "undecodable_event: risk score '1e3' is not a plain decimal"),
        (2, {"payload": '{"decision":"approve","merchant_id":"m","reason":"\\u0000","score":"1"}'},
         "undecodable_event: the payload holds a NUL"),
        (1, {"payload": '{"amount_minor":1,"currency":"EUR","customer_id":"c","merchant_id":"m",'
                        '"payment_id":"pay-2"}'},
         "undecodable_event: PaymentInitiated names another payment than its stream"),
        (3, {"event_type": "PaymentInitiated", "payload": '{"amount_minor":1,"currency":"EUR",'
             '"customer_id":"c","merchant_id":"m","payment_id":"pay-1"}'},
         "undecodable_event: PaymentInitiated at version 3: a payment stream starts with"),
        (1, {"event_type": "RiskAssessed", "payload": '{"decision":"approve","merchant_id":"m",'
             '"reason":"r","score":"1"}'},
         "undecodable_event: RiskAssessed at version 1: a payment stream starts with"),
    ],
)  # fmt: skip
def test_a_poison_event_fails_its_stream_from_there(
    history: list[RecordedEvent], version: int, change: dict[str, object], reason: str
) -> None:
    bad = replace(history[version - 1], **change)  # type: ignore[arg-type]
    events = [*history[: version - 1], bad, *history[version:]]
    rows, result = plan(events)
    failure = result.failures["payment#pay-1"]
    assert failure.version == version
    assert failure.reason.startswith(reason), failure.reason
    assert result.applied == version - 1
    assert len(rows.payments) == (1 if version > 1 else 0)


def test_an_escaped_backslash_before_u0000_is_not_a_nul(history: list[RecordedEvent]) -> None:
    payload = '{"decision":"approve","merchant_id":"m-1","reason":"C:\\\\u0000","score":"0.5"}'
    assert decode_payload("RiskAssessed", 1, payload).reason == "C:\\u0000"  # type: ignore[attr-defined]
    _, result = plan([history[0], replace(history[1], payload=payload)])
    assert (result.applied, result.failures) == (2, {})


def test_amounts_beyond_64_bits_are_refused(history: list[RecordedEvent]) -> None:
    document = json.loads(history[2].payload)
    document["amount_minor"] = 2**63
    rows, result = plan([*history[:2], replace(history[2], payload=json.dumps(document))])
    assert result.failures["payment#pay-1"].reason.startswith("undecodable_event: amount_minor")
    # The payments row is the state at the last applied version, not the refused one's.
    applied = fold(history[:2])
    assert applied is not None
    assert rows.payments == [payment_row(applied)]
    document["postings"][0]["amount_minor"] = 2**63
    document["amount_minor"] = 1
    _, result = plan([*history[:2], replace(history[2], payload=json.dumps(document))])
    assert result.failures["payment#pay-1"].reason.startswith("undecodable_event: posting amount")


def test_the_payments_row_round_trips_to_the_same_snapshot(history: list[RecordedEvent]) -> None:
    for prefix in range(1, len(history) + 1):
        snapshot = fold(history[:prefix])
        assert snapshot is not None
        assert snapshot_from_row(as_read(payment_row(snapshot))) == snapshot


def test_agent_metadata_is_the_payload_metadata_or_the_payload_without_postings(
    history: list[RecordedEvent],
) -> None:
    assessed = decode_payload("RiskAssessed", 1, history[1].payload)
    authorized = decode_payload("PaymentAuthorized", 1, history[2].payload)
    assert agent_metadata(assessed) == {"rules": 2}
    routed = agent_metadata(authorized)
    assert routed["processor"] == "acme"
    assert "postings" not in routed


def test_only_payment_streams_are_kept_each_in_version_order(
    history: list[RecordedEvent],
) -> None:
    result = PostgresApplyResult()
    foreign = replace(history[0], stream_id="merchant#m-1")
    streams = _payment_streams([history[2], foreign, history[0], history[1]], result)
    assert result.ignored == 1
    assert streams == {"payment#pay-1": history[:3]}


def test_monthly_partition_bounds_cross_the_year() -> None:
    text = MonthlyPartitions("views", "postings")._create("2026-12").as_string(None)
    assert '"views"."postings_y2026m12" PARTITION OF "views"."postings"' in text
    assert "FROM ('2026-12-01T00:00:00+00:00') TO ('2027-01-01T00:00:00+00:00')" in text


def test_schema_names_are_plain_identifiers() -> None:
    assert check_schema_name("payledger_views_2") == "payledger_views_2"
    for name in ("Payments", "1abc", "pg_views", "a-b", "x" * 49, 'a"; DROP', ""):
        with pytest.raises(ValidationError):
            check_schema_name(name)


def test_migrations_are_numbered_without_gaps_and_never_edited_by_loading() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert load_migrations() == migrations
    assert all(len(m.checksum) == 64 for m in migrations)
    assert "BEGIN;" not in "".join(m.sql for m in migrations)  # migrate() owns the transaction
