"""What the demo verifies once every consumer has caught up. The history's own checks go through
the one verification runner (``ledger.integrity.runner``) in one pass over the events table:
every hash chain, debits == credits, the payment-state table and the PostgreSQL views each
against the replay of its events. The rest is the demo's own, against the events that one pass
read: the agents' workload, the postings view's sums, the views rebuilt, the analytics windows,
the archive and an audit report, and the dead-letter queues.

A ``Check`` that cannot run says why and counts as neither passed nor failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from archive.audit import DuckDBAudit, QueryResult
from archive.reader import ArchiveReader
from archive.reports import report_named
from devstack.agents import PaymentPlan, WorkloadReport
from ledger.codec import verify_chain
from ledger.decoding import decode_event
from ledger.dynamodb import DynamoDBEventStore
from ledger.envelope import RecordedEvent
from ledger.integrity.chains import ChainCheck, Problem, StreamCheck
from ledger.integrity.postings import UNBALANCED_POSTINGS, PostingSums
from ledger.integrity.runner import Verification, VerifyReport, run_verification
from ledger.service import PaymentSnapshot, fold
from projections.analytics import NUMBER_FIELDS, WindowEvent, WindowFold
from projections.payment_state import item_to_snapshot
from projections.payment_state_reader import PaymentStateReader
from projections.postgres.projection import connect_url
from projections.postgres.rows import snapshot_from_row
from projections.postgres.tables import analytics_schema, payment_select, qualified
from projections.rebuild import StoreStreams, default_rebuild_schema, rebuild_postgres
from projections.verify import PaymentStateCheck, PostgresCheck

PROBLEMS_SHOWN_MAX = 5
VIEWS_LOCATION = "postgresql:"  # where every problem of the PostgreSQL views is located


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool | None  # None: not run (``detail`` says why)
    detail: str


@dataclass(frozen=True, slots=True)
class Ledger:
    """Every event of the events table, by stream, and each payment folded from them."""

    streams: dict[str, list[RecordedEvent]]
    snapshots: dict[str, PaymentSnapshot]

    @property
    def events(self) -> int:
        return sum(len(events) for events in self.streams.values())


class LedgerRead(StreamCheck):
    """Not a check: keeps every event the runner reads (``ledger``), so the demo's own checks
    have the history without reading the events table a second time."""

    name = "ledger"
    check_name = "chains"

    def __init__(self) -> None:
        self._streams: dict[str, list[RecordedEvent]] = {}

    def stream_ids(self) -> set[str]:
        return set()

    def check(self, chain: ChainCheck) -> list[Problem]:
        events = [item.event for item in chain.stored if item.event is not None]
        if events:
            self._streams[chain.stream_id] = events
        return []

    def finish(self) -> list[Problem]:
        return []

    def counts(self) -> dict[str, int]:
        return {}

    def ledger(self) -> Ledger:
        snapshots = {}
        for events in self._streams.values():
            snapshot = fold(events)
            assert snapshot is not None
            snapshots[snapshot.state.payment_id] = snapshot
        return Ledger(dict(self._streams), snapshots)


@dataclass(frozen=True, slots=True)
class Verified:
    """The runner's pass over the events table: what it found, and the ledger it read."""

    report: VerifyReport
    ledger: Ledger
    read_model_location: str


def verify_ledger(
    store: DynamoDBEventStore, read_model: PaymentStateReader, database_url: str, schema: str
) -> Verified:
    """Every chain, debits == credits, the payment-state table and the views in ``schema``, each
    against the replay of its events: ``ledger.integrity.runner`` in one pass."""
    reading = LedgerRead()
    with PostgresCheck(connect_url(database_url), schema) as views:
        checks = [reading, PaymentStateCheck(read_model), views]
        report = run_verification(Verification(store, stream_checks=checks))
    return Verified(report, reading.ledger(), read_model.location)


def check_workload(report: WorkloadReport, plans: Sequence[PaymentPlan], ledger: Ledger) -> Check:
    """Every answer was the one the agents expected, and every payment ended as planned."""
    statuses = {payment_id: s.state.status for payment_id, s in ledger.snapshots.items()}
    wrong = [
        f"{plan.payment_id}: planned {plan.status}, is {statuses.get(plan.payment_id, 'missing')}"
        for plan in plans
        if statuses.get(plan.payment_id) != plan.status
    ]
    problems = report.unexpected + wrong
    detail = (
        f"{report.requests} requests: {report.created} recorded, {report.replayed} replayed"
        f" (client and agent retries), {report.refused} refused as planned;"
        f" {len(plans)} payments ended as planned"
    )
    return Check("agents", not problems, detail if not problems else "; ".join(problems[:5]))


def check_chains(report: VerifyReport) -> Check:
    broken = [
        problem
        for problem in report.problems
        if problem.check == "chains" and problem.kind != UNBALANCED_POSTINGS
    ]
    detail = f"{report.streams} chains, {report.events} events"
    return Check("hash chains", not broken, detail if not broken else _shown(broken))


