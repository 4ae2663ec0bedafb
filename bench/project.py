"""Projection benchmark (issue 3): the PostgreSQL views, fed as DynamoDB Streams would feed them.

Generates ``EVENTS`` events (about 200,000 payments with realistic lifecycles over ~6 weeks, in
recorded order, so a payment's events land in different batches as they would on the stream),
applies them in batches of ``BATCH_SIZE`` through ``PostgresProjection`` into a fresh schema on
the embedded server, and measures on the same server in the same run:
- (a) raw COPY of exactly the rows the views end up with (the physical limit: the final rows,
  already encoded, copied into an identical empty schema);
- (b) a per-event baseline: one transaction per event with one statement per row (what a naive
  consumer or a per-event projection runner does), on the first ``BASELINE_EVENTS`` events.

Prints events/s for each, the ratios against the targets (≥ 50% of raw COPY, ≥ 10× per-event)
and peak RSS, with a profile of where the time goes when a target is missed. Exits non-zero only
on a crash or a correctness mismatch (views ≠ fold of the events, unbalanced postings, raw copy ≠
views, baseline ≠ batches); a missed target is reported, not failed.

``python bench/project.py --events 100000`` runs a smaller workload; ``--database-url URL`` uses
another server than a fresh embedded one.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import json
import pstats
import random
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from devstack.postgres import EmbeddedPostgres
from ledger.codec import verify_chain
from ledger.domain.events import decode_payload
from ledger.domain.payment import DEFAULT_HOLD, evolve
from ledger.domain.timestamps import format_timestamp
from ledger.envelope import GENESIS_HASH, Actor, RecordedEvent, payment_stream_id
from ledger.service import fold
from projections.core import ApplyResult
from projections.postgres import projection as projection_module
from projections.postgres.checksums import table_checksums
from projections.postgres.migrate import migrate
from projections.postgres.projection import PostgresProjection, connect_url
from projections.postgres.rows import StreamHead, plan_batch, snapshot_from_row
from projections.postgres.tables import (
    TABLE_COLUMNS,
    column_list,
    payment_select,
    qualified,
)

EVENTS = 1_000_000
BATCH_SIZE = 1_000
BASELINE_EVENTS = 20_000
PROFILE_BATCHES = 100
SAMPLE_EVERY = 200  # every 200th payment's events are kept to compare its row with the fold
SEED = 20261121
START = datetime(2026, 10, 1, tzinfo=UTC)
SPAN_S = 42 * 86_400
MERCHANTS = 2_000
CUSTOMERS = 150_000
TARGET_COPY_SHARE = 0.5
TARGET_PER_EVENT_FACTOR = 10.0

API = Actor(kind="api", id="checkout-api")
FRAUD_AGENT = Actor(kind="agent", id="fraud-agent", model="gbm-fraud", version="2026.11")
ROUTER_AGENT = Actor(kind="agent", id="router-agent", model="bandit-router", version="3.2")
OPERATOR = Actor(kind="operator", id="risk-ops-17")
SYSTEM = Actor(kind="system", id="settlement-batch")
PROCESSORS = ("acme", "globex", "initech")
CHANNELS = ("web", "app")


# ── workload: valid envelopes, built directly (the service would take ~10 minutes) ────────────


@dataclass(slots=True)
class Step:
    """One event of a planned lifecycle (consecutive steps of one command share its key)."""

    at_us: int  # microseconds after START
    event_type: str
    payload: dict[str, Any]
    actor: Actor
    command: int


def _transfer(debit: str, credit: str, amount: int, currency: str, phase: str) -> list[Any]:
    line = {"amount_minor": amount, "currency": currency, "phase": phase}
    return [
        line | {"account": debit, "direction": "debit"},
        line | {"account": credit, "direction": "credit"},
    ]


class Lifecycle:
    """Payment ``index``'s events as the domain would decide them, deterministic per index.

    Mix: 92% approved at once, 4% reviewed by an operator (70% then approved), 4% declined; 3% of
    authorizations fail; of authorized payments 7% are voided, 3% expire, the rest are captured
    (88% in full, else partially, with or without a final capture) and settled; 5% of settled
    payments are partly refunded.
    """

    def __init__(self, index: int) -> None:
        self.rng = random.Random(SEED * 1_000_003 + index)
        self.index = index
        self.payment_id = f"pay-{index:07d}"
        self.at_us = int(self.rng.uniform(0, SPAN_S) * 1_000_000)
        self.steps: list[Step] = []
        self._command = 0

    def add(self, delay_s: float, event_type: str, payload: dict[str, Any], actor: Actor) -> None:
        self.at_us += int(delay_s * 1_000_000)
        self._command += 1
        self.steps.append(Step(self.at_us, event_type, payload, actor, self._command))

    def also(self, event_type: str, payload: dict[str, Any]) -> None:
        """A second event of the previous command (same time, actor and idempotency key)."""
        previous = self.steps[-1]
        self.steps.append(Step(previous.at_us, event_type, payload, previous.actor, self._command))

    def plan(self) -> list[Step]:
        rng = self.rng
        roll = rng.random()
        currency = "EUR" if roll < 0.6 else "USD" if roll < 0.9 else "JPY"
        amount = max(1, int(rng.lognormvariate(3.5, 1.0) * (1 if currency == "JPY" else 100)))
        merchant_id = f"merchant-{rng.randrange(MERCHANTS):04d}"
        customer_id = f"customer-{rng.randrange(CUSTOMERS):06d}"
        self.add(0, "PaymentInitiated", {
            "payment_id": self.payment_id, "merchant_id": merchant_id,
            "customer_id": customer_id, "amount_minor": amount, "currency": currency,
            "metadata": {"order_id": f"ORD-{self.index:08d}", "channel": rng.choice(CHANNELS)},
        }, API)  # fmt: skip
        if not self._assess(merchant_id):
            return self.steps
        processor = rng.choice(PROCESSORS)
        if rng.random() < 0.03:
            self.add(rng.uniform(0.3, 2), "PaymentFailed", {
                "merchant_id": merchant_id, "processor": processor, "reason": "do_not_honor",
                "processor_code": "05",
            }, ROUTER_AGENT)  # fmt: skip
            return self.steps
        accounts = (f"customer:{customer_id}", f"merchant:{merchant_id}", f"processor:{processor}")
        self._authorized(amount, currency, merchant_id, processor, accounts)
        return self.steps

    def _assess(self, merchant_id: str) -> bool:
        rng = self.rng
        roll = rng.random()
        decision = "approve" if roll < 0.92 else "review" if roll < 0.96 else "decline"
        low, high = {"approve": (0.0, 0.3), "review": (0.4, 0.7)}.get(decision, (0.8, 1.0))
        score = f"{rng.uniform(low, high):.4f}"
        self.add(rng.uniform(0.05, 0.8), "RiskAssessed", {
            "merchant_id": merchant_id, "decision": decision, "score": score,
            "reason": f"model score {score}", "metadata": {"rules_fired": int(roll * 10)},
        }, FRAUD_AGENT)  # fmt: skip
        if decision == "review":
            decision = "approve" if rng.random() < 0.7 else "decline"
            self.add(rng.uniform(600, 14_400), "RiskAssessed", {
                "merchant_id": merchant_id, "decision": decision, "score": score,
                "reason": "manual review", "metadata": {"ticket": f"RISK-{self.index}"},
            }, OPERATOR)  # fmt: skip
        return decision == "approve"

    def _authorized(
        self,
        amount: int,
        currency: str,
        merchant_id: str,
        processor: str,
        accounts: tuple[str, str, str],
    ) -> None:
        rng = self.rng
        customer, merchant, clearing = accounts
        base = {"merchant_id": merchant_id, "currency": currency}
        hold_until_us = self.at_us + int(DEFAULT_HOLD.total_seconds() * 1_000_000)
        self.add(rng.uniform(0.3, 2), "PaymentAuthorized", base | {
            "amount_minor": amount, "processor": processor,
            "processor_reference": f"{processor}-{self.index:08d}",
            "hold_until": _timestamp(hold_until_us + 2_000_000),
            "postings": _transfer(customer, merchant, amount, currency, "pending"),
        }, ROUTER_AGENT)  # fmt: skip
        roll = rng.random()
        if roll < 0.10:
            release = base | {
                "released_minor": amount,
                "postings": _transfer(customer, merchant, amount, currency, "void_pending"),
            }
            if roll < 0.07:
                self.add(
                    rng.uniform(600, 86_400),
                    "PaymentVoided",
                    release | {"reason": "order cancelled"},
                    API,
                )
            else:
                self.add(
                    (hold_until_us - self.at_us) / 1e6 + 3_600, "PaymentExpired", release, SYSTEM
                )
            return
        captured = (
            amount if roll < 0.88 or amount < 2 else max(1, int(amount * rng.uniform(0.6, 0.95)))
        )
        remaining = amount - captured
        self.add(rng.uniform(3_600, 172_800), "PaymentCaptured", base | {
            "amount_minor": captured,
            "postings": _transfer(customer, merchant, captured, currency, "post_pending"),
        }, API)  # fmt: skip
        release = base | {
            "released_minor": remaining,
            "postings": _transfer(customer, merchant, remaining, currency, "void_pending"),
        }
        if remaining and roll < 0.94:  # a final capture releases the rest of the hold
            self.also("PaymentHoldReleased", release | {"reason": "final_capture"})
            remaining = 0
        settle = base | {
            "amount_minor": captured, "processor": processor,
            "settlement_reference": f"batch-{self.at_us // 86_400_000_000:03d}",
            "postings": _transfer(clearing, customer, captured, currency, "posted"),
        }  # fmt: skip
        delay = rng.uniform(86_400, 3 * 86_400)
        if remaining:  # settlement releases what is left of the hold first
            self.add(delay, "PaymentHoldReleased", release | {"reason": "settlement"}, SYSTEM)
            self.also("PaymentSettled", settle)
        else:
            self.add(delay, "PaymentSettled", settle, SYSTEM)
        if rng.random() < 0.05:
            refund = max(1, captured // rng.choice([2, 4, 10]))
            self.add(rng.uniform(86_400, 10 * 86_400), "PaymentRefunded", base | {
                "amount_minor": refund, "reason": "customer return",
                "postings": _transfer(merchant, customer, refund, currency, "posted"),
            }, API)  # fmt: skip


def _timestamp(at_us: int) -> str:
    return format_timestamp(START + timedelta(microseconds=at_us))


# ── the event stream ─────────────────────────────────────────────────────────────────────────


@dataclass(slots=True)
class _OpenStream:
    payment_id: str
    steps: list[Step]
    prev_hash: str = GENESIS_HASH
    correlation_id: str = ""
    previous_event_id: str = ""


@dataclass(slots=True)
class Expected:
    """What the views must hold after the whole workload, counted while generating it."""

    events: int = 0
    payments: int = 0
    posting_lines: int = 0
    agent_actions: int = 0


class Workload:
    """``events_total`` events in recorded order, built lazily batch by batch (memory stays flat).

    Payments start uniformly over ``SPAN_S``; each lifecycle's later events land days later, so
    the stream interleaves thousands of payments, as the events table's stream does.
    """

    def __init__(self, events_total: int) -> None:
        self.events_total = events_total
        schedule: list[int] = []
        payments = 0
        # Enough payments that cutting the time-ordered stream at events_total leaves only the
        # youngest lifecycles unfinished.
        while len(schedule) < events_total * 1.03 or payments < 10:
            for number, step in enumerate(Lifecycle(payments).plan()):
                schedule.append(step.at_us << 24 | payments << 4 | number)
            payments += 1
        assert payments < 1 << 20
        schedule.sort()
        self._schedule = schedule[:events_total]
        self.sample: dict[str, list[RecordedEvent]] = {}
        self.expected = Expected()

    def batches(
        self, batch_size: int, events_max: int | None = None
    ) -> Iterator[list[RecordedEvent]]:
        rng = random.Random(SEED)
        open_streams: dict[int, _OpenStream] = {}
        self.sample = {}
        self.expected = expected = Expected()
        batch: list[RecordedEvent] = []
        for key in self._schedule[:events_max]:
            index, number = key >> 4 & 0xFFFFF, key & 0xF
            if number == 0:
                lifecycle = Lifecycle(index)
                open_streams[index] = _OpenStream(lifecycle.payment_id, lifecycle.plan())
                expected.payments += 1
            stream = open_streams[index]
            event = _materialize(stream, number, rng)
            if number == len(stream.steps) - 1:
                del open_streams[index]
            expected.events += 1
            step = stream.steps[number]
            expected.posting_lines += len(step.payload.get("postings", ()))
            if event.actor.kind == "agent" or event.event_type == "RiskAssessed":
                expected.agent_actions += 1
            if index % SAMPLE_EVERY == 0:
                self.sample.setdefault(stream.payment_id, []).append(event)
            batch.append(event)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def _materialize(stream: _OpenStream, number: int, rng: random.Random) -> RecordedEvent:
    step = stream.steps[number]
    event_id = _uuid7(step.at_us, rng)
    if number == 0:
        stream.correlation_id = event_id
    same_command = number > 0 and stream.steps[number - 1].command == step.command
    causation_id = stream.previous_event_id if same_command else None
    recorded_at = _timestamp(step.at_us)
    key = f"{stream.payment_id}-{step.command}"
    digest = hashlib.sha256(key.encode()).hexdigest()  # stands in for the request's digest
    stream_id = payment_stream_id(stream.payment_id)
    document = {
        "stream_id": stream_id,
        "version": number + 1,
        "event_id": event_id,
        "event_type": step.event_type,
        "schema_version": 1,
        "occurred_at": recorded_at,
        "recorded_at": recorded_at,
        "actor": step.actor.to_dict(),
        "correlation_id": stream.correlation_id,
        "causation_id": causation_id,
        "idempotency_key": key,
        "request_digest": digest,
        "payload": step.payload,
        "prev_hash": stream.prev_hash,
    }
    event = RecordedEvent(
        stream_id=stream_id,
        version=number + 1,
        event_id=event_id,
        event_type=step.event_type,
        schema_version=1,
        occurred_at=recorded_at,
        recorded_at=recorded_at,
        actor=step.actor,
        correlation_id=stream.correlation_id,
        causation_id=causation_id,
        idempotency_key=key,
        request_digest=digest,
        payload=_CANONICAL.encode(step.payload),
        prev_hash=stream.prev_hash,
        hash=hashlib.sha256((stream.prev_hash + _CANONICAL.encode(document)).encode()).hexdigest(),
    )
    stream.prev_hash = event.hash
    stream.previous_event_id = event_id
    return event


_START_MS = int(START.timestamp() * 1000)
# ledger.codec.canonical_json's encoder without its float scan (the workload has no floats, and
# the sampled streams are checked with ledger.codec.verify_chain, which recomputes every hash).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _uuid7(at_us: int, rng: random.Random) -> str:
    """RFC 9562 UUIDv7 for the event's time: ms, then sub-ms precision (method 3), then random."""
    ms, sub_ms_us = divmod(at_us, 1000)
    value = (_START_MS + ms) << 80 | 0x7 << 76 | (sub_ms_us * 4) << 64 | 0b10 << 62
    return str(uuid.UUID(int=value | rng.getrandbits(62)))


