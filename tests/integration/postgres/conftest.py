"""Real PostgreSQL for the view tests, and real histories to feed it.

One server per session: the one in ``PAYLEDGER_DATABASE_URL`` if set, else an embedded server in
a temporary directory. Every test gets its own freshly migrated schema, dropped afterwards.
Histories come from ``PaymentService`` on the in-memory store (the domain decides every event),
driven by random command sequences that span two months (so ``postings`` has two partitions).
"""

from __future__ import annotations

import contextlib
import os
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devstack.postgres import EmbeddedPostgres
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
from ledger.envelope import Actor, RecordedEvent, payment_stream_id
from ledger.memory import MemoryEventStore
from ledger.service import CommandContext, PaymentService, PaymentSnapshot, fold
from projections.postgres.migrate import migrate
from projections.postgres.projection import PostgresProjection, connect_url
from projections.postgres.rows import snapshot_from_row
from projections.postgres.tables import payment_select, qualified
from tests.unit.conftest import FakeClock

DATABASE_URL_VARIABLE = "PAYLEDGER_DATABASE_URL"
START = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)  # two days before a month boundary
ACTORS = (
    Actor(kind="agent", id="fraud-agent", model="gbm", version="7"),
    Actor(kind="agent", id="router-agent", model="bandit", version="3"),
    Actor(kind="api", id="checkout-api"),
    Actor(kind="operator", id="risk-ops-1"),
    Actor(kind="system", id="settlement-batch"),
)
COMMANDS = (
    "initiate",
    "assess",
    "assess",
    "authorize",
    "authorize",
    "capture",
    "capture",
    "void",
    "expire",
    "settle",
    "settle",
    "refund",
    "fail",
)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get(DATABASE_URL_VARIABLE, "").strip()
    if external:
        yield external
        return
    with EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", delete=True) as server:
        yield server.url