def check_balance(report: VerifyReport, view_sums: PostingSums) -> Check:
    """Debits equal credits per currency and phase, in the events and in the views alike."""
    unbalanced = [problem for problem in report.problems if problem.kind == UNBALANCED_POSTINGS]
    if unbalanced:
        return Check("debits == credits", False, _shown(unbalanced))
    if view_sums != report.postings:
        return Check("debits == credits", False, "the postings view differs from the events")
    currencies = sorted({currency for currency, _, _ in report.postings})
    return Check(
        "debits == credits",
        True,
        f"per currency and phase ({', '.join(currencies)}), in the events and the postings view",
    )


def check_read_model(verified: Verified) -> Check:
    return _check_projection(
        "read model == fold", verified, "payment_state", verified.read_model_location
    )


def check_views(verified: Verified) -> Check:
    return _check_projection("views == fold", verified, "postgres", VIEWS_LOCATION)


def _check_projection(name: str, verified: Verified, source: str, location: str) -> Check:
    """The projection ``source`` (its problems located at ``location``…) equals the replay of
    the events, and holds every payment: once caught up, a payment it lacks is a failure."""
    report = verified.report
    problems = [
        problem
        for problem in report.problems
        if problem.check == "projections" and (problem.location or "").startswith(location)
    ]
    behind = report.counts.get(source, {}).get("behind", 0)
    if problems or behind:
        lagging = [f"{behind} payments not reached"] if behind else []
        return Check(name, False, "; ".join([*lagging, *([_shown(problems)] if problems else [])]))
    payments = len(verified.ledger.snapshots)
    return Check(name, True, f"{payments} payments, every field equal to the fold")


def _shown(problems: Sequence[Problem]) -> str:
    shown = [f"{p.where()}: {p.kind}" for p in problems[:PROBLEMS_SHOWN_MAX]]
    return "; ".join(shown) + f" ({len(problems)} problems)"


def view_posting_sums(connection: psycopg.Connection[Any], schema: str) -> PostingSums:
    rows = connection.execute(
        sql.SQL(
            "SELECT currency, phase, direction, sum(amount_minor) FROM {}"
            " GROUP BY currency, phase, direction"
        ).format(qualified(schema, "postings"))
    ).fetchall()
    return {(currency, phase, direction): int(total) for currency, phase, direction, total in rows}


def view_snapshots(connection: psycopg.Connection[Any], schema: str) -> dict[str, PaymentSnapshot]:
    rows = connection.execute(
        sql.SQL("SELECT {} FROM {} AS p").format(payment_select("p"), qualified(schema, "payments"))
    ).fetchall()
    return {row[0]: snapshot_from_row(row) for row in rows}


def read_model_snapshots(dynamodb: Any, table: str) -> dict[str, PaymentSnapshot]:
    snapshots = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            snapshot = item_to_snapshot(item)
            snapshots[snapshot.state.payment_id] = snapshot
    return snapshots


def check_rebuild(store: DynamoDBEventStore, database_url: str, schema: str) -> Check:
    """Replay every event into a fresh schema and compare it table by table with the live views
    (``payledger rebuild``); the rebuilt schema is dropped afterwards."""
    into = default_rebuild_schema(schema)
    connect = connect_url(database_url)
    try:
        report = rebuild_postgres(
            StoreStreams(store), connect, live_schema=schema, into_schema=into, events=store
        )
    finally:
        with connect() as connection:
            drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(into))
            connection.execute(drop)
    if report.failures or not report.identical:
        differing = [name for name, live in report.live.items() if report.rebuilt.get(name) != live]
        detail = f"differs in {differing}, {len(report.failures)} streams failed"
        return Check("views == rebuild", False, detail)
    tables = ", ".join(f"{name} {checksum.rows}" for name, checksum in report.live.items())
    return Check("views == rebuild", True, f"a fresh replay is identical table by table ({tables})")


def check_dead_letters(depths: Mapping[str, int]) -> Check:
    full = {name: depth for name, depth in depths.items() if depth}
    if full:
        return Check("dead letters", False, f"messages waiting: {full}")
    return Check("dead letters", True, f"{len(depths)} queues empty")


# The figures the windows' rows must add up to (duplicates aside: a redelivered change is
# counted as a duplicate in its window, never as an event).
_ANALYTICS_FIELDS = tuple(name for name in NUMBER_FIELDS if name != "duplicate_count")


def expected_metrics(ledger: Ledger) -> dict[tuple[str, str], dict[str, Any]]:
    """Every event folded as the analytics windows fold them, all windows summed: the figures
    per (merchant, currency)."""
    fold = WindowFold()
    events = [
        WindowEvent(event, decode_event(event))
        for events in ledger.streams.values()
        for event in events
    ]
    fold.fold(fold.candidates(events))
    return {
        (row.merchant_id, row.currency): {
            **{name: getattr(row.figures, name) for name in _ANALYTICS_FIELDS},
            "agent_decisions": row.figures.agent_decisions,
        }
        for row in fold.rows()
    }