# ── measurements ─────────────────────────────────────────────────────────────────────────────


class Mismatch(Exception):
    """The views disagree with the events: the benchmark fails."""


@dataclass(slots=True)
class Run:
    events: int = 0
    batches: int = 0
    apply_s: float = 0.0
    apply_cpu_s: float = 0.0
    plan_s: float = 0.0  # CPU in rows.plan_batch (classify, decode, fold, build rows)
    generate_s: float = 0.0


def run_projection(
    url: str,
    schema: str,
    workload: Workload,
    events_max: int | None = None,
    projection: PostgresProjection | None = None,
) -> Run:
    """Apply the workload batch by batch; only ``apply`` is timed (generating events is not)."""
    projection = projection or PostgresProjection(connect_url(url), schema)
    run = Run()

    def timed_plan(*args: Any) -> Any:
        cpu = time.process_time()
        try:
            return plan_batch(*args)
        finally:
            run.plan_s += time.process_time() - cpu

    # The projection module's own name for it, so each batch's planning is timed (once per
    # batch: no measurable overhead).
    projection_module.plan_batch = timed_plan  # type: ignore[assignment]
    total = min(workload.events_total, events_max or workload.events_total)
    progress_every = max(BATCH_SIZE, total // 5)
    started = time.perf_counter()
    for batch in workload.batches(BATCH_SIZE, events_max):
        # The generator keeps ~1M objects alive that a Lambda process would not have: frozen,
        # the collector's full passes over them are not charged to apply (measured: 25% of its
        # CPU at 300,000 events). What apply allocates is still collected as usual.
        gc.freeze()
        wall, cpu = time.perf_counter(), time.process_time()
        result = projection.apply(batch)
        run.apply_s += time.perf_counter() - wall
        run.apply_cpu_s += time.process_time() - cpu
        gc.unfreeze()
        if result.failures or result.applied != len(batch):
            raise Mismatch(f"batch {run.batches}: {result}")
        run.events += len(batch)
        run.batches += 1
        if events_max is None and run.events % progress_every < BATCH_SIZE:
            rate = run.events / run.apply_s
            print(f"    {run.events:>9,} events applied, {rate:,.0f} events/s", flush=True)
    run.generate_s = time.perf_counter() - started - run.apply_s
    projection_module.plan_batch = plan_batch
    projection.close()
    return run


def domain_costs_us(workload: Workload, events_max: int) -> tuple[float, float]:
    """CPU µs per event of ledger's decode_payload and of evolve, over a prefix (no database)."""
    decode_s = evolve_s = 0.0
    states: dict[str, Any] = {}
    count = 0
    for batch in workload.batches(BATCH_SIZE, events_max):
        for event in batch:
            cpu = time.process_time()
            payload = decode_payload(event.event_type, event.schema_version, event.payload)
            decoded = time.process_time()
            states[event.stream_id] = evolve(states.get(event.stream_id), payload)
            decode_s += decoded - cpu
            evolve_s += time.process_time() - decoded
            count += 1
    return decode_s / count * 1e6, evolve_s / count * 1e6


def check_views(connection: psycopg.Connection[Any], schema: str, workload: Workload) -> None:
    """Row counts, debits = credits, and sampled payments = the fold of their events."""
    expected = workload.expected
    count = sql.SQL("SELECT count(*) FROM {}")
    counts = {
        table: _scalar(connection, count.format(qualified(schema, table)))
        for table in TABLE_COLUMNS
    }
    wanted = {
        "payments": expected.payments,
        "postings": expected.posting_lines,
        "agent_actions": expected.agent_actions,
        "projection_positions": expected.payments,
    }
    if counts != wanted:
        raise Mismatch(f"row counts {counts}, expected {wanted}")
    versions = _scalar(
        connection,
        sql.SQL("SELECT sum(version) FROM {}").format(qualified(schema, "projection_positions")),
    )
    if versions != expected.events:
        raise Mismatch(f"positions add up to {versions} events, expected {expected.events}")
    signed = sql.SQL("sum(CASE direction WHEN 'debit' THEN amount_minor ELSE -amount_minor END)")
    unbalanced = connection.execute(
        sql.SQL("SELECT currency, phase, {0} FROM {1} GROUP BY 1, 2 HAVING {0} <> 0").format(
            signed, qualified(schema, "postings")
        )
    ).fetchall()
    if unbalanced:
        raise Mismatch(f"debits differ from credits: {unbalanced}")
    read = sql.SQL("SELECT {} FROM {} AS p WHERE payment_id = %s").format(
        payment_select("p"), qualified(schema, "payments")
    )
    for payment_id, events in workload.sample.items():
        verify_chain(events)  # the generated hashes are ledger.codec's
        row = connection.execute(read, (payment_id,)).fetchone()
        if row is None or snapshot_from_row(row) != fold(events):
            raise Mismatch(f"payments row of {payment_id} differs from the fold of its events")


def _scalar(connection: psycopg.Connection[Any], query: sql.Composed) -> Any:
    row = connection.execute(query).fetchone()
    assert row is not None
    return row[0]


def clone_partitions(connection: psycopg.Connection[Any], source: str, target: str) -> None:
    """Give ``target.postings`` the monthly partitions ``source.postings`` has."""
    partitions = connection.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        (f"{source}.postings",),
    ).fetchall()
    for name, bound in partitions:
        connection.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} {}").format(
                qualified(target, name), qualified(target, "postings"), sql.SQL(bound)
            )
        )


