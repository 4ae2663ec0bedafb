"""The demo workload on the local stack, checked. ``payledger demo`` runs these steps in order on
a running local stack (``devstack.local``) and renders what they return; nothing here prints.

``plan`` draws this run's payments; ``run_agents`` drives reference agents through the payments
API over HTTP, through the stack's gateway (``devstack.agents``); ``catch_up`` waits until every
consumer has caught up (the projections on the DynamoDB stream; the Kinesis destination and its
consumers); ``check`` verifies the events table with the one verification runner and runs every
other check (``devstack.checks``) against the events it read. A check that cannot run here is
returned as not run (``passed`` None), never as passed.
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from archive.audit import QueryResult
from archive.reader import ArchiveReader
from devstack import local, principals
from devstack.agents import PaymentPlan, WorkloadReport, agent_clients, plan_payments, run_workload
from devstack.checks import (
    AUDIT_REPORT,
    Check,
    Ledger,
    Verified,
    audit_report,
    check_archive,
    check_archive_replay,
    check_balance,
    check_chains,
    check_dead_letters,
    check_metrics,
    check_read_model,
    check_rebuild,
    check_views,
    check_workload,
    expected_metrics,
    read_model_snapshots,
    verify_ledger,
    view_metrics,
    view_posting_sums,
    view_snapshots,
)
from devstack.runtime import aws_clients, load_config
from handlers import bootstrap
from ledger.dynamodb import DynamoDBEventStore
from ledger.envelope import RecordedEvent, payment_stream_id
from ledger.integrity.postings import PostingSums
from ledger.service import PaymentSnapshot, replay_steps

CATCH_UP_TIMEOUT_S = 240  # the longest tumbling window must end after the last event
ANALYTICS_HANDLER = "handlers.analytics.handler"
ARCHIVE_HANDLER = "handlers.archive.handler"
AGENTS = 2  # requests at once: the gateway serves each from a sandbox of its own


@dataclass(frozen=True, slots=True)
class Figures:
    """What the read models hold, for the tables (the checks compare them with the fold)."""

    read_model: dict[str, PaymentSnapshot]
    views: dict[str, PaymentSnapshot]
    sums: PostingSums
    replay: list[tuple[RecordedEvent, PaymentSnapshot]]  # the shown stream's replay, or none
    audit: QueryResult | None  # the auditors' report, if the stack archives


@dataclass(frozen=True, slots=True)
class DemoResult:
    """The ledger as folded from the events table, every check against it and what to show."""

    ledger: Ledger
    checks: list[Check]
    figures: Figures


@dataclass(frozen=True, slots=True)
class CatchUpProgress:
    """How far the consumers are: ``completed`` of ``total`` records and open windows (the most
    seen so far); ``closing`` once every record is read and only tumbling windows are left."""

    completed: int
    total: int
    closing: bool


def plan(payments: int, seed: int) -> list[PaymentPlan]:
    """This run's payments, with ids apart from an earlier run's on the same stack."""
    return plan_payments(payments, seed, run=_run_token())


def requests_planned(plans: Sequence[PaymentPlan]) -> int:
    """The API requests the agents make for ``plans`` (``run_agents`` advances by these)."""
    return sum(len(plan.steps) for plan in plans)


def _run_token() -> str:
    """A short stamp keeping this run's payment ids apart from an earlier run's on the stack."""
    alphabet = string.ascii_lowercase
    seconds = int(time.time())
    return "".join(alphabet[(seconds // 26**power) % 26] for power in range(5))


def run_agents(
    state: local.LocalState, plans: Sequence[PaymentPlan], advance: Callable[[int], None]
) -> WorkloadReport:
    """Drive the agents through the stack's HTTP gateway (its ``ApiUrl``), each signing as the
    local role named after it; ``advance`` is told of each request."""
    api_url = state.outputs[local.API_URL_OUTPUT]
    clients = agent_clients(
        api_url, state.region, lambda name: principals.issue_credentials(state, name)
    )
    try:
        return run_workload(clients, plans, threads=AGENTS, advance=advance)
    finally:
        for client in clients.values():
            client.close()


def catch_up(home: Path, report: Callable[[CatchUpProgress], None]) -> local.StackStatus:
    """Wait until every consumer has processed every record; batching windows are cut short
    (``local.drain``), tumbling windows end on time."""
    most = 0

    def show(status: local.StackStatus) -> None:
        nonlocal most
        behind = sum(consumer.behind for consumer in status.consumers)
        windows = sum(consumer.window_open for consumer in status.consumers)
        most = max(most, behind + windows)
        # Once every record is read, what is left is waiting for tumbling windows to end.
        closing = bool(windows and not behind)
        report(CatchUpProgress(completed=most - behind - windows, total=most, closing=closing))

    local.drain(home)
    try:
        return local.wait_until_caught_up(home, timeout_s=CATCH_UP_TIMEOUT_S, progress=show)
    finally:
        local.drain(home, enabled=False)


def check(
    state: local.LocalState,
    plans: Sequence[PaymentPlan],
    report: WorkloadReport,
    caught_up: local.StackStatus,
) -> DemoResult:
    """Verify the events table and every read model and view against it, then check every copy
    and the workload against the events that one pass read."""
    dynamodb = aws_clients(state.endpoint_url, state.region)["dynamodb"]
    settings = bootstrap.settings_from_outputs(state.stack_name, state.outputs, state.aws)
    verified = verify_ledger(
        bootstrap.build_event_store(settings),
        bootstrap.require_payment_state_reader(settings),
        state.database_url,
        state.database_schema,
    )
    return _checks(state, dynamodb, verified, plans, report, caught_up)


def _checks(
    state: local.LocalState,
    dynamodb: Any,
    verified: Verified,
    plans: Sequence[PaymentPlan],
    report: WorkloadReport,
    caught_up: local.StackStatus,
) -> DemoResult:
    schema = state.database_schema
    ledger = verified.ledger
    with psycopg.connect(state.database_url, autocommit=True) as connection:
        views = view_snapshots(connection, schema)
        view_sums = view_posting_sums(connection, schema)
        metrics = view_metrics(connection, schema)
    read_model = read_model_snapshots(dynamodb, state.outputs[bootstrap.PAYMENT_STATE_TABLE_OUTPUT])
    handlers = _consuming_handlers(Path(state.home))
    replayed = _longest_stream(ledger, plans)
    archive_checks, audit = _archive_checks(state, ledger, replayed, handlers)
    checks = [
        _caught_up(caught_up),
        check_workload(report, plans, ledger),
        check_chains(verified.report),
        check_balance(verified.report, view_sums),
        check_read_model(verified),
        check_views(verified),
        check_rebuild(DynamoDBEventStore(dynamodb, state.events_table), state.database_url, schema),
        check_metrics(expected_metrics(ledger), metrics)
        if ANALYTICS_HANDLER in handlers
        else Check("analytics == fold", None, "the stack has no analytics function"),
        *archive_checks,
        check_dead_letters(caught_up.dead_letters),
    ]
    replay = replay_steps(ledger.streams[replayed]) if replayed is not None else []
    figures = Figures(read_model, views, verified.report.postings, replay, audit)
    return DemoResult(ledger, checks, figures)


def _archive_checks(
    state: local.LocalState,
    ledger: Ledger,
    replayed: str | None,
    handlers: set[str],
) -> tuple[list[Check], QueryResult | None]:
    names = ("archive == events", "replay from archive", f"audit report {AUDIT_REPORT}")
    if ARCHIVE_HANDLER not in handlers:
        return [Check(name, None, "the stack has no archive function") for name in names], None
    settings = bootstrap.archive_settings_from_outputs(state.outputs, state.aws)
    storage = bootstrap.build_archive_storage(settings)
    reader = ArchiveReader(storage)
    audit_check, audit = audit_report(storage, ledger)
    checks = [check_archive(reader, ledger)]
    if replayed is not None:
        checks.append(check_archive_replay(reader, ledger, replayed))
    return [*checks, audit_check], audit


def _consuming_handlers(home: Path) -> set[str]:
    """The handlers of the functions the stack's event source mappings invoke."""
    config = load_config(home)
    return {config.function(mapping.function).handler for mapping in config.mappings}


def _caught_up(status: local.StackStatus) -> Check:
    lagging = [consumer.consumer for consumer in status.consumers if not consumer.caught_up]
    if lagging:
        return Check(
            "consumers caught up", False, f"still behind after {CATCH_UP_TIMEOUT_S} s: {lagging}"
        )
    return Check(
        "consumers caught up",
        True,
        f"{len(status.consumers)} consumers, every record processed, every window closed",
    )


def _longest_stream(ledger: Ledger, plans: Sequence[PaymentPlan]) -> str | None:
    """The stream of this run's payment with the longest history (its replay is shown)."""
    streams = [
        stream_id
        for plan in plans
        if (stream_id := payment_stream_id(plan.payment_id)) in ledger.streams
    ]
    if not streams:
        return None
    return max(streams, key=lambda stream_id: (len(ledger.streams[stream_id]), stream_id))
