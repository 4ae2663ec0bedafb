"""Property: random command sequences keep every ledger invariant (hypothesis state machine)."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger.codec import verify_chain
from ledger.domain.errors import LedgerError
from ledger.domain.events import decode_payload
from ledger.domain.money import format_amount
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
from ledger.envelope import payment_stream_id
from ledger.memory import MemoryEventStore
from ledger.service import PaymentService, fold
from tests.unit.conftest import FakeClock, context

PAYMENT_IDS = ("pay-a", "pay-b", "pay-c")
payment_ids = st.sampled_from(PAYMENT_IDS)
amounts_minor = st.integers(min_value=1, max_value=20_000)
# A share of what is still capturable/refundable: a percent (above 100 asks for too much on
# purpose) or the exact boundary: all of it, one minor unit less, one more.
shares = st.one_of(
    st.tuples(st.just("percent"), st.integers(min_value=1, max_value=120)),
    st.tuples(st.just("delta"), st.sampled_from([-1, 0, 1])),
)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store = MemoryEventStore()
        self.service = PaymentService(self.store, clock=self.clock, sleep=lambda _: None)
        self.keys = itertools.count()
        self.currency: dict[str, str] = {}
        self.last: tuple[Command, str] | None = None
        self.outcomes: Counter[str] = Counter()

    def _execute(self, command: Command) -> None:
        key = f"key-{next(self.keys)}"
        stream_id = payment_stream_id(command.payment_id)
        before = len(self.store.load(stream_id))
        try:
            result = self.service.execute(command, context(key))
        except LedgerError as error:
            self.outcomes[error.code] += 1
            assert len(self.store.load(stream_id)) == before, "a rejected command wrote events"
            return
        self.outcomes[type(command).__name__] += 1
        assert not result.replayed
        assert len(self.store.load(stream_id)) == before + len(result.events)
        self.last = (command, key)

    def _amount(self, payment_id: str, minor: int) -> str:
        return format_amount(minor, self.currency.get(payment_id, "EUR"))

    def _state(self, payment_id: str):  # type: ignore[no-untyped-def]
        snapshot = fold(self.store.load(payment_stream_id(payment_id)))
        return None if snapshot is None else snapshot.state

    def _share(self, total_minor: int, share: tuple[str, int]) -> int:
        kind, value = share
        if kind == "delta":
            return max(1, total_minor + value)
        return max(1, total_minor * value // 100)

    @initialize(
        minors=st.lists(amounts_minor, min_size=3, max_size=3),
        currencies=st.lists(st.sampled_from(["EUR", "JPY", "BHD"]), min_size=3, max_size=3),
    )
    def open_payments(self, minors: list[int], currencies: list[str]) -> None:
        for payment_id, minor, currency in zip(PAYMENT_IDS, minors, currencies, strict=True):
            self.initiate(payment_id, minor, currency)

    @rule(payment_id=payment_ids)
    def next_happy_step(self, payment_id: str) -> None:
        """Moves a payment along its usual path, so deep states are reached often."""
        state = self._state(payment_id)
        if state is None:
            return
        if state.status in ("initiated", "in_review"):
            self.assess(payment_id, "approve")
        elif state.status == "approved":
            self.authorize(payment_id, 48)
        elif state.status in ("authorized", "captured") and state.hold_remaining_minor > 0:
            self.capture(payment_id, ("percent", 50), final=False)

    @rule(
        payment_id=payment_ids, minor=amounts_minor, currency=st.sampled_from(["EUR", "JPY", "BHD"])
    )
    def initiate(self, payment_id: str, minor: int, currency: str) -> None:
        self.currency.setdefault(payment_id, currency)
        amount = format_amount(minor, self.currency[payment_id])
        self._execute(
            InitiatePayment(payment_id, amount, self.currency[payment_id], "m-1", f"c-{payment_id}")
        )

    @rule(
        payment_id=payment_ids,
        decision=st.sampled_from(["approve", "approve", "review", "decline"]),
    )
    def assess(self, payment_id: str, decision: str) -> None:
        self._execute(AssessRisk(payment_id, decision, "0.42", "model says so"))  # type: ignore[arg-type]

    @rule(payment_id=payment_ids, hours=st.integers(1, 200))
    def authorize(self, payment_id: str, hours: int) -> None:
        hold_until = (self.clock.now + timedelta(hours=hours)).isoformat()
        self._execute(AuthorizePayment(payment_id, "acme", hold_until=hold_until))

    @rule(payment_id=payment_ids)
    def fail(self, payment_id: str) -> None:
        self._execute(FailPayment(payment_id, "processor declined", "acme"))

    @rule(payment_id=payment_ids, share=shares, final=st.booleans())
    def capture(self, payment_id: str, share: tuple[str, int], final: bool) -> None:
        state = self._state(payment_id)
        minor = self._share(state.hold_remaining_minor if state else 100, share)
        self._execute(CapturePayment(payment_id, self._amount(payment_id, minor), final=final))

    @rule(payment_id=payment_ids)
    def void(self, payment_id: str) -> None:
        self._execute(VoidPayment(payment_id))

    @rule(payment_id=payment_ids)
    def expire(self, payment_id: str) -> None:
        self._execute(ExpirePayment(payment_id))

    @rule(payment_id=payment_ids)
    def settle(self, payment_id: str) -> None:
        self._execute(SettlePayment(payment_id))

    @rule(payment_id=payment_ids, share=shares)
    def refund(self, payment_id: str, share: tuple[str, int]) -> None:
        state = self._state(payment_id)
        minor = self._share(state.captured_minor - state.refunded_minor if state else 100, share)
        self._execute(RefundPayment(payment_id, self._amount(payment_id, minor)))

    @rule(hours=st.integers(1, 100))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))

    @precondition(lambda self: self.last is not None)
    @rule()
    def client_retries_the_last_command(self) -> None:
        assert self.last is not None
        command, key = self.last
        stream_id = payment_stream_id(command.payment_id)
        before = self.store.load(stream_id)
        result = self.service.execute(command, context(key))
        assert result.replayed
        assert self.store.load(stream_id) == before

    @invariant()
    def every_payment_keeps_its_invariants(self) -> None:
        totals: Counter[str] = Counter()
        for stream_id in self.store.stream_ids():
            events = self.store.load(stream_id)
            verify_chain(events)
            snapshot = fold(events)
            assert snapshot is not None
            state = snapshot.state
            assert 0 <= state.captured_minor <= state.authorized_minor <= state.amount_minor
            assert 0 <= state.refunded_minor <= state.captured_minor
            assert state.captured_minor + state.released_minor <= state.authorized_minor
            assert state.hold_remaining_minor >= 0
            assert (
                not state.settled
                or state.settled_minor == state.captured_minor - _refunded_before_settle(events)
            )
            assert snapshot == self.service.get(state.payment_id)
            for event in events:
                postings = getattr(
                    decode_payload(event.event_type, event.schema_version, event.payload),
                    "postings",
                    (),
                )
                assert imbalances(postings) == {}, event
                for line in postings:
                    totals[line.currency] += (
                        line.amount_minor if line.direction == "debit" else -line.amount_minor
                    )
        assert all(total == 0 for total in totals.values()), totals


def _refunded_before_settle(events: list) -> int:  # type: ignore[type-arg]
    refunded = 0
    for event in events:
        if event.event_type == "PaymentSettled":
            return refunded
        if event.event_type == "PaymentRefunded":
            refunded += decode_payload(event.event_type, 1, event.payload).amount_minor  # type: ignore[attr-defined]
    raise AssertionError("settled without a PaymentSettled event")


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLedgerInvariants = LedgerMachine.TestCase