def raw_copy(connection: psycopg.Connection[Any], url: str, source: str, target: str) -> float:
    """Seconds to COPY exactly ``source``'s rows into the empty, identical ``target``.

    The rows are read out and encoded (binary COPY format) beforehand, table by table, so only
    the server's work is timed: one COPY and one commit per table.
    """
    migrate(connection, target)
    clone_partitions(connection, source, target)
    elapsed = 0.0
    with psycopg.connect(url, autocommit=True) as writer:
        for table, columns in TABLE_COLUMNS.items():
            out = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT BINARY)").format(
                column_list(columns), qualified(source, table)
            )
            with connection.cursor() as cursor, cursor.copy(out) as copy:
                chunks = [bytes(chunk) for chunk in copy]
            into = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                qualified(target, table), column_list(columns)
            )
            started = time.perf_counter()
            with writer.transaction(), writer.cursor() as cursor, cursor.copy(into) as copy:
                for chunk in chunks:
                    copy.write(chunk)
            elapsed += time.perf_counter() - started
            del chunks
    return elapsed


def per_event(
    connection: psycopg.Connection[Any], schema: str, events: list[RecordedEvent]
) -> float:
    """The naive consumer: per event, one transaction of one statement per row. Seconds taken.

    It shares the projection's pure half (``plan_batch``), so what differs is the round trips
    and the commits, not the Python work.
    """
    read_head = sql.SQL(
        "SELECT pos.version, pos.hash, {} FROM {} AS pos JOIN {} AS pay ON pay.payment_id = %s"
        " WHERE pos.stream_id = %s"
    ).format(
        payment_select("pay"),
        qualified(schema, "projection_positions"),
        qualified(schema, "payments"),
    )
    statements = {table: _insert(schema, table) for table in TABLE_COLUMNS}
    started = time.perf_counter()
    for event in events:
        with connection.transaction():
            row = connection.execute(read_head, (event.stream_id[8:], event.stream_id)).fetchone()
            heads = {}
            if row is not None:
                heads[event.stream_id] = StreamHead(row[0], row[1], snapshot_from_row(row[2:]))
            result = ApplyResult()
            rows = plan_batch({event.stream_id: [event]}, heads, result)
            if result.failures or result.applied != 1:
                raise Mismatch(f"per-event baseline: {result}")
            for table, table_rows in (
                ("projection_positions", rows.positions),
                ("payments", rows.payments),
                ("postings", rows.postings),
                ("agent_actions", rows.agent_actions),
            ):
                for values in table_rows:
                    connection.execute(statements[table], [_adapt(value) for value in values])
    return time.perf_counter() - started


