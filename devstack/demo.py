"""``payledger demo``: the whole application on this machine, driven by reference agents, checked.

It starts the local stack (``devstack.local``; or uses the one already up), runs a workload of
reference agents against the payments API (``devstack.agents``), waits until every consumer
has caught up (the projections on the DynamoDB stream; the Kinesis destination and its
consumers), then prints what the ledger holds and every check (``devstack.checks``) against a
fresh fold of the events table. ``run_demo`` returns 0 only if every check that ran passed; a
check that cannot run here is shown as not run, never as passed. Without ``keep`` it stops the
stack it started.
"""

from __future__ import annotations

import string
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from archive.audit import QueryResult
from archive.reader import ArchiveReader
from archive.s3 import S3ArchiveStorage
from cli.render import replay_table
from devstack import local
from devstack.agents import (
    DEFAULT_PAYMENTS,
    DEFAULT_SEED,
    ApiGateway,
    PaymentPlan,
    WorkloadReport,
    plan_payments,
    run_workload,
)
from devstack.checks import (
    AUDIT_REPORT,
    Check,
    Ledger,
    Sums,
    audit_report,
    check_archive,
    check_archive_replay,
    check_balance,
    check_chains,
    check_dead_letters,
    check_metrics,
    check_rebuild,
    check_same,
    check_workload,
    expected_metrics,
    posting_sums,
    read_ledger,
    read_model_snapshots,
    view_metrics,
    view_posting_sums,
    view_snapshots,
)
from devstack.functions import LOCAL_CREDENTIALS, FunctionWorker, function_environment
from devstack.runtime import LOGS_DIRECTORY, aws_clients, load_config
from handlers import bootstrap
from ledger.domain.money import format_amount
from ledger.dynamodb import DynamoDBEventStore
from ledger.envelope import payment_stream_id
from ledger.service import PaymentSnapshot, replay_steps

CATCH_UP_TIMEOUT_S = 240  # the longest tumbling window must end after the last event
API_HANDLER = "handlers.api.handler"
ANALYTICS_HANDLER = "handlers.analytics.handler"
ARCHIVE_HANDLER = "handlers.archive.handler"
AGENTS = 2  # agent threads, each calling its own instance of the API function
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
STATUS_ORDER = ("initiated", "in_review", "approved", "declined", "failed", "authorized",
                "voided", "expired", "captured", "refunded", "settled")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Figures:
    """What the read models hold, for the tables (the checks compare them with the fold)."""

    read_model: dict[str, PaymentSnapshot]
    views: dict[str, PaymentSnapshot]
    sums: Sums
    replayed: str | None  # the stream whose replay is shown
    audit: QueryResult | None  # the auditors' report, if the stack archives


@dataclass(frozen=True, slots=True)
class DemoOptions:
    payments: int = DEFAULT_PAYMENTS
    seed: int = DEFAULT_SEED
    keep: bool = False
    home: Path = local.DEFAULT_HOME


def run_demo(console: Console, options: DemoOptions) -> int:
    """Run the demo; 0 when every check that ran passed, 1 otherwise."""
    started = time.monotonic()
    already_up = local.running_stack(options.home) is not None
    try:
        with console.status("starting the local stack") as spinner:
            state = local.up(options.home, report=lambda step: spinner.update(step))
        console.print(
            f"local stack {'in use' if already_up else 'up'} at {state.endpoint_url} "
            f"(stack {state.stack_name}, PostgreSQL schema {state.database_schema})"
        )
        checks = _run(console, state, options)
    finally:
        if options.keep or already_up:
            console.print("the local stack is still up: payledger local status | down")
        else:
            local.down(options.home)
            console.print("local stack stopped")
    return _verdict(console, checks, time.monotonic() - started)


def _run(console: Console, state: local.LocalState, options: DemoOptions) -> list[Check]:
    home = options.home
    plans = plan_payments(options.payments, options.seed, run=_run_token())
    with _progress(console) as progress:
        report = _workload(progress, home, plans)
        caught_up = _catch_up(progress, home)
    with console.status("checking the ledger against a fresh fold of the events table"):
        clients = aws_clients(state.endpoint_url, state.region)
        ledger = read_ledger(clients["dynamodb"], state.events_table)
        checks, figures = _checks(state, clients, ledger, plans, report, caught_up)
    _print_ledger(console, ledger, figures, plans)
    return checks


