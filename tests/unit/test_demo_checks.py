"""The demo's checks fail when they should, and a check that did not run never counts as passed."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from typing import Any

from rich.console import Console

from cli.demo import render_verdict
from cli.exit_codes import EXIT_OK
from devstack.agents import (
    ACTORS,
    CREATED,
    REPLAYED,
    PaymentPlan,
    WorkloadReport,
    plan_payments,
    run_workload,
)
from devstack.checks import (
    Check,
    Ledger,
    LedgerRead,
    Verified,
    check_balance,
    check_chains,
    check_dead_letters,
    check_read_model,
    check_views,
    check_workload,
)
from ledger.codec import canonical_json, chain_hash, hash_document
from ledger.domain.errors import EXIT_OTHER
from ledger.envelope import RecordedEvent
from ledger.integrity.chains import Problem
from ledger.integrity.runner import Verification, VerifyReport, run_verification
from ledger.memory import MemoryEventStore
from ledger.service import fold
from payledger_client import CommandResult, PayledgerClient, error_class

READ_MODEL = "dynamodb://payment-state"


def ledger_of(events: list[RecordedEvent]) -> Ledger:
    snapshot = fold(events)
    assert snapshot is not None
    return Ledger({events[0].stream_id: events}, {snapshot.state.payment_id: snapshot})


def store_of(events: list[RecordedEvent]) -> MemoryEventStore:
    store = MemoryEventStore()
    store.append(events)
    return store


def test_the_runner_reads_the_ledger_the_demo_checks(
    store: MemoryEventStore, recorded_history: list[RecordedEvent]
) -> None:
    reading = LedgerRead()
    report = run_verification(Verification(store, stream_checks=[reading]))
    assert report.ok
    assert report.checks == ["chains"]
    assert reading.ledger() == ledger_of(recorded_history)


def test_postings_balance_in_the_events_and_must_match_the_view(
    store: MemoryEventStore, recorded_history: list[RecordedEvent]
) -> None:
    report = run_verification(Verification(store))
    sums = report.postings
    ((currency, phase, direction), amount) = next(iter(sums.items()))

    assert check_balance(report, sums).passed is True
    assert check_balance(report, {**sums, (currency, phase, direction): amount + 1}).passed is False
    last = recorded_history[-1]
    payload = json.loads(last.payload)
    payload["postings"] = payload["postings"][:1]  # a debit with no credit
    lopsided = dataclasses.replace(
        last,
        version=last.version + 1,
        payload=canonical_json(payload),
        prev_hash=last.hash,
    )
    store.append(
        [dataclasses.replace(lopsided, hash=chain_hash(last.hash, hash_document(lopsided)))]
    )
    unbalanced = run_verification(Verification(store))
    assert check_balance(unbalanced, unbalanced.postings).passed is False


def test_a_read_model_must_hold_every_payment_as_folded(
    recorded_history: list[RecordedEvent],
) -> None:
    ledger = ledger_of(recorded_history)

    def verified(problems: list[Problem], behind: dict[str, int] | None = None) -> Verified:
        lag = {"payment_state": 0, "postgres": 0} | (behind or {})
        counts = {source: {"behind": count} for source, count in lag.items()}
        report = VerifyReport(["chains", "projections"], counts=counts, problems=problems)
        return Verified(report, ledger, READ_MODEL)

    differs = Problem("projections", "projection_mismatch", "differs", "payment#pay-1", 5)
    assert check_read_model(verified([])).passed is True
    assert check_views(verified([])).passed is True
    assert check_read_model(verified([], {"payment_state": 1})).passed is False
    assert check_views(verified([], {"postgres": 1})).passed is False
    in_read_model = dataclasses.replace(differs, location=READ_MODEL)
    assert check_read_model(verified([in_read_model])).passed is False
    assert check_views(verified([in_read_model])).passed is True
    in_views = dataclasses.replace(differs, location="postgresql:payledger.payments")
    assert check_read_model(verified([in_views])).passed is True
    assert check_views(verified([in_views])).passed is False


def test_a_tampered_event_breaks_its_chain(recorded_history: list[RecordedEvent]) -> None:
    tampered = list(recorded_history)
    tampered[2] = dataclasses.replace(tampered[2], payload=tampered[2].payload.replace("1", "2"))

    intact = run_verification(Verification(store_of(recorded_history)))
    assert check_chains(intact).passed is True
    assert check_chains(run_verification(Verification(store_of(tampered)))).passed is False


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


class LedgerClient:
    """Stands in for one agent's ``PayledgerClient``: each call must fit the real method's
    signature; the shared ledger records a key once, replays it after, and refuses the keys in
    ``refused`` with their error code."""

    def __init__(
        self, recorded: set[str], refused: dict[str, str], calls: list[tuple[str, str, Any]]
    ) -> None:
        self._recorded, self._refused, self._calls = recorded, refused, calls

    def __getattr__(self, name: str) -> Callable[..., CommandResult]:
        signature = inspect.signature(getattr(PayledgerClient, name))

        def command(*args: Any, **kwargs: Any) -> CommandResult:
            signature.bind(self, *args, **kwargs)
            key = kwargs["idempotency_key"]
            self._calls.append((name, kwargs["actor"], key))
            if key in self._refused:
                code = self._refused[key]
                raise error_class(code)(code, "refused", 422)
            replayed = key in self._recorded
            self._recorded.add(key)
            payment: Any = {"status": "approved", "version": 1}
            return CommandResult(payment, [], replayed, kwargs["correlation_id"], key)

        return command


def planned(count: int) -> list[PaymentPlan]:
    plans = plan_payments(count, seed=7, run="t")
    for plan in plans:  # nothing waits: holds never lapse in this ledger
        plan.steps = [dataclasses.replace(step, wait_s=0) for step in plan.steps]
    return plans


def test_each_agent_sends_every_planned_step_once_with_the_plans_key_as_itself() -> None:
    plans = planned(40)  # every kind of step, refusals and retries among them
    steps = [step for plan in plans for step in plan.steps]
    refused = {step.key: step.expect for step in steps if step.expect not in (CREATED, REPLAYED)}
    recorded: set[str] = set()
    calls: dict[str, list[tuple[str, str, Any]]] = {agent.id: [] for agent in ACTORS}
    clients: Any = {agent.id: LedgerClient(recorded, refused, calls[agent.id]) for agent in ACTORS}

    report = run_workload(clients, plans, threads=2)

    assert report.unexpected == []
    assert report.requests == len(steps)
    assert report.replayed == sum(step.expect == REPLAYED for step in steps) > 0
    assert report.refused == len(refused) > 0
    assert report.created == sum(step.expect == CREATED for step in steps)
    for agent in ACTORS:
        sent = sorted(key for _, _, key in calls[agent.id])
        assert sent == sorted(step.key for step in steps if step.agent == agent)
        assert {actor for _, actor, _ in calls[agent.id]} <= {f"{agent.kind}:{agent.id}"}
    assert {name for agent in ACTORS for name, _, _ in calls[agent.id]} == {
        "initiate_payment",
        "assess_risk",
        "authorize_payment",
        "fail_payment",
        "capture_payment",
        "void_payment",
        "refund_payment",
        "settle_payment",
        "expire_payment",
    }


def test_an_answer_other_than_planned_is_reported_with_its_route_and_agent() -> None:
    plans = planned(1)
    first = plans[0].steps[0]
    clients: Any = {
        agent.id: LedgerClient(set(), {first.key: "pan_detected"}, []) for agent in ACTORS
    }

    report = run_workload(clients, plans, threads=1)

    (problem, *_) = report.unexpected
    assert problem.startswith("POST /payments by api:checkout: expected created, got pan_detected")


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
    assert render_verdict(console, [passed, Check("dead letters", False, "2")], 1.0) == EXIT_OTHER