def _insert(schema: str, table: str) -> sql.Composed:
    columns = TABLE_COLUMNS[table]
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        qualified(schema, table),
        column_list(columns),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    if table in ("payments", "projection_positions"):
        statement += sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
            sql.Identifier(columns[0]),
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column))
                for column in columns[1:]
            ),
        )
    return statement


def _adapt(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value


def profile(url: str, schema: str, workload: Workload) -> str:
    """cProfile's top functions (own time) over the first ``PROFILE_BATCHES`` batches."""
    projection = PostgresProjection(connect_url(url), schema)
    batches = list(workload.batches(BATCH_SIZE, PROFILE_BATCHES * BATCH_SIZE))
    profiler = cProfile.Profile()
    gc.freeze()
    profiler.enable()
    for batch in batches:
        projection.apply(batch)
    profiler.disable()
    gc.unfreeze()
    projection.close()
    output = io.StringIO()
    pstats.Stats(profiler, stream=output).sort_stats("tottime").print_stats(14)
    lines = output.getvalue().splitlines()
    start = next(n for n, line in enumerate(lines) if line.strip().startswith("ncalls"))
    return "\n".join("    " + line.replace(str(Path.cwd()) + "/", "") for line in lines[start:])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--baseline-events", type=int, default=BASELINE_EVENTS)
    parser.add_argument("--database-url", help="use this server instead of an embedded one")
    arguments = parser.parse_args()
    if arguments.database_url:
        return measure(arguments.database_url, arguments.events, arguments.baseline_events)
    with (
        tempfile.TemporaryDirectory(prefix="payledger-bench-") as directory,
        EmbeddedPostgres(Path(directory) / "pg", delete=True) as server,
    ):
        return measure(server.url, arguments.events, arguments.baseline_events)


SCHEMAS = ("bench_views", "bench_raw", "bench_event", "bench_prefix", "bench_profile")


def measure(url: str, events_total: int, baseline_events: int) -> int:
    print(
        f"bench/project.py — PostgreSQL views: {events_total:,} events, batches of {BATCH_SIZE:,}"
    )
    started = time.perf_counter()
    workload = Workload(events_total)
    schedule_s = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as connection:
        for schema in SCHEMAS:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )
        for schema in ("bench_views", "bench_event", "bench_prefix", "bench_profile"):
            migrate(connection, schema)
        try:
            return _measure(connection, url, workload, schedule_s, baseline_events)
        except Mismatch as mismatch:
            print(f"  CORRECTNESS MISMATCH: {mismatch}")
            return 1
        finally:
            for schema in SCHEMAS:
                connection.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


