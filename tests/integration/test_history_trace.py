"""``replay`` shows who, when, why and the state after each event with what changed;
``--as-of`` cuts by recorded time; ``trace`` follows one flow across payments in recorded order.
In-process CLI on moto's DynamoDB."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cli
from cli import common
from cli.history import trace_steps
from ledger.domain.payment import AssessRisk, AuthorizePayment, CapturePayment, InitiatePayment
from ledger.dynamodb import DynamoDBEventStore
from ledger.envelope import Actor
from ledger.service import CommandContext, PaymentService
from tests.unit.conftest import START, FakeClock

CHECKOUT = Actor("api", "checkout")
FRAUD = Actor("agent", "fraud-agent", model="gbm", version="7")


@pytest.fixture
def flow(
    dynamodb_client: Any, events_table: str, monkeypatch: pytest.MonkeyPatch
) -> PaymentService:
    """Order 7 pays with two payments (a split tender); the fraud agent assesses both, the second
    because of the first's assessment. Another order's payment runs in between."""
    clock = FakeClock(START)
    service = PaymentService(DynamoDBEventStore(dynamodb_client, events_table), clock=clock)

    def run(
        command: Any, key: str, actor: Actor, correlation: str, cause: str | None = None
    ) -> str:
        clock.advance(timedelta(seconds=1))
        context = CommandContext(key, actor, correlation_id=correlation, causation_id=cause)
        return service.execute(command, context).events[0].event_id

    run(InitiatePayment("split-a", "30.00", "EUR", "m-1", "c-7"), "a-1", CHECKOUT, "order-7")
    run(InitiatePayment("split-b", "20.00", "EUR", "m-1", "c-7"), "b-1", CHECKOUT, "order-7")
    run(InitiatePayment("other", "5.00", "EUR", "m-2", "c-8"), "o-1", CHECKOUT, "order-8")
    first = run(AssessRisk("split-a", "approve", "0.1", "ok"), "a-2", FRAUD, "order-7")
    run(AssessRisk("split-b", "approve", "0.1", "same order"), "b-2", FRAUD, "order-7", first)
    run(AssessRisk("other", "approve", "0.3", "ok"), "o-2", FRAUD, "order-8")
    run(AuthorizePayment("split-a"), "a-3", CHECKOUT, "order-7")
    run(CapturePayment("split-a", "30.00"), "a-4", CHECKOUT, "order-7")
    monkeypatch.setattr(common, "service_factory", lambda stack: service)
    return service


def invoke(*args: str) -> Any:
    return CliRunner(env={"COLUMNS": "220"}).invoke(cli.app, list(args))


def test_trace_follows_a_flow_across_payments_in_recorded_order(flow: PaymentService) -> None:
    result = invoke("trace", "order-7", "--json")
    assert result.exit_code == 0, result.output
    steps = json.loads(result.stdout)["steps"]
    assert [(s["event"]["stream_id"], s["event"]["event_type"]) for s in steps] == [
        ("payment#split-a", "PaymentInitiated"),
        ("payment#split-b", "PaymentInitiated"),
        ("payment#split-a", "RiskAssessed"),
        ("payment#split-b", "RiskAssessed"),
        ("payment#split-a", "PaymentAuthorized"),
        ("payment#split-a", "PaymentCaptured"),
    ]
    assert steps[3]["event"]["causation_id"] == steps[2]["event"]["event_id"]
    assert steps[3]["event"]["actor"] == {
        "kind": "agent",
        "id": "fraud-agent",
        "model": "gbm",
        "version": "7",
    }
    assert [s["payment"]["status"] for s in steps] == [
        "initiated",
        "initiated",
        "approved",
        "approved",
        "authorized",
        "captured",
    ]
    table = invoke("trace", "order-7")
    assert table.exit_code == 0, table.output
    assert "agent:fraud-agent (gbm 7)" in table.stdout
    assert "split-b" in table.stdout
    assert "other" not in table.stdout


def test_trace_of_an_unknown_flow_is_not_found(flow: PaymentService) -> None:
    result = invoke("trace", "order-404", "--json")
    assert result.exit_code == 5
    assert json.loads(result.stdout)["error"]["code"] == "not_found"


def test_trace_keeps_each_stream_in_version_order_whatever_the_clocks(
    flow: PaymentService,
) -> None:
    """A writer whose clock ran behind stamped version 2 before version 1: the stream's order
    holds, the streams still interleave by time."""
    events = flow.store.events_with(correlation_id="order-7", limit=100)
    a1 = next(e for e in events if e.stream_id == "payment#split-a" and e.version == 1)
    skewed = [
        replace(e, recorded_at="2000-01-01T00:00:00.000000Z")
        if e.stream_id == "payment#split-a" and e.version == 2
        else e
        for e in events
    ]
    loaded = {e.stream_id: [] for e in skewed}  # type: ignore[var-annotated]
    for event in sorted(skewed, key=lambda e: e.version):
        loaded[event.stream_id].append(event)
    steps = trace_steps(skewed, lambda stream_id, version: loaded[stream_id][:version])
    assert steps[0][0] == a1
    assert [(e.stream_id.removeprefix("payment#"), e.version) for e, _ in steps] == [
        ("split-a", 1),
        ("split-a", 2),  # stamped in 2000, still after version 1
        ("split-b", 1),
        ("split-b", 2),
        ("split-a", 3),
        ("split-a", 4),
    ]


def test_replay_shows_who_when_why_and_what_changed(flow: PaymentService) -> None:
    result = invoke("replay", "split-b", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    first, second = document["steps"]
    assert first["event"]["actor"] == {"kind": "api", "id": "checkout"}
    assert "status" in first["changed"]
    assert second["changed"] == ["status", "risk_decision", "risk_score"]
    assert second["event"]["causation_id"] is not None
    assert second["event"]["recorded_at"] == "2026-11-21T12:00:05.000000Z"
    table = invoke("replay", "split-b")
    assert "agent:fraud-agent (gbm 7)" in table.stdout
    assert "2026-11-21T12:00:05.000000Z" in table.stdout


def test_replay_as_of_a_time_and_up_to_a_version(flow: PaymentService) -> None:
    as_of = json.loads(
        invoke("replay", "split-a", "--as-of", "2026-11-21T12:00:06Z", "--json").stdout
    )
    assert [s["event"]["version"] for s in as_of["steps"]] == [1, 2]
    assert as_of["payment"]["status"] == "approved"
    version = json.loads(invoke("replay", "split-a", "--version", "3", "--json").stdout)
    assert version["payment"]["status"] == "authorized"
    early = invoke("replay", "split-a", "--as-of", "2026-11-21T12:00:00Z", "--json")
    assert early.exit_code == 5
    bad = invoke("replay", "split-a", "--version", "0", "--json")
    assert bad.exit_code == 2


def test_a_version_the_payment_has_not_reached_is_not_found(flow: PaymentService) -> None:
    result = invoke("replay", "split-a", "--version", "99", "--json")
    assert result.exit_code == 5, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "not_found"
    assert error["message"] == "payment split-a has no version 99 (its last is 4)"
    whole = json.loads(invoke("replay", "split-a", "--version", "4", "--json").stdout)
    assert whole["payment"]["version"] == 4


def test_ids_a_reader_copies_are_whole_in_80_columns(flow: PaymentService) -> None:
    payment_id = "checkout-2026-11-21-merchant-berlin-0042"
    correlation_id = "0193a5b2-7c41-7d2e-9f3a-5b6c7d8e9f01"
    context = CommandContext("long-1", CHECKOUT, correlation_id=correlation_id)
    created = flow.execute(InitiatePayment(payment_id, "30.00", "EUR", "m-1", "c-7"), context)
    event_id = created.events[0].event_id
    narrow = CliRunner(env={"COLUMNS": "80"})
    for args in (["history", payment_id], ["replay", payment_id], ["trace", correlation_id]):
        result = narrow.invoke(cli.app, args)
        assert result.exit_code == 0, result.output
        # Narrowed, not cropped: every line ends on the table's right border or before it.
        assert max(len(line) for line in result.stdout.splitlines()) <= 80
        assert "┓\n" in result.stdout, args
        assert payment_id in result.stdout, args
        assert correlation_id in result.stdout, args
        assert "…" not in result.stdout, args
    assert event_id in narrow.invoke(cli.app, ["trace", correlation_id]).stdout


def test_the_archive_says_it_lags_when_it_has_not_the_event(tmp_path: Path) -> None:
    for args in (
        ["replay", "split-a", "--source", "archive", "--archive-dir", str(tmp_path), "--json"],
        ["trace", "order-7", "--source", "archive", "--archive-dir", str(tmp_path), "--json"],
    ):
        result = invoke(*args)
        assert result.exit_code == 5, result.output
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "not_found"
        assert "the archive lags the events table" in error["message"]
        assert "--source dynamodb" in error["message"]
