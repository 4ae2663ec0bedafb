"""8 threads racing commands on the same payments, through the moto server."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from ledger.codec import verify_chain
from ledger.domain.errors import ConcurrencyError, LedgerError
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    Command,
    InitiatePayment,
    RefundPayment,
)
from ledger.dynamodb import DynamoDBEventStore
from ledger.envelope import Actor, RecordedEvent
from ledger.service import CommandContext, CommandResult, PaymentService, fold

THREADS = 8
COMMANDS_PER_THREAD = 12
PAYMENTS = ("race-a", "race-b", "race-c")


@pytest.fixture
def service(dynamodb_client, events_table) -> PaymentService:  # type: ignore[no-untyped-def]
    return PaymentService(DynamoDBEventStore(dynamodb_client, events_table), retries_max=8)


def test_racing_commands_lose_and_duplicate_nothing(service: PaymentService) -> None:
    actor = Actor(kind="agent", id="racer")
    for payment_id in PAYMENTS:
        for step, command in enumerate(
            [
                InitiatePayment(payment_id, "1000.00", "EUR", "m-1", "c-1"),
                AssessRisk(payment_id, "approve", "0.1", "ok"),
                AuthorizePayment(payment_id),
            ]
        ):
            service.execute(command, CommandContext(f"{payment_id}-setup-{step}", actor))

    barrier = threading.Barrier(THREADS)
    results: list[tuple[Command, str, CommandResult]] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def racer(worker: int) -> None:
        chooser = random.Random(worker)
        barrier.wait()
        for index in range(COMMANDS_PER_THREAD):
            payment_id = chooser.choice(PAYMENTS)
            command: Command = (
                CapturePayment(payment_id, "7.00")
                if chooser.random() < 0.7
                else RefundPayment(payment_id, "1.00")
            )
            key = f"w{worker}-c{index}"
            try:
                result = service.execute(command, CommandContext(key, actor))
            except ConcurrencyError:
                outcome = "concurrency_conflict"
            except LedgerError as error:
                outcome = error.code
            else:
                outcome = "ok"
                with lock:
                    results.append((command, key, result))
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=racer, args=(worker,)) for worker in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(outcomes.values()) == THREADS * COMMANDS_PER_THREAD
    assert outcomes["ok"] > THREADS, outcomes  # most races are resolved by retrying
    stored: dict[str, list[RecordedEvent]] = {p: service.load(p) for p in PAYMENTS}
    for events in stored.values():
        verify_chain(events)  # versions 1..n without gaps, every link intact
        keys = Counter(event.idempotency_key for event in events)
        assert all(count == 1 for count in keys.values()), "a command was applied twice"
        snapshot = fold(events)
        assert snapshot is not None
        assert snapshot.state.captured_minor <= snapshot.state.authorized_minor
        assert snapshot.state.refunded_minor <= snapshot.state.captured_minor

    # Every successful command's events are stored exactly once, and nothing else was written.
    stored_ids = Counter(e.event_id for events in stored.values() for e in events)
    for command, key, result in results:
        for event in result.events:
            assert stored_ids[event.event_id] == 1, (command, key)
            assert event.idempotency_key == key
    successful = sum(len(result.events) for _, _, result in results)
    assert sum(stored_ids.values()) == 3 * len(PAYMENTS) + successful