def _measure(
    connection: psycopg.Connection[Any],
    url: str,
    workload: Workload,
    schedule_s: float,
    baseline_events: int,
) -> int:
    print("  projection (one transaction per batch):", flush=True)
    run = run_projection(url, "bench_views", workload)
    expected = workload.expected  # before a later pass regenerates a prefix
    projection_rss_mb = peak_rss_mb()
    check_views(connection, "bench_views", workload)
    print(f"  views checked: row counts, debits = credits per currency and phase, "
          f"{len(workload.sample):,} sampled payments = fold of their events")  # fmt: skip

    print("  (a) raw COPY of the final rows…", flush=True)
    connection.execute("CHECKPOINT")  # the projection's dirty pages must not slow the copy
    copy_s = raw_copy(connection, url, "bench_views", "bench_raw")
    if table_checksums(connection, "bench_raw") != table_checksums(connection, "bench_views"):
        raise Mismatch("the raw COPY holds other rows than the views")

    print(f"  (b) per-event transactions on the first {baseline_events:,} events…", flush=True)
    prefix = [event for batch in workload.batches(BATCH_SIZE, baseline_events) for event in batch]
    clone_partitions(connection, "bench_views", "bench_event")
    per_event_s = per_event(connection, "bench_event", prefix)
    run_projection(url, "bench_prefix", workload, baseline_events)
    if table_checksums(connection, "bench_event") != table_checksums(connection, "bench_prefix"):
        raise Mismatch("the per-event baseline and the batches disagree")

    rate = run.events / run.apply_s
    copy_rate = run.events / copy_s
    per_event_rate = len(prefix) / per_event_s
    copy_share, factor = rate / copy_rate, rate / per_event_rate
    copy_met, factor_met = copy_share >= TARGET_COPY_SHARE, factor >= TARGET_PER_EVENT_FACTOR
    print(
        f"  workload: {expected.events:,} events, {expected.payments:,} payments, "
        f"{expected.posting_lines:,} posting lines, {expected.agent_actions:,} agent actions; "
        f"generated in {schedule_s + run.generate_s:,.0f} s (not timed below)"
    )
    print(
        f"  projection:    {rate:>9,.0f} events/s  ({run.apply_s:,.1f} s, {run.batches:,} "
        f"batches; this process's CPU {run.apply_cpu_s / run.apply_s:.0%} of it)"
    )
    print(f"  (a) raw COPY:  {copy_rate:>9,.0f} events/s  ({copy_s:,.1f} s for the final rows)")
    print(
        f"  (b) per-event: {per_event_rate:>9,.0f} events/s  ({per_event_s:,.1f} s for "
        f"{len(prefix):,} events, extrapolated)"
    )
    print(
        f"  projection / raw COPY = {copy_share:.0%} (target ≥ {TARGET_COPY_SHARE:.0%}): "
        f"{'met' if copy_met else 'MISSED'}"
    )
    print(
        f"  projection / per-event = {factor:,.1f}× (target ≥ {TARGET_PER_EVENT_FACTOR:g}×): "
        f"{'met' if factor_met else 'MISSED'}"
    )
    print(f"  peak RSS: {projection_rss_mb:,.0f} MB after the projection, "
          f"{peak_rss_mb():,.0f} MB at the end (raw COPY buffers)")  # fmt: skip
    events = run.events
    decode_us, evolve_us = domain_costs_us(workload, min(events, 100_000))
    wall_us, cpu_us, plan_us = (
        x / events * 1e6 for x in (run.apply_s, run.apply_cpu_s, run.plan_s)
    )
    print(f"  where the time goes, µs per event (wall {wall_us:.1f}):")
    print(f"    {wall_us - cpu_us:5.1f}  waiting for PostgreSQL (reads, COPY, upserts, commit)")
    print(
        f"    {plan_us:5.1f}  planning in Python, of which ledger's decode_payload {decode_us:.1f}"
        f" and evolve {evolve_us:.1f}; checks and rows {plan_us - decode_us - evolve_us:.1f}"
    )
    print(f"    {cpu_us - plan_us:5.1f}  encoding COPY rows, reading heads, psycopg")
    if not (copy_met and factor_met):
        print(f"  cProfile of {PROFILE_BATCHES} batches (inflates Python-call-heavy code):")
        print(profile(url, "bench_profile", workload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