def view_metrics(
    connection: psycopg.Connection[Any], schema: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """``payment_metrics_minute`` (in the analytics schema that goes with the views in
    ``schema``) summed over windows and shards, per (merchant, currency)."""
    sums = sql.SQL(", ").join(
        sql.SQL("sum({})::numeric").format(sql.Identifier(name)) for name in _ANALYTICS_FIELDS
    )
    rows = connection.execute(
        sql.SQL(
            "SELECT merchant_id, currency, {}, array_agg(agent_decisions) FROM {}"
            " GROUP BY merchant_id, currency"
        ).format(sums, qualified(analytics_schema(schema), "payment_metrics_minute"))
    ).fetchall()
    metrics = {}
    for merchant_id, currency, *numbers, decisions in rows:
        merged: dict[str, dict[str, int]] = {}
        for window in decisions:
            for agent, counts in window.items():
                mine = merged.setdefault(agent, {})
                for decision, count in counts.items():
                    mine[decision] = mine.get(decision, 0) + int(count)
        figures = {name: int(value) for name, value in zip(_ANALYTICS_FIELDS, numbers, strict=True)}
        metrics[(merchant_id, currency)] = {**figures, "agent_decisions": merged}
    return metrics


def check_metrics(
    expected: Mapping[tuple[str, str], Mapping[str, Any]],
    actual: Mapping[tuple[str, str], Mapping[str, Any]],
) -> Check:
    """The analytics windows add up to the events: every figure, per merchant and currency."""
    differing = sorted(
        key for key in set(expected) | set(actual) if expected.get(key) != actual.get(key)
    )
    if differing:
        merchant, currency = differing[0]
        return Check(
            "analytics == fold",
            False,
            f"{len(differing)} (merchant, currency) differ, e.g. {merchant}/{currency or '-'}:"
            f" windows {actual.get(differing[0])} vs events {expected.get(differing[0])}",
        )
    events = sum(figures["event_count"] for figures in expected.values())
    return Check(
        "analytics == fold",
        True,
        f"the closed windows add up to the events: {events} events, every figure of"
        f" {len(expected)} merchant-currency rows",
    )


# ── The archive ───────────────────────────────────────────────────────────────────────────────

AUDIT_REPORT = "refund_ratio_by_merchant"


def check_archive(reader: ArchiveReader, ledger: Ledger) -> Check:
    """The archive holds every event of the table once, each identical to the table's."""
    count = reader.events_count()
    archived = {events[0].stream_id: events for events in reader.streams() if events}
    differing = sorted(
        stream_id
        for stream_id in set(archived) | set(ledger.streams)
        if archived.get(stream_id) != ledger.streams.get(stream_id)
    )
    if count != ledger.events or differing:
        return Check(
            "archive == events",
            False,
            f"{count} distinct events archived for {ledger.events} in the table;"
            f" {len(differing)} streams differ, e.g. {differing[:3]}",
        )
    return Check(
        "archive == events",
        True,
        f"{count} events in Parquet, each once and identical to the table's, in"
        f" {len(archived)} streams",
    )


def check_archive_replay(reader: ArchiveReader, ledger: Ledger, stream_id: str) -> Check:
    """One payment replayed from the archive alone is its history in the table."""
    payment_id = stream_id.removeprefix("payment#")
    archived = reader.payment_events(payment_id)
    if archived != ledger.streams[stream_id]:
        return Check("replay from archive", False, f"{payment_id}: the archive's history differs")
    verify_chain(archived)
    return Check(
        "replay from archive",
        True,
        f"{payment_id}: {len(archived)} events from Parquet, chain verified, same as the table",
    )


def audit_report(storage: Any, ledger: Ledger) -> tuple[Check, QueryResult]:
    """The auditors' ``refund_ratio_by_merchant`` over the days the events cover (DuckDB over
    the archive's Parquet, the SQL Athena runs), checked against the fold."""
    report = report_named(AUDIT_REPORT)
    days = sorted(event.recorded_at[:10] for events in ledger.streams.values() for event in events)
    values = report.bind({"start_day": days[0], "end_day": days[-1]})
    result = DuckDBAudit(storage).run(report.sql, values)
    expected: dict[tuple[str, str], tuple[int, int]] = {}
    for snapshot in ledger.snapshots.values():
        state = snapshot.state
        if state.captured_minor or state.refunded_minor:
            key = (state.merchant_id, state.currency)
            captured, refunded = expected.get(key, (0, 0))
            expected[key] = (captured + state.captured_minor, refunded + state.refunded_minor)
    column = {name: index for index, name in enumerate(result.columns)}
    reported = {
        (row[column["merchant_id"]], row[column["currency"]]): (
            int(row[column["captured_minor"]]),
            int(row[column["refunded_minor"]]),
        )
        for row in result.rows
    }
    name = f"audit report {AUDIT_REPORT}"
    wrong = sorted(
        key for key in set(reported) | set(expected) if reported.get(key) != expected.get(key)
    )
    if wrong:
        return Check(
            name, False, f"{len(wrong)} merchant-currency rows differ: {wrong[:3]}"
        ), result
    period = f"{days[0]}..{days[-1]}"
    detail = f"{len(result.rows)} rows over {period}, captured and refunded as in the events"
    return Check(name, True, detail), result
