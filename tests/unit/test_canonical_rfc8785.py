"""Canonical JSON is RFC 8785 (JCS) for every event the ledger writes: an independent
implementation (the ``rfc8785`` package) produces the same bytes, at the limits of every field."""

from __future__ import annotations

import itertools
from datetime import timedelta

import rfc8785

from ledger.codec import canonical_json, hash_document
from ledger.domain.events import PAYLOAD_TYPES
from ledger.domain.limits import INTEGER_MAX
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    Command,
    ExpirePayment,
    FailPayment,
    InitiatePayment,
    RefundPayment,
    SettlePayment,
    VoidPayment,
)
from ledger.envelope import payment_stream_id
from ledger.memory import MemoryEventStore
from ledger.service import PaymentService
from tests.unit.conftest import FakeClock, context

_keys = itertools.count()
LARGEST_EUR = "90071992547409.91"  # 2^53 - 1 minor units


def run(service: PaymentService, *commands: Command) -> None:
    for command in commands:
        service.execute(command, context(f"key-{next(_keys)}"))


def initiated(payment_id: str, amount: str = LARGEST_EUR) -> list[Command]:
    return [
        InitiatePayment(
            payment_id,
            amount,
            "EUR",
            "m-1",
            "c-1",
            description='caf\u00e9 \U0001f600 \u2028 "quoted" \\ slash </script>',
            metadata={"largest": INTEGER_MAX, "smallest": -INTEGER_MAX, "yes": True, "none": None},
        ),
        AssessRisk(payment_id, "approve", "0.000001", "\u00fcber-low \u00e9"),
    ]


def test_every_event_type_is_written_as_rfc_8785_bytes(
    store: MemoryEventStore, service: PaymentService, clock: FakeClock
) -> None:
    run(service, *initiated("pay-life"), AuthorizePayment("pay-life"))
    run(
        service,
        CapturePayment("pay-life", "1.00"),
        CapturePayment("pay-life", "2.00", final=True),
        RefundPayment("pay-life", "0.50", reason="one returned"),
        SettlePayment("pay-life", reference="batch-9"),
    )
    run(service, *initiated("pay-fail"), FailPayment("pay-fail", "issuer declined"))
    run(service, *initiated("pay-void"), AuthorizePayment("pay-void"), VoidPayment("pay-void"))
    run(service, *initiated("pay-expire"), AuthorizePayment("pay-expire"))
    clock.advance(timedelta(days=40))
    run(service, ExpirePayment("pay-expire"))

    events = [
        event
        for payment_id in ("pay-life", "pay-fail", "pay-void", "pay-expire")
        for event in store.load(payment_stream_id(payment_id))
    ]
    assert {event.event_type for event in events} == set(PAYLOAD_TYPES)
    for event in events:
        document = hash_document(event)
        assert canonical_json(document).encode("utf-8") == rfc8785.dumps(document), event
