"""Analytics window benchmark (issue 4): one full shard-minute through Lambda's window state.

A Kinesis shard takes at most 1,000 records/s, so a 60 s window holds at most 60,000 events. They
are folded as Lambda delivers them, ``--batch`` records per invocation, the state passing through
JSON between invocations (``WindowFold.from_state`` → ``candidates`` → ``fold`` →
``checked_state`` → ``json.dumps``) as it does in ``handlers/analytics.py``; every tenth record
is delivered twice. Measured in the same run against a baseline: the same events folded once
without any state round trip (the cost of the figures alone). Prints the events/s of both, the
ratio, the slowest invocation (the last ones carry the largest state), the final state size
against Lambda's 1 MB, and peak RSS. Exits non-zero if the two folds disagree.

Decoding the records (JSON, pydantic) is not measured: every consumer pays it the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import resource
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.decoding import decode_event
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    FailPayment,
    InitiatePayment,
    RefundPayment,
)
from ledger.envelope import Actor
from ledger.memory import MemoryEventStore
from ledger.service import CommandContext, PaymentService
from projections.analytics import STATE_BYTES_MAX, WindowEvent, WindowFold, WindowKey, checked_state

EVENTS = 60_000
BATCH = 1_000
MERCHANTS = 300
KEY = WindowKey.parse("2026-11-30T12:00:00Z", "2026-11-30T12:01:00Z", "shardId-000000000000")


def templates() -> list[WindowEvent]:
    """One event of each kind the fold counts, decided by the real service."""
    clock_now = [datetime(2026, 11, 30, 12, tzinfo=UTC)]
    store = MemoryEventStore()
    service = PaymentService(store, clock=lambda: clock_now[0], sleep=lambda _: None)
    agent = Actor(kind="agent", id="fraud-agent", model="gbm", version="7")
    steps = [
        InitiatePayment("pay-1", "10.00", "EUR", "m-0", "c-1"),
        AssessRisk("pay-1", "approve", "0.1", "ok"),
        AuthorizePayment("pay-1"),
        CapturePayment("pay-1", "4.00"),
        RefundPayment("pay-1", "1.00"),
        InitiatePayment("pay-2", "5.00", "USD", "m-0", "c-2"),
        AssessRisk("pay-2", "approve", "0.2", "ok"),
        FailPayment("pay-2", "declined"),
    ]
    for number, command in enumerate(steps):
        service.execute(command, CommandContext(f"k-{number}", agent))
        clock_now[0] += timedelta(seconds=1)
    events = [event for stream in store.stream_ids() for event in store.load(stream)]
    return [WindowEvent(event, decode_event(event)) for event in events]


def workload(events_total: int, rng: random.Random) -> list[WindowEvent]:
    """``events_total`` distinct events over ``MERCHANTS`` merchants, every tenth one twice."""
    kinds = templates()
    events = []
    for _ in range(events_total):
        template = rng.choice(kinds)
        payload = template.payload.model_copy(
            update={"merchant_id": f"m-{rng.randrange(MERCHANTS)}"}
        )
        event = dataclasses.replace(
            template.event, event_id=str(uuid.UUID(int=rng.getrandbits(128)))
        )
        events.append(WindowEvent(event, payload))
    delivered = []
    for number, item in enumerate(events):
        delivered.append(item)
        if number % 10 == 0:
            delivered.append(item)
    return delivered


def windowed(delivered: list[WindowEvent], batch: int) -> tuple[WindowFold, float, float, int]:
    """Fold through the state; (fold, seconds, slowest invocation in seconds, state bytes)."""
    state: dict[str, Any] = {}
    slowest = 0.0
    size = 0
    started = time.perf_counter()
    fold = WindowFold()
    for start in range(0, len(delivered), batch):
        invocation = time.perf_counter()
        fold = WindowFold.from_state(state, KEY)
        fold.fold(fold.candidates(delivered[start : start + batch]))
        encoded, size = checked_state(fold, KEY)
        state = json.loads(json.dumps(encoded, separators=(",", ":")))
        slowest = max(slowest, time.perf_counter() - invocation)
    return fold, time.perf_counter() - started, slowest, size


def once(delivered: list[WindowEvent]) -> tuple[WindowFold, float]:
    started = time.perf_counter()
    fold = WindowFold()
    fold.fold(fold.candidates(delivered))
    return fold, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--batch", type=int, default=BATCH)
    arguments = parser.parse_args()
    delivered = workload(arguments.events, random.Random(4))
    print(
        f"bench/analytics.py — one shard-window: {arguments.events:,} events"
        f" ({len(delivered):,} records with copies), {MERCHANTS} merchants,"
        f" {arguments.batch:,} records per invocation"
    )
    baseline, baseline_s = once(delivered)
    fold, window_s, slowest_s, state_bytes = windowed(delivered, arguments.batch)
    if [dataclasses.astuple(row) for row in fold.rows()] != [
        dataclasses.astuple(row) for row in baseline.rows()
    ]:
        print("  CORRECTNESS MISMATCH: the windowed fold differs from the single fold")
        return 1
    invocations = -(-len(delivered) // arguments.batch)
    print(f"  baseline, one fold:      {len(delivered) / baseline_s:>10,.0f} records/s")
    print(
        f"  through the state:       {len(delivered) / window_s:>10,.0f} records/s"
        f"  ({window_s / baseline_s:.1f}× the baseline's time, {invocations} invocations,"
        f" slowest {slowest_s * 1000:,.0f} ms)"
    )
    print(
        f"  final state: {state_bytes:,} bytes ({100 * state_bytes / STATE_BYTES_MAX:.0f}% of the"
        f" {STATE_BYTES_MAX:,} allowed), digests kept: {fold.deduplicated}"
    )
    print(f"  peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
