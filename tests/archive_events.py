"""Payment histories for the archive's tests: real events from ``PaymentService``, spread over days.

``ledger_history(payments)`` runs ``payments`` lifecycles through the service on the in-memory
store with a clock that moves hours between commands, so the events fall on several UTC days and
each payment's events on more than one. The mix covers every report: agent and operator risk
decisions (some declines), captures, refunds, settlements, voids, and authorizations left open
past their hold deadline. Deterministic for a given ``payments``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

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
from ledger.envelope import Actor, RecordedEvent
from ledger.memory import MemoryEventStore
from ledger.service import CommandContext, PaymentService

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
API = Actor("api", "checkout")
FRAUD_AGENT = Actor("agent", "fraud-agent", model="risk-gbm", version="2026.11")
ROUTER_AGENT = Actor("agent", "router-agent", model="bandit", version="3")
OPERATOR = Actor("operator", "risk-ops-1")
SETTLEMENT = Actor("system", "settlement")
MERCHANTS = ("m-1", "m-2", "m-3")


class ManualClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class LedgerHistory:
    store: MemoryEventStore

    def events(self) -> list[RecordedEvent]:
        """Every event, in the order it was recorded."""
        events = [event for stream in self.store.stream_ids() for event in self.store.load(stream)]
        return sorted(events, key=lambda event: (event.recorded_at, event.stream_id, event.version))

    def streams(self) -> list[list[RecordedEvent]]:
        return [self.store.load(stream) for stream in self.store.stream_ids()]


def ledger_history(payments: int = 12) -> LedgerHistory:
    store = MemoryEventStore()
    clock = ManualClock(START)
    service = PaymentService(store, clock=clock, sleep=lambda _: None)
    keys = count()

    def run(command: Command, actor: Actor, hours: float = 5) -> None:
        clock.now += timedelta(hours=hours)
        service.execute(command, CommandContext(idempotency_key=f"k-{next(keys)}", actor=actor))

    for index in range(payments):
        clock.now = START + timedelta(hours=9 * index)
        payment_id = f"pay-{index:03d}"
        currency = "JPY" if index % 5 == 4 else "EUR"
        amount = f"{1000 + 250 * index}" if currency == "JPY" else f"{10 + 7 * index}.50"
        merchant = MERCHANTS[index % len(MERCHANTS)]
        run(InitiatePayment(payment_id, amount, currency, merchant, f"c-{index}"), API, 0)
        if index % 6 == 5:
            run(AssessRisk(payment_id, "decline", "0.97", "velocity rule 7"), FRAUD_AGENT)
            continue
        if index % 6 == 4:
            run(AssessRisk(payment_id, "review", "0.55", "new device"), FRAUD_AGENT)
            decision = "decline" if index % 12 == 10 else "approve"
            run(AssessRisk(payment_id, decision, "0.55", "manual check"), OPERATOR)
            if decision == "decline":
                continue
        else:
            run(AssessRisk(payment_id, "approve", "0.05", "low risk"), FRAUD_AGENT)
        run(AuthorizePayment(payment_id), ROUTER_AGENT)
        if index % 6 == 3:
            continue  # left authorized: past its hold deadline a week later
        if index % 7 == 6:
            run(VoidPayment(payment_id, reason="order cancelled"), API)
            continue
        run(CapturePayment(payment_id, "1" if currency == "JPY" else "1.00"), API, 20)
        run(SettlePayment(payment_id), SETTLEMENT, 30)
        if index % 3 == 0:
            run(RefundPayment(payment_id, "1" if currency == "JPY" else "0.50"), API, 12)
    return LedgerHistory(store)
