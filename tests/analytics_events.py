"""Events for the analytics tests, and the figures they should give, computed independently.

``window_history()`` runs a fixed set of payments through the real service: two merchants,
three currencies, every outcome (authorized, declined by risk directly or after review, failed at
the processor), captures and refunds, by agents and by other actors. ``expected_rows`` derives
the figures from the stored JSON payloads with plain counting, not with the code under test.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from ledger.decoding import decode_event
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    Command,
    FailPayment,
    InitiatePayment,
    RefundPayment,
    SettlePayment,
)
from ledger.envelope import Actor, RecordedEvent
from ledger.memory import MemoryEventStore
from ledger.service import CommandContext, PaymentService
from projections.analytics import WindowEvent
from tests.unit.conftest import FakeClock

API = Actor(kind="api", id="checkout-api")
FRAUD = Actor(kind="agent", id="fraud-agent", model="gbm", version="7")
FRAUD_2 = Actor(kind="agent", id="fraud-agent-2", model="gbm", version="8")
ROUTER = Actor(kind="agent", id="router-agent", model="bandit", version="3")
OPERATOR = Actor(kind="operator", id="risk-ops-1")
SYSTEM = Actor(kind="system", id="settlement-batch")
HISTORY_START = datetime(2026, 11, 30, 23, 58, tzinfo=UTC)  # crosses into December

_STEPS: tuple[tuple[Command, Actor], ...] = (
    (InitiatePayment("pay-a1", "10.00", "EUR", "m-1", "c-1"), API),
    (AssessRisk("pay-a1", "approve", "0.1", "low risk"), FRAUD),
    (AuthorizePayment("pay-a1"), ROUTER),
    (CapturePayment("pay-a1", "4.00"), SYSTEM),
    (RefundPayment("pay-a1", "1.50"), OPERATOR),
    (InitiatePayment("pay-b2", "1500", "JPY", "m-1", "c-2"), API),
    (AssessRisk("pay-b2", "review", "0.5", "unsure"), FRAUD),
    (AssessRisk("pay-b2", "decline", "0.9", "confirmed fraud"), OPERATOR),
    (InitiatePayment("pay-c3", "7.25", "EUR", "m-2", "c-3"), API),
    (AssessRisk("pay-c3", "approve", "0.2", "fine"), FRAUD_2),
    (FailPayment("pay-c3", "insufficient funds"), ROUTER),
    (InitiatePayment("pay-d4", "3.00", "EUR", "m-2", "c-4"), API),
    (AssessRisk("pay-d4", "decline", "0.95", "stolen device"), FRAUD),
    (InitiatePayment("pay-e5", "2.125", "BHD", "m-2", "c-5"), API),
    (AssessRisk("pay-e5", "approve", "0.05", "regular"), FRAUD_2),
    (AuthorizePayment("pay-e5"), ROUTER),
    (CapturePayment("pay-e5", "2.125", final=True), SYSTEM),
    (SettlePayment("pay-e5"), SYSTEM),
    (InitiatePayment("pay-f6", "99.99", "EUR", "m-1", "c-6"), API),
    (AssessRisk("pay-f6", "approve", "0.3", "ok"), FRAUD),
    (AuthorizePayment("pay-f6"), ROUTER),
)


@cache
def window_history() -> tuple[RecordedEvent, ...]:
    """Every event of the payments above, in the order they were recorded (15 s apart)."""
    clock = FakeClock(HISTORY_START)
    store = MemoryEventStore()
    service = PaymentService(store, clock=clock, sleep=lambda _: None)
    for number, (command, actor) in enumerate(_STEPS):
        service.execute(command, CommandContext(f"key-{number}", actor))
        clock.advance(timedelta(seconds=15))
    events = [event for stream_id in store.stream_ids() for event in store.load(stream_id)]
    return tuple(sorted(events, key=lambda event: (event.recorded_at, event.event_id)))


def window_events(events: Iterable[RecordedEvent]) -> list[WindowEvent]:
    return [WindowEvent(event, decode_event(event)) for event in events]


def expected_rows(events: Sequence[RecordedEvent]) -> dict[tuple[str, str], dict[str, Any]]:
    """(merchant, currency) → figures of the distinct events among ``events``."""
    distinct = {event.event_id: event for event in events}
    counts: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    decisions: defaultdict[tuple[str, str], defaultdict[str, Counter[str]]] = defaultdict(
        lambda: defaultdict(Counter)
    )
    for event in distinct.values():
        payload = json.loads(event.payload)
        key = (payload["merchant_id"], payload.get("currency", ""))
        row = counts[key]
        row["event_count"] += 1
        kind = event.event_type
        if kind == "RiskAssessed":
            row[f"risk_{payload['decision']}"] += 1
        else:
            row[kind] += 1
            row[f"{kind}_minor"] += payload.get("amount_minor", 0)
        if event.actor.kind == "agent":
            decisions[key][event.actor.id][payload.get("decision", kind)] += 1
    return {
        key: {
            "event_count": row["event_count"],
            "initiated_count": row["PaymentInitiated"],
            "initiated_minor": row["PaymentInitiated_minor"],
            "authorized_count": row["PaymentAuthorized"],
            "authorized_minor": row["PaymentAuthorized_minor"],
            "risk_approved_count": row["risk_approve"],
            "risk_review_count": row["risk_review"],
            "risk_declined_count": row["risk_decline"],
            "failed_count": row["PaymentFailed"],
            "captured_count": row["PaymentCaptured"],
            "captured_minor": row["PaymentCaptured_minor"],
            "refunded_count": row["PaymentRefunded"],
            "refunded_minor": row["PaymentRefunded_minor"],
            "agent_decisions": {agent: dict(made) for agent, made in decisions[key].items()},
        }
        for key, row in counts.items()
    }
