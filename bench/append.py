"""Write-path benchmark (issue: ledger core).

Prints, for the command path load → decide → append:
- DynamoDB requests per single-event command, counted with a botocore event hook (target: 2);
- write units per 5-event payment lifecycle, from the stored items' sizes with DynamoDB's
  rounding (target: ≤ 5 for ordinary payloads);
- commands/s and CPU µs per command on the in-memory backend (target: ≤ 1,000 µs), against a
  baseline measured in the same run: the raw cost of what every command must do regardless of
  design (canonical JSON + SHA-256 of its event, and one dict insert), to show the overhead;
- commands/s on the moto server (loopback HTTP: dominated by moto, shown for scale).
"""

from __future__ import annotations

import hashlib
import math
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3

from devstack.motoserver import MotoServer
from devstack.template import create_table
from ledger.codec import canonical_json
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    Command,
    InitiatePayment,
    SettlePayment,
)
from ledger.dynamodb import DynamoDBEventStore, event_to_item
from ledger.envelope import Actor
from ledger.memory import MemoryEventStore
from ledger.service import CommandContext, PaymentService

MEMORY_PAYMENTS = 4_000
MOTO_PAYMENTS = 60
ACTOR = Actor(kind="agent", id="payments-agent", model="router", version="2026.11")


def lifecycle(payment_id: str) -> Iterator[tuple[Command, CommandContext]]:
    """An ordinary 5-event payment: initiate, approve, authorize, capture all, settle."""
    commands: list[Command] = [
        InitiatePayment(payment_id, "129.90", "EUR", "merchant-0042", "customer-8812c1",
                        metadata={"order_id": "ORD-2026-118812", "channel": "web"}),
        AssessRisk(payment_id, "approve", "0.0712", "velocity and device checks passed",
                   metadata={"rules_fired": 0}),
        AuthorizePayment(payment_id, "acme", reference="acme-auth-5512"),
        CapturePayment(payment_id, "129.90"),
        SettlePayment(payment_id, "batch-2026-11-21"),
    ]  # fmt: skip
    for index, command in enumerate(commands):
        yield command, CommandContext(f"{payment_id}-step-{index}", ACTOR)


# ── DynamoDB item size, as DynamoDB bills it ─────────────────────────────────────────────────


def attribute_value_bytes(value: dict[str, Any]) -> int:
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode("utf-8"))
    if kind == "N":
        digits = content.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(content)
    if kind == "BOOL" or kind == "NULL":
        return 1
    if kind == "M":
        return 3 + sum(
            len(name.encode()) + attribute_value_bytes(item) + 1 for name, item in content.items()
        )
    if kind == "L":
        return 3 + sum(attribute_value_bytes(item) + 1 for item in content)
    raise AssertionError(kind)


def item_bytes(item: dict[str, Any]) -> int:
    return sum(
        len(name.encode("utf-8")) + attribute_value_bytes(value) for name, value in item.items()
    )


def write_units(item: dict[str, Any], *, transactional: bool) -> int:
    """Standard writes cost 1 WCU per 1 KB (rounded up); transactional writes cost 2."""
    return math.ceil(item_bytes(item) / 1024) * (2 if transactional else 1)


# ── measurements ─────────────────────────────────────────────────────────────────────────────


def measure_memory() -> tuple[float, float, int]:
    service = PaymentService(MemoryEventStore())
    work = [step for index in range(MEMORY_PAYMENTS) for step in lifecycle(f"pay-{index:07d}")]
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for command, context in work:
        service.execute(command, context)
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    return len(work) / wall, cpu / len(work) * 1e6, len(work)


def measure_baseline(commands: int) -> float:
    """µs per command for the irreducible part: canonical JSON + SHA-256 of an event, one insert."""
    payload = {"amount_minor": 12990, "currency": "EUR", "merchant_id": "merchant-0042"}
    document = {"event_id": "01a1fe0d-7021-706e-b017-6d6aa9f2fa0a", "payload": payload}
    stored: dict[tuple[int, int], str] = {}
    start = time.process_time()
    for index in range(commands):
        text = canonical_json(document)
        stored[(index, 1)] = hashlib.sha256(("0" * 64 + text).encode()).hexdigest()
    return (time.process_time() - start) / commands * 1e6


def measure_moto(endpoint_url: str) -> dict[str, Any]:
    client = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")  # fmt: skip
    create_table(client, "EventsTable", "bench-events")
    requests: Counter[str] = Counter()
    client.meta.events.register("before-call.dynamodb.*", _counter(requests))
    store = DynamoDBEventStore(client, "bench-events")
    service = PaymentService(store)
    per_command: list[int] = []
    units: list[int] = []
    start = time.perf_counter()
    for index in range(MOTO_PAYMENTS):
        lifecycle_units = 0
        for command, context in lifecycle(f"pay-{index:07d}"):
            before = sum(requests.values())
            result = service.execute(command, context)
            per_command.append(sum(requests.values()) - before)
            transactional = len(result.events) > 1
            lifecycle_units += sum(
                write_units(event_to_item(e), transactional=transactional) for e in result.events
            )
        units.append(lifecycle_units)
    elapsed = time.perf_counter() - start
    sizes = [item_bytes(event_to_item(e)) for e in store.load("payment#pay-0000000")]
    return {
        "commands_per_s": len(per_command) / elapsed,
        "requests_per_command": Counter(per_command),
        "request_kinds": dict(requests),
        "write_units_per_lifecycle": max(units),
        "item_bytes": sizes,
    }


def _counter(requests: Counter[str]) -> Callable[..., None]:
    def count(event_name: str, **_: Any) -> None:
        requests[event_name.rsplit(".", 1)[-1]] += 1

    return count


def main() -> int:
    memory_rate, memory_cpu_us, commands = measure_memory()
    baseline_us = measure_baseline(commands)
    with MotoServer() as server:
        moto = measure_moto(server.endpoint_url)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    requests = moto["requests_per_command"]
    print("bench/append.py — write path")
    print(
        f"  DynamoDB requests per command: {dict(requests)} "
        f"(kinds: {moto['request_kinds']}); target exactly 2"
    )
    print(f"  item sizes of one lifecycle (bytes): {moto['item_bytes']}")
    print(f"  write units per 5-event lifecycle: {moto['write_units_per_lifecycle']}; target ≤ 5")
    print(
        f"  in-memory: {memory_rate:,.0f} commands/s, "
        f"{memory_cpu_us:,.0f} µs CPU per command over {commands:,} "
        f"commands; target ≤ 1,000 µs"
    )
    print(
        f"  baseline (canonical JSON + SHA-256 + insert): {baseline_us:,.1f} µs per command; "
        f"command / baseline = {memory_cpu_us / baseline_us:,.1f}×"
    )
    print(f"  moto server: {moto['commands_per_s']:,.0f} commands/s (loopback HTTP)")
    print(f"  peak RSS: {peak_rss_mb:,.0f} MB")
    ok = set(requests) == {2} and moto["write_units_per_lifecycle"] <= 5 and memory_cpu_us <= 1_000
    print("  targets: " + ("met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
