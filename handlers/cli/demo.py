"""``payledger demo``."""

from __future__ import annotations

import typer
from rich.console import Console

from handlers.cli.common import app, global_options, reporting


@app.command("demo")
def demo(ctx: typer.Context) -> None:
    """Run a scripted payment flow on a throwaway local DynamoDB (moto) and check the ledger."""
    with reporting(global_options(ctx), json_output=False):
        from devstack.demo import run_demo  # the one import of devstack from handlers

        exit_code = run_demo(Console())
    raise typer.Exit(exit_code)
