"""``payledger demo``: the whole application on this machine, driven by reference agents, checked.

It starts the local stack (``devstack.local``; or uses the one already up), runs the demo's steps
(``devstack.demo``) with their progress on screen, then prints what the ledger holds and every
check against a fresh fold of the events table. It exits 0 only if every check that ran passed; a
check that cannot run here is shown as not run, never as passed. Without ``--keep`` it stops the
stack it started.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cli.common import app, global_options, local_home, reporting
from cli.exit_codes import EXIT_OK
from cli.render import replay_table
from devstack.agents import DEFAULT_PAYMENTS, DEFAULT_SEED
from ledger.domain.errors import EXIT_OTHER
from ledger.domain.money import format_amount

if TYPE_CHECKING:
    from archive.audit import QueryResult
    from devstack.agents import PaymentPlan
    from devstack.checks import Check, Ledger
    from devstack.demo import CatchUpProgress, DemoResult
    from devstack.local import LocalState
    from ledger.integrity.postings import PostingSums

STATUS_ORDER = ("initiated", "in_review", "approved", "declined", "failed", "authorized",
                "voided", "expired", "captured", "refunded", "settled")  # fmt: skip


@app.command("demo")
def demo(
    ctx: typer.Context,
    payments: Annotated[
        int, typer.Option("--payments", min=1, max=5_000, help="Payments the agents make.")
    ] = DEFAULT_PAYMENTS,
    seed: Annotated[int, typer.Option("--seed", help="Decides every agent's choices.")] = (
        DEFAULT_SEED
    ),
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the local stack up to explore it.")
    ] = False,
) -> None:
    """Start the local stack, run reference agents through the API, wait for every consumer,
    print the ledger and check it against a fresh fold of the events (exit 1 if a check fails)."""
    with reporting(global_options(ctx), json_output=False):
        exit_code = run_demo(Console(), payments, seed, keep=keep, home=local_home())
    raise typer.Exit(exit_code)


def run_demo(console: Console, payments: int, seed: int, *, keep: bool, home: Path) -> int:
    """Run the demo; 0 when every check that ran passed, 1 otherwise."""
    from devstack import local  # the CLI may start the local runtime

    started = time.monotonic()
    already_up = local.running_stack(home) is not None
    try:
        with console.status("starting the local stack") as spinner:
            state = local.up(home, report=lambda step: spinner.update(step))
        console.print(
            f"local stack {'in use' if already_up else 'up'} at {state.endpoint_url} "
            f"(stack {state.stack_name}, PostgreSQL schema {state.database_schema})"
        )
        checks = _run(console, state, home, payments, seed)
    finally:
        if keep or already_up:
            console.print("the local stack is still up: payledger local status | down")
        else:
            local.down(home)
            console.print("local stack stopped")
    return render_verdict(console, checks, time.monotonic() - started)


def _run(console: Console, state: LocalState, home: Path, payments: int, seed: int) -> list[Check]:
    from devstack import demo

    plans = demo.plan(payments, seed)
    with _progress(console) as progress:
        agents = progress.add_task("agents", total=demo.requests_planned(plans))
        report = demo.run_agents(state, plans, advance=lambda n: progress.advance(agents, n))
        catching_up = progress.add_task("consumers catching up", total=None)

        def show(step: CatchUpProgress) -> None:
            description = "tumbling windows ending" if step.closing else "consumers catching up"
            progress.update(
                catching_up, description=description, total=step.total, completed=step.completed
            )

        caught_up = demo.catch_up(home, report=show)
    with console.status("checking the ledger against a fresh fold of the events table"):
        result = demo.check(state, plans, report, caught_up)
    _print_ledger(console, result, plans)
    return result.checks


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


def _print_ledger(console: Console, result: DemoResult, plans: Sequence[PaymentPlan]) -> None:
    figures = result.figures
    console.print(_status_table(result, plans))
    console.print(_totals_table(result.ledger))
    console.print(_postings_table(figures.sums))
    if figures.audit is not None:
        console.print(_audit_table(figures.audit))
    if figures.replay:
        console.print(replay_table(figures.replay))


def _status_table(result: DemoResult, plans: Sequence[PaymentPlan]) -> Table:
    fold = Counter(snapshot.state.status for snapshot in result.ledger.snapshots.values())
    read_model = Counter(snapshot.state.status for snapshot in result.figures.read_model.values())
    views = Counter(snapshot.state.status for snapshot in result.figures.views.values())
    planned = Counter(plan.status for plan in plans)
    table = Table(title="payments by status", title_justify="left")
    for header in ("status", "events (fold)", "read model", "PostgreSQL views", "planned"):
        table.add_column(header, justify="left" if header == "status" else "right", overflow="fold")
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
        table.add_column(column, justify="right", overflow="fold")
    for currency, counter in sorted(totals.items()):
        table.add_row(
            currency,
            str(counter["payments"]),
            *(format_amount(counter[column], currency) for column in columns[1:]),
        )
    return table


def _postings_table(sums: PostingSums) -> Table:
    table = Table(title="postings per currency and phase", title_justify="left")
    for header in ("currency", "phase", "debits", "credits"):
        table.add_column(
            header,
            justify="right" if header in ("debits", "credits") else "left",
            overflow="fold",
        )
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


def _audit_table(result: QueryResult) -> Table:
    from devstack.checks import AUDIT_REPORT

    table = Table(
        title=f"audit report {AUDIT_REPORT} (DuckDB over the archive's Parquet)",
        title_justify="left",
    )
    for column in result.columns:
        table.add_column(
            column,
            justify="left" if column in ("merchant_id", "currency") else "right",
            overflow="fold",
        )
    for row in result.rows:
        table.add_row(*("-" if value is None else str(value) for value in row))
    return table


def render_verdict(console: Console, checks: Sequence[Check], elapsed_s: float) -> int:
    """Print every check and the verdict; the demo's exit code."""
    table = Table(title="checks", title_justify="left")
    for header in ("check", "result", "detail"):
        table.add_column(header, overflow="fold")
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
        return EXIT_OTHER
    suffix = f"; not run: {', '.join(not_run)}" if not_run else ""
    verdict = f"demo OK: {ran} checks passed in {elapsed_s:.0f} s{suffix}"
    console.print(Text(verdict, style="bold green"))
    return EXIT_OK
