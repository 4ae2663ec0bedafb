"""``payledger history`` and ``payledger replay``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from handlers.cli import common
from handlers.cli.common import (
    JsonOption,
    PaymentIdArgument,
    app,
    global_options,
    print_json,
    reporting,
)
from handlers.cli.render import chain_report, history_table, replay_table
from ledger.codec import event_document
from ledger.service import replay_steps


@app.command("history")
def history(
    ctx: typer.Context, payment_id: PaymentIdArgument, json_output: JsonOption = False
) -> None:
    """Show a payment's events and verify their hash chain."""
    options = global_options(ctx)
    with reporting(options, json_output):
        events = common.service_factory(options.stack).load(payment_id)
        if json_output:
            print_json({"events": [event_document(event) for event in events]})
            return
        console = Console()
        console.print(history_table(events))
        console.print(chain_report(events))


@app.command("replay")
def replay(
    ctx: typer.Context,
    payment_id: PaymentIdArgument,
    version: Annotated[
        int | None,
        typer.Option("--version", help="Replay up to this version.", show_default=False),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="TIMESTAMP",
            help="Replay the events recorded up to this ISO-8601 time.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show the payment's state after each event (changed fields highlighted)."""
    options = global_options(ctx)
    with reporting(options, json_output):
        service = common.service_factory(options.stack)
        # ``get`` applies --version and --as-of; the steps are the stream prefix it folded.
        payment = service.get(payment_id, version_max=version, as_of=as_of)
        steps = replay_steps(service.load(payment_id, version_max=payment.version))
        if json_output:
            print_json(
                {
                    "payment": payment.to_dict(),
                    "steps": [
                        {"event": event_document(event), "payment": snapshot.to_dict()}
                        for event, snapshot in steps
                    ],
                }
            )
            return
        Console().print(replay_table(steps))