def _run_token() -> str:
    """A short stamp keeping this run's payment ids apart from an earlier run's on the stack."""
    alphabet = string.ascii_lowercase
    seconds = int(time.time())
    return "".join(alphabet[(seconds // 26**power) % 26] for power in range(5))


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        yield progress


def _workload(progress: Progress, home: Path, plans: Sequence[PaymentPlan]) -> WorkloadReport:
    config = load_config(home)
    targets = [target for target in config.functions if target.handler == API_HANDLER]
    if not targets:
        raise local.LocalStackError(f"the stack has no function with handler {API_HANDLER}")
    target = targets[0]
    environment = function_environment(
        target,
        endpoint_url=config.endpoint_url,
        region=config.region,
        database_url=config.database_url,
    )
    log_path = home / LOGS_DIRECTORY / f"{target.name}.log"
    workers = [FunctionWorker(target, environment, log_path=log_path) for _ in range(AGENTS)]
    task = progress.add_task("agents", total=sum(len(plan.steps) for plan in plans))
    try:
        gateways = [ApiGateway(worker.invoke) for worker in workers]
        return run_workload(gateways, plans, advance=lambda n: progress.advance(task, n))
    finally:
        for worker in workers:
            worker.stop()


def _catch_up(progress: Progress, home: Path) -> local.StackStatus:
    """Wait until every consumer has processed every record; batching windows are cut short
    (``local.drain``), tumbling windows end on time."""
    task = progress.add_task("consumers catching up", total=None)
    most = 0

    def show(status: local.StackStatus) -> None:
        nonlocal most
        behind = sum(consumer.behind for consumer in status.consumers)
        windows = sum(consumer.window_open for consumer in status.consumers)
        most = max(most, behind + windows)
        # Once every record is read, what is left is waiting for tumbling windows to end.
        closing = windows and not behind
        description = "tumbling windows ending" if closing else "consumers catching up"
        done = most - behind - windows
        progress.update(task, description=description, total=most, completed=done)

    local.drain(home)
    try:
        return local.wait_until_caught_up(home, timeout_s=CATCH_UP_TIMEOUT_S, progress=show)
    finally:
        local.drain(home, enabled=False)


def _checks(
    state: local.LocalState,
    clients: dict[str, Any],
    ledger: Ledger,
    plans: Sequence[PaymentPlan],
    report: WorkloadReport,
    caught_up: local.StackStatus,
) -> tuple[list[Check], Figures]:
    dynamodb = clients["dynamodb"]
    schema = state.database_schema
    event_sums = posting_sums(ledger.postings())
    with psycopg.connect(state.database_url, autocommit=True) as connection:
        views = view_snapshots(connection, schema)
        view_sums = view_posting_sums(connection, schema)
        metrics = view_metrics(connection, schema)
    read_model = read_model_snapshots(dynamodb, state.outputs[bootstrap.PAYMENT_STATE_TABLE_OUTPUT])
    handlers = _consuming_handlers(Path(state.home))
    replayed = _longest_stream(ledger, plans)
    archive_checks, audit = _archive_checks(state, clients, ledger, replayed, handlers)
    checks = [
        _caught_up(caught_up),
        check_workload(report, plans, ledger),
        check_chains(ledger),
        check_balance(event_sums, view_sums),
        check_same("read model == fold", ledger, read_model),
        check_same("views == fold", ledger, views),
        check_rebuild(DynamoDBEventStore(dynamodb, state.events_table), state.database_url, schema),
        check_metrics(expected_metrics(ledger), metrics)
        if ANALYTICS_HANDLER in handlers
        else Check("analytics == fold", None, "the stack has no analytics function"),
        *archive_checks,
        check_dead_letters(caught_up.dead_letters),
    ]
    return checks, Figures(read_model, views, event_sums, replayed, audit)


def _archive_checks(
    state: local.LocalState,
    clients: dict[str, Any],
    ledger: Ledger,
    replayed: str | None,
    handlers: set[str],
) -> tuple[list[Check], QueryResult | None]:
    names = ("archive == events", "replay from archive", f"audit report {AUDIT_REPORT}")
    if ARCHIVE_HANDLER not in handlers:
        return [Check(name, None, "the stack has no archive function") for name in names], None
    credentials = (
        LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    storage = S3ArchiveStorage(
        clients["s3"],
        state.outputs[bootstrap.ARCHIVE_BUCKET_OUTPUT],
        lambda: (*credentials, None),
    )
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


# ── Printing ─────────────────────────────────────────────────────────────────────────────────


def _print_ledger(
    console: Console, ledger: Ledger, figures: Figures, plans: Sequence[PaymentPlan]
) -> None:
    console.print(_status_table(ledger, figures, plans))
    console.print(_totals_table(ledger))
    console.print(_postings_table(figures.sums))
    if figures.audit is not None:
        console.print(_audit_table(figures.audit))
    if figures.replayed is not None:
        console.print(replay_table(replay_steps(ledger.streams[figures.replayed])))


def _status_table(ledger: Ledger, figures: Figures, plans: Sequence[PaymentPlan]) -> Table:
    fold = Counter(snapshot.state.status for snapshot in ledger.snapshots.values())
    read_model = Counter(snapshot.state.status for snapshot in figures.read_model.values())
    views = Counter(snapshot.state.status for snapshot in figures.views.values())
    planned = Counter(plan.status for plan in plans)
    table = Table(title="payments by status", title_justify="left")
    for header in ("status", "events (fold)", "read model", "PostgreSQL views", "planned"):
        table.add_column(header, justify="left" if header == "status" else "right")
    for status in sorted(set(fold) | set(read_model) | set(views), key=STATUS_ORDER.index):
        counts = (fold[status], read_model[status], views[status], planned[status])
        table.add_row(status, *(str(count) for count in counts))
    table.add_row(
        Text("total", style="bold"),
        str(sum(fold.values())),
        str(sum(read_model.values())),
        str(sum(views.values())),
        str(len(plans)),
    )
    return table


def _totals_table(ledger: Ledger) -> Table:
    totals: dict[str, Counter[str]] = {}
    for snapshot in ledger.snapshots.values():
        state = snapshot.state
        counter = totals.setdefault(state.currency, Counter())
        counter["payments"] += 1
        counter["authorized"] += state.authorized_minor
        counter["captured"] += state.captured_minor
        counter["refunded"] += state.refunded_minor
        counter["settled"] += state.settled_minor
    table = Table(title="totals per currency (from the events)", title_justify="left")
    columns = ("payments", "authorized", "captured", "refunded", "settled")
    table.add_column("currency")
    for column in columns:
        table.add_column(column, justify="right")
    for currency, counter in sorted(totals.items()):
        table.add_row(
            currency,
            str(counter["payments"]),
            *(format_amount(counter[column], currency) for column in columns[1:]),
        )
    return table


def _postings_table(sums: Sums) -> Table:
    table = Table(title="postings per currency and phase", title_justify="left")
    for header in ("currency", "phase", "debits", "credits"):
        table.add_column(header, justify="right" if header in ("debits", "credits") else "left")
    for currency, phase in sorted({(currency, phase) for currency, phase, _ in sums}):
        debits = sums.get((currency, phase, "debit"), 0)
        credits = sums.get((currency, phase, "credit"), 0)
        style = "green" if debits == credits else "bold red"
        table.add_row(
            currency,
            phase,
            Text(format_amount(debits, currency), style=style),
            Text(format_amount(credits, currency), style=style),
        )
    return table


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


def _audit_table(result: QueryResult) -> Table:
    table = Table(
        title=f"audit report {AUDIT_REPORT} (DuckDB over the archive's Parquet)",
        title_justify="left",
    )
    for column in result.columns:
        table.add_column(
            column, justify="left" if column in ("merchant_id", "currency") else "right"
        )
    for row in result.rows:
        table.add_row(*("-" if value is None else str(value) for value in row))
    return table


def _verdict(console: Console, checks: Sequence[Check], elapsed_s: float) -> int:
    table = Table(title="checks", title_justify="left")
    for header in ("check", "result", "detail"):
        table.add_column(header)
    for check in checks:
        result = (
            Text("not run", style="yellow")
            if check.passed is None
            else Text("passed", style="green")
            if check.passed
            else Text("FAILED", style="bold red")
        )
        table.add_row(check.name, result, check.detail)
    console.print(table)
    failed = [check.name for check in checks if check.passed is False]
    not_run = [check.name for check in checks if check.passed is None]
    ran = len(checks) - len(not_run)
    if failed:
        verdict = f"demo FAILED: {', '.join(failed)} ({elapsed_s:.0f} s)"
        console.print(Text(verdict, style="bold red"))
        return EXIT_CHECK_FAILED
    suffix = f"; not run: {', '.join(not_run)}" if not_run else ""
    verdict = f"demo OK: {ran} checks passed in {elapsed_s:.0f} s{suffix}"
    console.print(Text(verdict, style="bold green"))
    return EXIT_OK
