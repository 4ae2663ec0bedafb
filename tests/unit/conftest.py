from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    InitiatePayment,
    SettlePayment,
)
from ledger.envelope import Actor, RecordedEvent
from ledger.memory import MemoryEventStore
from ledger.service import CommandContext, PaymentService

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
def service(store: MemoryEventStore, clock: FakeClock) -> PaymentService:
    return PaymentService(store, clock=clock, sleep=lambda _: None)


AGENT = Actor(kind="agent", id="fraud-agent", model="gbm", version="7")


def context(key: str, actor: Actor = AGENT) -> CommandContext:
    return CommandContext(idempotency_key=key, actor=actor)


@pytest.fixture
def recorded_history(service: PaymentService) -> list[RecordedEvent]:
    for index, command in enumerate(
        [
            InitiatePayment("pay-1", "10.00", "EUR", "m-1", "c-1"),
            AssessRisk("pay-1", "approve", "0.1", "low risk"),
            AuthorizePayment("pay-1"),
            CapturePayment("pay-1", "4.00"),
            SettlePayment("pay-1"),
        ]
    ):
        service.execute(command, context(f"k-{index}"))
    return service.load("pay-1")