@pytest.fixture
def connection(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        yield connection


def unique_schema_name() -> str:
    """Unique per test, so runs sharing a server (PAYLEDGER_DATABASE_URL) never collide."""
    return f"t_{uuid.uuid4().hex[:12]}"


def create_schema(connection: psycopg.Connection[Any]) -> str:
    schema = unique_schema_name()
    migrate(connection, schema)
    return schema


def drop_schema(connection: psycopg.Connection[Any], schema: str) -> None:
    connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def schema(connection: psycopg.Connection[Any]) -> Iterator[str]:
    """A freshly migrated schema of its own, dropped at teardown."""
    name = create_schema(connection)
    yield name
    drop_schema(connection, name)


@pytest.fixture
def other_schema(connection: psycopg.Connection[Any]) -> Iterator[str]:
    name = create_schema(connection)
    yield name
    drop_schema(connection, name)


@pytest.fixture
def projection(postgres_url: str, schema: str) -> Iterator[PostgresProjection]:
    projection = PostgresProjection(connect_url(postgres_url), schema)
    yield projection
    projection.close()


# ── histories ────────────────────────────────────────────────────────────────────────────────

# (payment index, command name, share in percent, actor index, hours to advance before it)
Step = tuple[int, str, int, int, int]


@dataclass
class History:
    store: MemoryEventStore

    @property
    def stream_ids(self) -> list[str]:
        return self.store.stream_ids()

    def stream(self, stream_id: str) -> list[RecordedEvent]:
        return self.store.load(stream_id)

    def events(self) -> list[RecordedEvent]:
        """Every event in the order the stream delivers them (recorded order, then version)."""
        events = [event for stream_id in self.stream_ids for event in self.stream(stream_id)]
        return sorted(events, key=lambda event: (event.recorded_at, event.event_id))

    def snapshots(self) -> dict[str, PaymentSnapshot]:
        snapshots = {}
        for stream_id in self.stream_ids:
            snapshot = fold(self.stream(stream_id))
            assert snapshot is not None
            snapshots[snapshot.state.payment_id] = snapshot
        return snapshots


def build_history(steps: Sequence[Step]) -> History:
    """Run ``steps`` through the payment service; rejected commands simply add no event."""
    clock = FakeClock(START)
    store = MemoryEventStore()
    service = PaymentService(store, clock=clock, sleep=lambda _: None)
    for number, (index, name, share, actor, hours) in enumerate(steps):
        clock.advance(timedelta(hours=hours))
        payment_id = f"pay-{index}"
        snapshot = fold(store.load(payment_stream_id(payment_id)))
        state = None if snapshot is None else snapshot.state
        command = _command(name, payment_id, index, share, state, clock.now)
        if command is None:
            continue
        with contextlib.suppress(LedgerError):  # a rejected command records nothing
            service.execute(command, CommandContext(f"key-{number}", ACTORS[actor]))
    return History(store)


def _command(
    name: str, payment_id: str, index: int, share: int, state: Any, now: datetime
) -> Command | None:
    currency = ("EUR", "JPY", "BHD")[index % 3] if state is None else state.currency
    if name == "initiate" or state is None:
        amount = format_amount(100 + share * 37 + index, currency)
        return InitiatePayment(payment_id, amount, currency, f"m-{index % 2}", f"c-{index}")
    if name == "assess":
        decision = "approve" if share < 70 else "review" if share < 85 else "decline"
        return AssessRisk(payment_id, decision, f"0.{share:02d}", "model says so", {"s": share})  # type: ignore[arg-type]
    if name == "authorize":
        return AuthorizePayment(
            payment_id, "acme", hold_until=(now + timedelta(hours=30)).isoformat()
        )
    if name == "capture":
        remaining = state.hold_remaining_minor
        minor = max(1, remaining * share // 100)
        return CapturePayment(payment_id, format_amount(minor, currency), final=share % 2 == 0)
    if name == "refund":
        minor = max(1, (state.captured_minor - state.refunded_minor) * share // 100)
        return RefundPayment(payment_id, format_amount(minor, currency))
    return {
        "void": VoidPayment(payment_id),
        "expire": ExpirePayment(payment_id),
        "settle": SettlePayment(payment_id),
        "fail": FailPayment(payment_id, "processor declined"),
    }.get(name)


def random_steps(rng: random.Random, payments: int, count: int) -> list[Step]:
    """A random command sequence; early steps walk each payment along its happy path."""
    steps: list[Step] = []
    for index in range(payments):
        for name in ("initiate", "assess", "authorize", "capture"):
            steps.append((index, name, rng.randrange(1, 60), rng.randrange(len(ACTORS)), 0))
    for _ in range(count):
        steps.append(
            (
                rng.randrange(payments),
                rng.choice(COMMANDS),
                rng.randrange(1, 101),
                rng.randrange(len(ACTORS)),
                rng.choice((0, 0, 1, 3, 12)),
            )
        )
    return steps


def random_history(seed: int, payments: int = 6, count: int = 40) -> History:
    return build_history(random_steps(random.Random(seed), payments, count))


# ── deliveries ───────────────────────────────────────────────────────────────────────────────


def batches(events: Sequence[RecordedEvent], size: int) -> list[list[RecordedEvent]]:
    return [list(events[start : start + size]) for start in range(0, len(events), size)]


def interleaved(history: History, rng: random.Random) -> list[RecordedEvent]:
    """All events, streams merged in a random order, each stream still in version order."""
    queues = [list(history.stream(stream_id)) for stream_id in history.stream_ids]
    merged: list[RecordedEvent] = []
    while queues:
        queue = rng.choice(queues)
        merged.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return merged


def apply_all(
    projection: PostgresProjection, deliveries: Sequence[Sequence[RecordedEvent]]
) -> None:
    for delivery in deliveries:
        result = projection.apply(delivery)
        assert not result.failures, result.failures


# ── reading the views ────────────────────────────────────────────────────────────────────────


def payment_snapshots(
    connection: psycopg.Connection[Any], schema: str
) -> dict[str, PaymentSnapshot]:
    rows = connection.execute(
        sql.SQL("SELECT {} FROM {} AS p").format(payment_select("p"), qualified(schema, "payments"))
    ).fetchall()
    return {row[0]: snapshot_from_row(row) for row in rows}


def posting_lines(connection: psycopg.Connection[Any], schema: str) -> list[tuple[Any, ...]]:
    """(event_id, line, account, direction, amount_minor, currency, phase, recorded_at text)."""
    return connection.execute(
        sql.SQL(
            "SELECT event_id, line, account, direction, amount_minor, currency, phase,"
            """ to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
            " FROM {} ORDER BY event_id, line"
        ).format(qualified(schema, "postings"))
    ).fetchall()


def expected_posting_lines(events: Sequence[RecordedEvent]) -> list[tuple[Any, ...]]:
    lines = []
    for event in events:
        payload = decode_payload(event.event_type, event.schema_version, event.payload)
        for number, line in enumerate(getattr(payload, "postings", ()), start=1):
            lines.append(
                (
                    event.event_id,
                    number,
                    line.account,
                    line.direction,
                    line.amount_minor,
                    line.currency,
                    line.phase,
                    event.recorded_at,
                )
            )
    return sorted(lines)
