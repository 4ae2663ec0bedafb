"""The analytics Lambda (handlers/analytics.py) on Lambda-shaped tumbling-window Kinesis events,
without a database: state, partial batch responses and the EMF metrics it prints.

Records are the events table's change records (``tests.kinesis_events``, validated with
Powertools' own model); the EMF documents are read back from stdout and parsed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers import analytics
from handlers.bootstrap import ConfigurationError
from ledger.envelope import RecordedEvent
from projections.analytics import NUMBER_FIELDS
from tests.analytics_events import expected_rows, window_history
from tests.kinesis_events import KinesisShard, change_record, kinesis_record, window_event
from tests.lambda_context import FakeLambdaContext

HISTORY = window_history()
CONTEXT = FakeLambdaContext("payledger-analytics")
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START, END = NOW - timedelta(minutes=2), NOW - timedelta(minutes=1)
SHARD_ID = "shardId-000000000000"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def invoke(
    records: Sequence[dict[str, Any]],
    state: dict[str, Any] | None = None,
    *,
    final: bool = False,
    start: datetime = START,
    end: datetime = END,
) -> dict[str, Any]:
    event = window_event(
        records, start=_iso(start), end=_iso(end), state=state, final=final, shard_id=SHARD_ID
    )
    response = analytics.process(event, None, CONTEXT)
    return json.loads(json.dumps(response))  # what Lambda keeps of it


def records_of(events: Sequence[RecordedEvent], shard: KinesisShard) -> list[dict[str, Any]]:
    return [change_record(event, shard) for event in events]


def emf_documents(out: str) -> list[dict[str, Any]]:
    documents = []
    for line in out.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            documents.append(document)
    return documents


def window_documents(out: str) -> list[dict[str, Any]]:
    return [doc for doc in emf_documents(out) if "AnalyticsRecordsReceived" not in doc]


def failed(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_invocations_carry_the_state_and_the_final_one_emits_the_window(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shard = KinesisShard(SHARD_ID)
    first = invoke(records_of(HISTORY[:10], shard))
    second = invoke(records_of(HISTORY[10:], shard), first["state"])
    assert window_documents(capsys.readouterr().out) == []  # nothing before the final invoke

    final = invoke([], second["state"], final=True)
    assert failed(final) == []
    assert final["state"] == second["state"]
    (totals, *by_currency) = window_documents(capsys.readouterr().out)

    directive = totals["_aws"]["CloudWatchMetrics"][0]
    assert totals["_aws"]["Timestamp"] == int(START.timestamp() * 1000)
    assert directive["Namespace"] == os.environ["POWERTOOLS_METRICS_NAMESPACE"]
    assert directive["Dimensions"] == [["service"]]
    assert totals["service"] == "payledger"
    assert {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}["ApprovalRate"] == (
        "Percent"
    )
    assert {name: totals[name] for name in ("PaymentsInitiated", "PaymentsAuthorized")} == {
        "PaymentsInitiated": [6.0],
        "PaymentsAuthorized": [3.0],
    }
    assert totals["PaymentsDeclined"] == [3.0]  # two risk declines, one processor failure
    assert (totals["ApprovalRate"], totals["DeclineRate"]) == ([50.0], [50.0])
    assert (totals["RiskReview"], totals["PaymentsCaptured"]) == ([1.0], [2.0])

    expected = expected_rows(HISTORY)
    volumes = {doc["currency"]: doc for doc in by_currency}
    assert sorted(volumes) == ["BHD", "EUR", "JPY"]
    for currency, document in volumes.items():
        (dimensions,) = document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        assert sorted(dimensions) == ["currency", "service"]
        rows = [row for (_, row_currency), row in expected.items() if row_currency == currency]
        assert document["InitiatedVolume"] == [float(sum(r["initiated_minor"] for r in rows))]
        assert document["CapturedVolume"] == [float(sum(r["captured_minor"] for r in rows))]
        assert document["RefundedVolume"] == [float(sum(r["refunded_minor"] for r in rows))]


def test_a_redelivered_batch_counts_nothing_twice(capsys: pytest.CaptureFixture[str]) -> None:
    shard = KinesisShard(SHARD_ID)
    records = records_of(HISTORY, shard)
    once = invoke(records)
    twice = invoke(list(reversed(records)), once["state"])
    duplicates = NUMBER_FIELDS.index("duplicate_count")

    def counted(state: dict[str, Any]) -> list[Any]:
        return [
            [*row[:2], [n for i, n in enumerate(row[2]) if i != duplicates], row[3]]
            for row in state["rows"]
        ]

    assert counted(twice["state"]) == counted(once["state"])
    assert twice["state"]["seen"] == once["state"]["seen"]
    assert sum(row[2][duplicates] for row in twice["state"]["rows"]) == len(HISTORY)
    invocations = emf_documents(capsys.readouterr().out)
    assert invocations[-1]["AnalyticsEventsDuplicate"] == [float(len(HISTORY))]
    assert invocations[-1]["AnalyticsEventsCounted"] == [0.0]


def test_a_poison_record_fails_with_the_later_records_of_its_key() -> None:
    shard = KinesisShard(SHARD_ID)
    first_a, second_a = (
        HISTORY[0],
        next(e for e in HISTORY[1:] if e.stream_id == HISTORY[0].stream_id),
    )
    other = next(event for event in HISTORY if event.stream_id != first_a.stream_id)
    records = [
        change_record(first_a, shard),
        kinesis_record(b'{"not": "a change"}', first_a.stream_id, shard),
        change_record(other, shard),
        change_record(second_a, shard),
    ]
    response = invoke(records)
    sequence_numbers = [record["kinesis"]["sequenceNumber"] for record in records]
    assert failed(response) == [sequence_numbers[1], sequence_numbers[3]]

    event_counts = [numbers[0] for _, _, numbers, _ in response["state"]["rows"]]
    assert sum(event_counts) == 2  # first_a and other; not the poison, not second_a


def test_changes_other_than_inserts_are_ignored() -> None:
    shard = KinesisShard(SHARD_ID)
    records = [
        change_record(HISTORY[0], shard, event_name="MODIFY"),
        change_record(HISTORY[1], shard, event_name="REMOVE"),
    ]
    response = invoke(records)
    assert failed(response) == []
    assert response["state"]["rows"] == []


def test_a_final_invoke_with_failed_records_emits_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shard = KinesisShard(SHARD_ID)
    poison = kinesis_record(b"\xff", HISTORY[0].stream_id, shard)
    response = invoke([*records_of(HISTORY[:3], shard), poison], final=True)
    assert failed(response) == [poison["kinesis"]["sequenceNumber"]]
    assert window_documents(capsys.readouterr().out) == []
    assert response["state"]["rows"]  # the state goes on: the retry emits the whole window


def test_a_window_without_outcomes_emits_counts_but_no_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shard = KinesisShard(SHARD_ID)
    invoke(records_of(HISTORY[:1], shard), final=True)
    (totals, by_currency) = window_documents(capsys.readouterr().out)
    assert totals["PaymentsInitiated"] == [1.0]
    assert "ApprovalRate" not in totals
    assert by_currency["InitiatedVolume"] == [1000.0]


def test_an_empty_window_emits_zero_counts(capsys: pytest.CaptureFixture[str]) -> None:
    invoke([], final=True)
    (totals,) = window_documents(capsys.readouterr().out)
    assert totals["PaymentsAuthorized"] == [0.0]


def test_a_window_older_than_cloudwatch_accepts_is_not_emitted(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    old = NOW - timedelta(days=15)
    shard = KinesisShard(SHARD_ID)
    response = invoke(
        records_of(HISTORY[:2], shard), final=True, start=old, end=old + timedelta(minutes=1)
    )
    assert failed(response) == []
    assert window_documents(capsys.readouterr().out) == []
    assert "window outside CloudWatch's time range: not emitted" in caplog.messages


def test_an_event_without_a_window_is_a_configuration_error() -> None:
    event = window_event([], start=_iso(START), end=_iso(END))
    del event["window"]
    with pytest.raises(ConfigurationError, match="TumblingWindowInSeconds"):
        analytics.process(event, None, CONTEXT)


def test_the_handler_runs_through_powertools_and_returns_the_state(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shard = KinesisShard(SHARD_ID)
    event = window_event(
        records_of(HISTORY[:4], shard), start=_iso(START), end=_iso(END), shard_id=SHARD_ID
    )
    response = analytics.handler(event, CONTEXT)
    assert response["batchItemFailures"] == []
    assert len(response["state"]["rows"]) == 2
