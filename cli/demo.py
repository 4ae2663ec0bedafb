"""``payledger demo``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cli.common import app, global_options, reporting
from devstack.agents import DEFAULT_PAYMENTS, DEFAULT_SEED
from handlers import bootstrap


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
        from devstack.demo import DemoOptions, run_demo  # the CLI may start the local runtime

        options = DemoOptions(payments=payments, seed=seed, keep=keep, home=bootstrap.local_home())
        exit_code = run_demo(Console(), options)
    raise typer.Exit(exit_code)
