"""Reading a payment at a version or a time it never had is ``not_found``, never the nearest
state: the CLI's replay and the API's GET /payments/{id} share the rule through the service."""

from __future__ import annotations

import pytest

from ledger.domain.errors import NotFoundError
from ledger.domain.payment import AssessRisk, InitiatePayment
from ledger.envelope import Actor
from ledger.memory import MemoryEventStore
from ledger.service import CommandContext, PaymentService
from tests.unit.conftest import FakeClock


@pytest.fixture
def service(store: MemoryEventStore, clock: FakeClock) -> PaymentService:
    service = PaymentService(store, clock=clock)
    actor = Actor("api", "checkout")
    service.execute(
        InitiatePayment("pay-1", "10.00", "EUR", "m-1", "c-1"), CommandContext("k-1", actor)
    )
    service.execute(AssessRisk("pay-1", "approve", "0.1", "ok"), CommandContext("k-2", actor))
    return service


def test_a_version_the_payment_has_reached_is_its_state_then(service: PaymentService) -> None:
    assert service.get("pay-1", version_max=1).state.status == "initiated"
    assert service.get("pay-1", version_max=2).state.status == "approved"


@pytest.mark.parametrize("version", [3, 99, 10**40])
def test_a_version_beyond_the_last_is_not_found(service: PaymentService, version: int) -> None:
    with pytest.raises(NotFoundError, match=f"pay-1 has no version {version} \\(its last is 2\\)"):
        service.get("pay-1", version_max=version)
    with pytest.raises(NotFoundError):
        service.load("pay-1", version_max=version)


def test_a_time_before_the_first_event_is_not_found(service: PaymentService) -> None:
    with pytest.raises(NotFoundError, match="did not exist at 2000-01-01T00:00:00Z"):
        service.get("pay-1", as_of="2000-01-01T00:00:00Z")
