"""Every lifecycle rule of DESIGN §5: a valid, a boundary and an invalid case each."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from ledger.domain.errors import (
    AlreadyExistsError,
    CaptureExceedsAuthorizedError,
    CurrencyMismatchError,
    HoldExpiredError,
    HoldNotExpiredError,
    IdempotencyConflictError,
    InvalidTransitionError,
    LedgerError,
    LimitExceededError,
    NotFoundError,
    PanDetectedError,
    RefundExceedsCapturedError,
    ValidationError,
)
from ledger.domain.events import PAYLOAD_TYPES, decode_payload
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
from ledger.domain.postings import imbalances
from ledger.service import PaymentService
from tests.unit.conftest import FakeClock, context

PAY = "pay-1"


_keys = itertools.count()


def run(service: PaymentService, *commands: Command) -> None:
    for command in commands:
        service.execute(command, context(f"key-{next(_keys)}"))


def authorized(service: PaymentService, amount: str = "100.00", currency: str = "EUR") -> None:
    run(
        service,
        InitiatePayment(PAY, amount, currency, "m-1", "c-1"),
        AssessRisk(PAY, "approve", "0.05", "low"),
        AuthorizePayment(PAY),
    )


def status(service: PaymentService) -> str:
    return service.get(PAY).state.status


def test_review_needs_a_later_decision(service: PaymentService) -> None:
    run(
        service,
        InitiatePayment(PAY, "5", "EUR", "m", "c"),
        AssessRisk(PAY, "review", "0.5", "manual"),
    )
    assert status(service) == "in_review"
    with pytest.raises(InvalidTransitionError):
        run(service, AuthorizePayment(PAY))
    with pytest.raises(InvalidTransitionError):
        run(service, AssessRisk(PAY, "review", "0.5", "again"))
    run(service, AssessRisk(PAY, "approve", "0.2", "cleared"))
    assert status(service) == "approved"


def test_decline_is_final(service: PaymentService) -> None:
    run(
        service,
        InitiatePayment(PAY, "5", "EUR", "m", "c"),
        AssessRisk(PAY, "decline", "0.99", "fraud"),
    )
    assert status(service) == "declined"
    for command in (
        AuthorizePayment(PAY),
        AssessRisk(PAY, "approve", "0", "x"),
        FailPayment(PAY, "x"),
    ):
        with pytest.raises(InvalidTransitionError):
            run(service, command)


def test_authorize_only_after_approval_and_fail_on_processor_decline(
    service: PaymentService,
) -> None:
    run(service, InitiatePayment(PAY, "5", "EUR", "m", "c"))
    with pytest.raises(InvalidTransitionError):
        run(service, AuthorizePayment(PAY))
    run(
        service,
        AssessRisk(PAY, "approve", "0", "ok"),
        FailPayment(PAY, "insufficient funds", "acme", "51"),
    )
    snapshot = service.get(PAY)
    assert snapshot.state.status == "failed"
    assert snapshot.state.failure_reason == "insufficient funds"


def test_partial_captures_up_to_the_authorized_amount(service: PaymentService) -> None:
    authorized(service)
    run(service, CapturePayment(PAY, "60.00"), CapturePayment(PAY, "39.99"))
    with pytest.raises(CaptureExceedsAuthorizedError):
        run(service, CapturePayment(PAY, "0.02"))
    run(service, CapturePayment(PAY, "0.01"))  # boundary: exactly the rest
    state = service.get(PAY).state
    assert (state.captured_minor, state.hold_remaining_minor, state.status) == (
        10000,
        0,
        "captured",
    )
    with pytest.raises(InvalidTransitionError):
        run(service, CapturePayment(PAY, "0.01"))


def test_capture_checks_currency_and_precision(service: PaymentService) -> None:
    authorized(service, "1000", "JPY")
    with pytest.raises(CurrencyMismatchError):
        run(service, CapturePayment(PAY, "10", currency="EUR"))
    with pytest.raises(ValidationError):
        run(service, CapturePayment(PAY, "10.5"))
    run(service, CapturePayment(PAY, "10", currency="JPY"))
    assert service.get(PAY).state.captured_minor == 10


def test_capture_only_before_the_hold_deadline(service: PaymentService, clock: FakeClock) -> None:
    run(service, InitiatePayment(PAY, "5", "EUR", "m", "c"), AssessRisk(PAY, "approve", "0", "ok"))
    deadline = clock.now + timedelta(hours=1)
    run(service, AuthorizePayment(PAY, hold_until=deadline.isoformat()))
    clock.now = deadline - timedelta(microseconds=1)
    run(service, CapturePayment(PAY, "1.00"))
    with pytest.raises(HoldNotExpiredError):
        run(service, ExpirePayment(PAY))
    clock.now = deadline
    with pytest.raises(HoldExpiredError):
        run(service, CapturePayment(PAY, "1.00"))
    run(service, ExpirePayment(PAY))
    state = service.get(PAY).state
    assert (state.status, state.released_minor, state.hold_remaining_minor) == ("captured", 400, 0)


def test_expire_without_captures(service: PaymentService, clock: FakeClock) -> None:
    authorized(service)
    clock.advance(timedelta(days=7))
    run(service, ExpirePayment(PAY))
    assert status(service) == "expired"
    with pytest.raises(InvalidTransitionError):
        run(service, CapturePayment(PAY, "1"))


def test_hold_deadline_must_be_future_and_bounded(
    service: PaymentService, clock: FakeClock
) -> None:
    run(service, InitiatePayment(PAY, "5", "EUR", "m", "c"), AssessRisk(PAY, "approve", "0", "ok"))
    for hold_until in (clock.now, clock.now + timedelta(days=32)):
        with pytest.raises(ValidationError):
            run(service, AuthorizePayment(PAY, hold_until=hold_until.isoformat()))
    with pytest.raises(ValidationError):
        AuthorizePayment(PAY, hold_until="next tuesday")


def test_void_releases_the_remaining_hold(service: PaymentService) -> None:
    authorized(service)
    run(service, VoidPayment(PAY, "customer cancelled"))
    state = service.get(PAY).state
    assert (state.status, state.released_minor) == ("voided", 10000)
    with pytest.raises(InvalidTransitionError):
        run(service, VoidPayment(PAY))


def test_void_after_partial_capture_keeps_the_capture(service: PaymentService) -> None:
    authorized(service)
    run(service, CapturePayment(PAY, "30.00"), VoidPayment(PAY))
    state = service.get(PAY).state
    assert (state.status, state.captured_minor, state.released_minor) == ("captured", 3000, 7000)
    run(service, SettlePayment(PAY))
    assert service.get(PAY).state.settled_minor == 3000


def test_final_capture_releases_the_rest_in_the_same_append(service: PaymentService) -> None:
    authorized(service)
    result = service.execute(CapturePayment(PAY, "25.00", final=True), context("final"))
    assert [event.event_type for event in result.events] == [
        "PaymentCaptured",
        "PaymentHoldReleased",
    ]
    assert result.payment.state.hold_remaining_minor == 0


def test_settle_releases_the_rest_and_moves_net_captured(service: PaymentService) -> None:
    authorized(service)
    run(service, CapturePayment(PAY, "80.00"), RefundPayment(PAY, "5.00"))
    result = service.execute(SettlePayment(PAY, "batch-7"), context("settle"))
    assert [event.event_type for event in result.events] == [
        "PaymentHoldReleased",
        "PaymentSettled",
    ]
    state = result.payment.state
    assert (state.status, state.settled_minor, state.hold_remaining_minor) == ("settled", 7500, 0)
    with pytest.raises(InvalidTransitionError):
        run(service, SettlePayment(PAY))


def test_refunds_up_to_captured_after_settlement(service: PaymentService) -> None:
    authorized(service)
    run(service, CapturePayment(PAY, "50.00"), SettlePayment(PAY))
    with pytest.raises(RefundExceedsCapturedError):
        run(service, RefundPayment(PAY, "50.01"))
    run(service, RefundPayment(PAY, "20.00"), RefundPayment(PAY, "30.00"))
    state = service.get(PAY).state
    assert (state.status, state.refunded_minor) == ("refunded", 5000)
    with pytest.raises(RefundExceedsCapturedError):
        run(service, RefundPayment(PAY, "0.01"))
    with pytest.raises(CurrencyMismatchError):
        run(service, RefundPayment(PAY, "0.01", currency="USD"))


def test_refund_before_capture_is_invalid(service: PaymentService) -> None:
    authorized(service)
    with pytest.raises(InvalidTransitionError):
        run(service, RefundPayment(PAY, "1.00"))


def test_fully_refunded_payment_has_nothing_to_settle(service: PaymentService) -> None:
    authorized(service)
    run(service, CapturePayment(PAY, "10.00"), RefundPayment(PAY, "10.00"))
    with pytest.raises(InvalidTransitionError, match="nothing to settle"):
        run(service, SettlePayment(PAY))


def test_unknown_payment_and_duplicate_creation(service: PaymentService) -> None:
    with pytest.raises(NotFoundError):
        run(service, CapturePayment("nope", "1"))
    service.execute(InitiatePayment(PAY, "1", "EUR", "m", "c"), context("create"))
    with pytest.raises(AlreadyExistsError):
        service.execute(InitiatePayment(PAY, "1", "EUR", "m", "c"), context("other-key"))


def test_idempotent_retry_returns_the_original_result(service: PaymentService, store) -> None:  # type: ignore[no-untyped-def]
    authorized(service)
    first = service.execute(CapturePayment(PAY, "10.00"), context("capture-1"))
    run(service, CapturePayment(PAY, "5.00"))
    again = service.execute(CapturePayment(PAY, "10.00"), context("capture-1"))
    assert again.replayed
    assert not first.replayed
    assert again.events == first.events
    assert again.payment == first.payment  # the original result, not today's state
    assert len(store.load("payment#" + PAY)) == 5
    with pytest.raises(IdempotencyConflictError):
        service.execute(CapturePayment(PAY, "10.01"), context("capture-1"))


def test_inputs_are_validated_before_anything_is_written(service: PaymentService, store) -> None:  # type: ignore[no-untyped-def]
    bad: list[tuple[type[LedgerError], object]] = [
        (ValidationError, lambda: InitiatePayment(PAY, "1", "EUR", "m", "c c")),
        (LimitExceededError, lambda: InitiatePayment(PAY, "1", "EUR", "m" * 65, "c")),
        (PanDetectedError, lambda: InitiatePayment(PAY, "1", "EUR", "m", "4111111111111111")),
        (
            PanDetectedError,
            lambda: InitiatePayment(
                PAY, "1", "EUR", "m", "c", description="pan 4111 1111 1111 1111"
            ),
        ),
        (
            PanDetectedError,
            lambda: AssessRisk(PAY, "approve", "0", "ok", {"bin": 4111111111111111}),
        ),
        (ValidationError, lambda: AssessRisk(PAY, "approve", "1.5", "score out of range")),
        (ValidationError, lambda: AssessRisk(PAY, "maybe", "0.5", "x")),  # type: ignore[arg-type]
        (ValidationError, lambda: AssessRisk(PAY, "approve", "0.5", " ")),
        (LimitExceededError, lambda: AssessRisk(PAY, "approve", "0.5", "x" * 1025)),
        (LimitExceededError, lambda: InitiatePayment(PAY, "99999999999999999999", "EUR", "m", "c")),
    ]
    for error, make in bad:
        with pytest.raises(error):
            make()  # type: ignore[operator]
    assert store.stream_ids() == []


def test_every_money_moving_event_balances(recorded_history) -> None:  # type: ignore[no-untyped-def]
    moved = 0
    for event in recorded_history:
        payload = decode_payload(event.event_type, event.schema_version, event.payload)
        postings = getattr(payload, "postings", ())
        moved += bool(postings)
        assert imbalances(postings) == {}
    assert moved == 4  # authorize, capture, hold release, settle


def test_upcaster_turns_an_old_payload_into_the_current_model() -> None:
    from ledger.domain.errors import UndecodableEventError

    old = '{"merchant_id":"m","processor":"acme","reason":"declined","code":"05"}'
    upcasters = {("PaymentFailed", 1): lambda doc: {**{k: v for k, v in doc.items() if k != "code"},
                                                    "processor_code": doc["code"]}}  # fmt: skip
    payload = decode_payload(
        "PaymentFailed", 1, old, upcasters=upcasters, schema_versions={"PaymentFailed": 2}
    )
    assert payload.processor_code == "05"  # type: ignore[attr-defined]
    with pytest.raises(UndecodableEventError):
        decode_payload("PaymentFailed", 1, old)  # unknown field "code" in v1
    with pytest.raises(UndecodableEventError):
        decode_payload("PaymentTeleported", 1, "{}")
    with pytest.raises(UndecodableEventError):
        decode_payload("PaymentFailed", 9, "{}")
    assert set(PAYLOAD_TYPES) >= {"PaymentInitiated", "PaymentSettled", "PaymentRefunded"}


def test_error_messages_never_carry_a_card_number() -> None:
    with pytest.raises(ValidationError) as error:
        InitiatePayment("card 4111111111111111", "1", "EUR", "m", "c")
    assert "4111111111111111" not in error.value.message
    assert "[PAN REDACTED]" in error.value.message


def test_timestamps_out_of_range_are_validation_errors() -> None:
    for text in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        with pytest.raises(ValidationError, match="out of range"):
            AuthorizePayment(PAY, hold_until=text)


def test_as_of_takes_the_history_recorded_by_then(
    service: PaymentService, clock: FakeClock
) -> None:
    authorized(service)
    clock.advance(timedelta(hours=1))
    run(service, CapturePayment(PAY, "1.00"))
    before_capture = (clock.now - timedelta(minutes=1)).isoformat()
    assert service.get(PAY, as_of=before_capture).state.status == "authorized"
    assert service.get(PAY, as_of=clock.now.isoformat()).state.status == "captured"
    with pytest.raises(NotFoundError):
        service.get(PAY, as_of="2000-01-01T00:00:00Z")
    assert service.get(PAY, version_max=4).version == 4
    with pytest.raises(NotFoundError):  # a version not reached is refused, never clamped
        service.get(PAY, version_max=5)
