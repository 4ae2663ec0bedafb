"""The demo's checks fail when they should, and a check that did not run never counts as passed."""

from __future__ import annotations

import dataclasses

from rich.console import Console

from cli.demo import EXIT_CHECK_FAILED, EXIT_OK, render_verdict
from devstack.agents import WorkloadReport, plan_payments
from devstack.checks import (
    Check,
    Ledger,
    check_balance,
    check_chains,
    check_dead_letters,
    check_same,
    check_workload,
    posting_sums,
)
from ledger.envelope import RecordedEvent
from ledger.service import fold


def ledger_of(events: list[RecordedEvent]) -> Ledger:
    snapshot = fold(events)
    assert snapshot is not None
    return Ledger({events[0].stream_id: events}, {snapshot.state.payment_id: snapshot})


def test_postings_balance_in_the_events_and_must_match_the_view(
    recorded_history: list[RecordedEvent],
) -> None:
    sums = posting_sums(ledger_of(recorded_history).postings())
    ((currency, phase, direction), amount) = next(iter(sums.items()))

    assert check_balance(sums, sums).passed is True
    assert check_balance(sums, {**sums, (currency, phase, direction): amount + 1}).passed is False
    lopsided = {**sums, (currency, phase, direction): amount + 1}
    assert check_balance(lopsided, lopsided).passed is False


def test_a_read_model_must_hold_every_payment_as_folded(
    recorded_history: list[RecordedEvent],
) -> None:
    ledger = ledger_of(recorded_history)
    behind = fold(recorded_history[:-1])
    assert behind is not None

    assert check_same("views", ledger, ledger.snapshots).passed is True
    assert check_same("views", ledger, {}).passed is False
    assert check_same("views", ledger, {"pay-1": behind}).passed is False


def test_a_tampered_event_breaks_its_chain(recorded_history: list[RecordedEvent]) -> None:
    tampered = list(recorded_history)
    tampered[2] = dataclasses.replace(tampered[2], payload=tampered[2].payload.replace("1", "2"))

    assert check_chains(ledger_of(recorded_history)).passed is True
    assert check_chains(ledger_of(tampered)).passed is False


def test_the_agents_check_fails_on_an_unexpected_answer_or_final_status(
    recorded_history: list[RecordedEvent],
) -> None:
    ledger = ledger_of(recorded_history)
    (plan,) = plan_payments(1, seed=1, run="t")
    plan.payment_id, plan.status = "pay-1", "settled"
    report = WorkloadReport(requests=5, created=5)

    assert check_workload(report, [plan], ledger).passed is True
    plan.status = "voided"
    assert check_workload(report, [plan], ledger).passed is False
    plan.status = "settled"
    report.unexpected.append("POST /payments: expected created, got 409")
    assert check_workload(report, [plan], ledger).passed is False


def test_dead_letters_fail_the_demo() -> None:
    assert check_dead_letters({"project-dlq": 0}).passed is True
    assert check_dead_letters({"project-dlq": 2}).passed is False


def test_a_check_that_did_not_run_is_never_shown_or_counted_as_passed() -> None:
    console = Console(record=True, width=200)
    passed = Check("hash chains", True, "12 chains")
    not_run = Check("archive rows == events", None, "the archive is not deployed")

    assert render_verdict(console, [passed, not_run], 1.0) == EXIT_OK
    output = console.export_text()
    assert "archive rows == events │ not run" in output
    assert "demo OK: 1 checks passed" in output
    assert "not run: archive rows == events" in output
    assert (
        render_verdict(console, [passed, Check("dead letters", False, "2")], 1.0)
        == EXIT_CHECK_FAILED
    )
