"""``payledger local up|status|down|credentials``: the whole stack on this machine
(``devstack.local``), and credentials of a local principal to call its API
(``devstack.principals``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.common import (
    HELP_MARKUP,
    JsonOption,
    app,
    global_options,
    local_home,
    print_json,
    reporting,
)
from ledger.domain.errors import EXIT_OTHER, NotFoundError

if TYPE_CHECKING:
    from devstack.local import LocalState, StackStatus

local_app = typer.Typer(
    help="The local stack: emulated AWS (moto), embedded PostgreSQL, the stream consumers.",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)
app.add_typer(local_app, name="local")


@local_app.command("up")
def up(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Start moto and PostgreSQL, deploy template.yaml, migrate, start the consumers and the
    API's HTTP gateway (its URL is printed; requests must be SigV4-signed)."""
    with reporting(global_options(ctx), json_output):
        from devstack import local

        console = Console(stderr=json_output)
        with console.status("starting the local stack") as spinner:
            state = local.up(local_home(), report=lambda step: spinner.update(step))
        if json_output:
            print_json({"local": asdict(state)})
            return
        console.print(state_table(state))
        console.print("[green]up[/green]: payledger commands use it while nothing else is set")
        console.print(f"API: {state.api_url}", soft_wrap=True, highlight=False)


@local_app.command("status")
def status(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """What runs, how far behind each consumer is (records per shard), dead-letter depths.
    Exits 1 when the stack is not running."""
    with reporting(global_options(ctx), json_output):
        from devstack import local

        report = local.status(local_home())
        if json_output:
            print_json(report.to_dict())
        else:
            print_status(Console(), report)
    if not report.running:
        raise typer.Exit(EXIT_OTHER)


@local_app.command("down")
def down(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Stop everything ``local up`` started (also after a crash)."""
    with reporting(global_options(ctx), json_output):
        from devstack import local

        report = local.down(local_home())
        if json_output:
            print_json(asdict(report))
            return
        stopped = report.stopped
        typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        if report.dropped_schemas:
            typer.echo(f"dropped rebuild schemas: {', '.join(report.dropped_schemas)}")
        typer.echo(f"kept: logs in {report.logs}/, PostgreSQL data in {report.postgres_data}/")


@local_app.command("credentials")
def credentials(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal: a role of this name is created.")],
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="JSON, also the shape AWS's credential_process expects (Version 1)."
        ),
    ] = False,
) -> None:
    """Credentials of role NAME on the local stack's IAM, allowed to invoke its API, assumed on
    its STS: `eval "$(payledger local credentials my-agent)"`."""
    with reporting(global_options(ctx), json_output):
        from devstack import local, principals

        state = local.running_stack(local_home())
        if state is None:
            raise NotFoundError("the local stack is not running (payledger local up)")
        issued = principals.assume(state.endpoint_url, name, region=state.region)
        if json_output:
            print_json(
                {**issued.credential_process(), "Region": issued.region, "ApiUrl": state.api_url}
            )
            return
        for variable, value in {
            **issued.environment(),
            "PAYLEDGER_API_URL": state.api_url,
        }.items():
            typer.echo(f"export {variable}={value}")


def state_table(state: LocalState) -> Table:
    table = Table(title="local stack", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("where")
    table.add_row("API", state.api_url)
    table.add_row("AWS endpoint", state.endpoint_url)
    table.add_row("stack", state.stack_name)
    table.add_row("events table", state.events_table)
    table.add_row("PostgreSQL", f"{state.database_url} (schema {state.database_schema})")
    table.add_row("state", f"{state.home}/")
    return table


def print_status(console: Console, report: StackStatus) -> None:
    if report.state is None:
        console.print("the local stack is not running (payledger local up)")
        return
    console.print(state_table(report.state))
    processes = Table(title="processes", title_justify="left")
    for header in ("process", "pid", "running"):
        processes.add_column(header)
    for process in report.processes:
        running = Text("yes", style="green") if process.running else Text("no", style="bold red")
        processes.add_row(process.name, str(process.pid), running)
    console.print(processes)
    if not report.running:
        console.print(Text("not running: payledger local down, then up", style="bold red"))
        return
    consumers = Table(title="consumers (records behind per shard)", title_justify="left")
    for header in ("consumer", "shard", "behind", "window", "invocations", "errors", "discarded"):
        consumers.add_column(
            header, justify="right" if header not in ("consumer", "shard") else "left"
        )
    for consumer in report.consumers:
        behind = Text(str(consumer.behind), style="green" if not consumer.behind else "yellow")
        consumers.add_row(
            consumer.consumer,
            consumer.shard_id,
            behind,
            "open" if consumer.window_open else "-",
            str(consumer.invocations),
            str(consumer.errors),
            str(consumer.discarded),
        )
    console.print(consumers)
    queues = Table(title="dead-letter queues", title_justify="left")
    queues.add_column("queue")
    queues.add_column("messages", justify="right")
    for name, depth in report.dead_letters.items():
        queues.add_row(name, Text(str(depth), style="green" if not depth else "bold red"))
    console.print(queues)
