"""``payledger demo``: a scripted payment flow on a throwaway moto DynamoDB, then ledger checks.

Interim, until the full local stack exists. It starts moto's server on loopback, creates the
events table from ``template.yaml``, runs three payments through the real ``PaymentService`` on
``DynamoDBEventStore`` (a client retry, a rule violation, an agent's decisions included), prints
each payment's history, verifies every hash chain and that debits equal credits over all postings,
and stops the server. ``run_demo`` returns the exit code: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import boto3
from botocore.config import Config
from rich.console import Console
from rich.table import Table
from rich.text import Text

from devstack.motoserver import MotoServer
from devstack.template import create_table
from handlers.cli.render import chain_report, history_table, replay_table
from ledger.domain.errors import LedgerError
from ledger.domain.events import decode_payload
from ledger.domain.money import format_amount
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    Command,
    InitiatePayment,
    RefundPayment,
    SettlePayment,
    VoidPayment,
)
from ledger.domain.postings import Posting, imbalances
from ledger.dynamodb import DynamoDBEventStore
from ledger.envelope import Actor
from ledger.service import CommandContext, PaymentService, replay_steps

DEMO_TABLE = "payledger-demo-events"
DEMO_REGION = "us-east-1"
EXIT_OK = 0
EXIT_CHECK_FAILED = 1

CHECKOUT = Actor("api", "checkout")
FRAUD_AGENT = Actor("agent", "fraud-agent", model="risk-gbm", version="2026.11")
SETTLEMENT = Actor("system", "settlement")
OPERATOR = Actor("operator", "demo")


@dataclass(frozen=True, slots=True)
class Step:
    """One command of the script and what it must lead to."""

    label: str
    command: Command
    key: str
    actor: Actor
    expect: str  # the payment's status afterwards, or the error code the command must fail with
    replayed: bool = False  # a client retry: the original result back and no new event


def script() -> tuple[Step, ...]:
    first, second, third = "order-1001", "order-1002", "order-1003"
    return (
        Step(
            "initiate 100.00 EUR",
            InitiatePayment(first, "100.00", "EUR", "merchant-7", "customer-42"),
            "k-1001-initiate",
            CHECKOUT,
            "initiated",
        ),
        Step(
            "assess risk: review (0.55)",
            AssessRisk(first, "review", "0.55", "new device"),
            "k-1001-risk-1",
            FRAUD_AGENT,
            "in_review",
        ),
        Step(
            "assess risk: approve (0.12)",
            AssessRisk(first, "approve", "0.12", "device verified"),
            "k-1001-risk-2",
            FRAUD_AGENT,
            "approved",
        ),
        Step(
            "authorize",
            AuthorizePayment(first, processor="acme"),
            "k-1001-auth",
            CHECKOUT,
            "authorized",
        ),
        Step(
            "capture 60.00",
            CapturePayment(first, "60.00"),
            "k-1001-capture-1",
            CHECKOUT,
            "captured",
        ),
        Step(
            "client retry: capture 60.00",
            CapturePayment(first, "60.00"),
            "k-1001-capture-1",
            CHECKOUT,
            "captured",
            replayed=True,
        ),
        Step(
            "capture 50.00 (only 40.00 left)",
            CapturePayment(first, "50.00"),
            "k-1001-capture-2",
            CHECKOUT,
            "capture_exceeds_authorized",
        ),
        Step(
            "final capture 30.00",
            CapturePayment(first, "30.00", final=True),
            "k-1001-capture-3",
            CHECKOUT,
            "captured",
        ),
        Step(
            "refund 5.00",
            RefundPayment(first, "5.00", reason="damaged item"),
            "k-1001-refund",
            OPERATOR,
            "refunded",
        ),
        Step(
            "settle",
            SettlePayment(first, reference="batch-2026-11-21"),
            "k-1001-settle",
            SETTLEMENT,
            "settled",
        ),
        Step(
            "initiate 42.00 USD",
            InitiatePayment(second, "42.00", "USD", "merchant-7", "customer-43"),
            "k-1002-initiate",
            CHECKOUT,
            "initiated",
        ),
        Step(
            "assess risk: decline (0.97)",
            AssessRisk(second, "decline", "0.97", "velocity limit"),
            "k-1002-risk",
            FRAUD_AGENT,
            "declined",
        ),
        Step(
            "initiate 5000 JPY",
            InitiatePayment(third, "5000", "JPY", "merchant-9", "customer-44"),
            "k-1003-initiate",
            CHECKOUT,
            "initiated",
        ),
        Step(
            "assess risk: approve (0.08)",
            AssessRisk(third, "approve", "0.08", "known customer"),
            "k-1003-risk",
            FRAUD_AGENT,
            "approved",
        ),
        Step("authorize", AuthorizePayment(third), "k-1003-auth", CHECKOUT, "authorized"),
        Step(
            "void (order cancelled)",
            VoidPayment(third, reason="order cancelled"),
            "k-1003-void",
            OPERATOR,
            "voided",
        ),
    )


def run_demo(console: Console) -> int:
    """Run the script and every check; the exit code is 0 only if all of them passed."""
    console.print(Text("payledger demo: starting moto DynamoDB on loopback", style="bold"))
    with MotoServer() as server:
        client = boto3.client(
            "dynamodb",
            endpoint_url=server.endpoint_url,
            region_name=DEMO_REGION,
            # moto accepts any credentials; fixed ones keep the demo off every real account.
            aws_access_key_id="demo",
            aws_secret_access_key="demo",  # noqa: S106 - not a secret: moto ignores it
            config=Config(account_id_endpoint_mode="disabled"),
        )
        create_table(client, "EventsTable", DEMO_TABLE)
        console.print(
            f"events table {DEMO_TABLE} created from template.yaml at {server.endpoint_url}"
        )
        service = PaymentService(DynamoDBEventStore(client, DEMO_TABLE))
        steps = script()
        failures = run_steps(service, steps, console)
        payment_ids = list(dict.fromkeys(step.command.payment_id for step in steps))
        failures += check_histories(service, payment_ids, console)
    console.print("moto server stopped")
    if failures:
        console.print(Text(f"demo FAILED: {failures} check(s) failed", style="bold red"))
        return EXIT_CHECK_FAILED
    console.print(Text("demo OK: every check passed", style="bold green"))
    return EXIT_OK


def run_steps(service: PaymentService, steps: Sequence[Step], console: Console) -> int:
    """Execute ``steps`` in order, print what each did; return how many did not go as expected."""
    table = Table(title="payment commands", title_justify="left")
    for header in ("payment", "command", "actor", "outcome", "check"):
        table.add_column(header)
    failures = 0
    for step in steps:
        outcome, passed = _run_step(service, step)
        failures += not passed
        table.add_row(
            step.command.payment_id,
            step.label,
            f"{step.actor.kind}:{step.actor.id}",
            Text(outcome),
            Text("ok", style="green") if passed else Text(f"expected {step.expect}", style="red"),
        )
    console.print(table)
    return failures


def _run_step(service: PaymentService, step: Step) -> tuple[str, bool]:
    payment_id = step.command.payment_id
    events_before = len(service.load(payment_id)) if step.replayed else 0
    context = CommandContext(idempotency_key=step.key, actor=step.actor)
    try:
        result = service.execute(step.command, context)
    except LedgerError as exc:
        return f"error[{exc.code}]: {exc.message}", exc.code == step.expect
    payment = result.payment
    if result.replayed:
        new_events = len(service.load(payment_id)) - events_before
        passed = step.replayed and new_events == 0 and payment.state.status == step.expect
        return f"replayed v{payment.version}, new events: {new_events}", passed
    recorded = ", ".join(f"{event.event_type} v{event.version}" for event in result.events)
    passed = not step.replayed and payment.state.status == step.expect
    return f"{payment.state.status} ({recorded})", passed


def check_histories(service: PaymentService, payment_ids: Sequence[str], console: Console) -> int:
    """Print each history, verify its hash chain, then the balance over all postings."""
    failures = 0
    postings: list[Posting] = []
    for payment_id in payment_ids:
        events = service.load(payment_id)
        console.print(history_table(events))
        try:
            console.print(chain_report(events))
        except LedgerError as exc:
            console.print(Text(f"hash chain BROKEN: {exc.message}", style="bold red"))
            failures += 1
        for event in events:
            payload = decode_payload(event.event_type, event.schema_version, event.payload)
            postings.extend(getattr(payload, "postings", ()))
    console.print(replay_table(replay_steps(service.load(payment_ids[0]))))
    console.print(balance_table(postings))
    unbalanced = imbalances(postings)
    if unbalanced or not postings:
        verdict = f"debits - credits per (currency, phase): {unbalanced}" if postings else "none"
        console.print(Text(f"postings UNBALANCED: {verdict}", style="bold red"))
        return failures + 1
    currencies = ", ".join(sorted({line.currency for line in postings}))
    console.print(
        Text.assemble(
            ("debits == credits", "bold green"),
            f" in every currency and phase over {len(postings)} posting lines ({currencies})",
        )
    )
    return failures


def balance_table(postings: Sequence[Posting]) -> Table:
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"debit": 0, "credit": 0})
    for line in postings:
        totals[(line.currency, line.phase)][line.direction] += line.amount_minor
    table = Table(title="postings over all payments", title_justify="left")
    for header in ("currency", "phase", "debits", "credits"):
        table.add_column(header, justify="right" if header in ("debits", "credits") else "left")
    for (currency, phase), sides in sorted(totals.items()):
        table.add_row(
            currency,
            phase,
            format_amount(sides["debit"], currency),
            format_amount(sides["credit"], currency),
        )
    return table
