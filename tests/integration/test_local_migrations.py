"""``payledger local up`` migrates through the stack's own custom resource: its deploy runs the
real migration function (as CloudFormation would invoke it) into a fresh schema, and the views
exist when the stack is up. (The command runs in a process of its own, as a developer runs it:
the stack's processes outlive it.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from projections.postgres.migrate import load_migrations, recorded_migrations

TIMEOUT_S = 180


def _payledger(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PAYLEDGER_HOME", "PAYLEDGER_DATABASE_URL", "AWS_ENDPOINT_URL")
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_local_up_runs_the_migration_function_into_a_fresh_schema(tmp_path: Path) -> None:
    try:
        up = _payledger(tmp_path, "local", "up", "--json")
        assert up.returncode == 0, up.stderr
        state = json.loads(up.stdout)["local"]
        with psycopg.connect(state["database_url"], autocommit=True) as connection:
            recorded = recorded_migrations(connection, state["database_schema"])
            views = {
                row[0]
                for row in connection.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (state["database_schema"],),
                )
            }
    finally:
        down = _payledger(tmp_path, "local", "down", "--json")
    assert down.returncode == 0, down.stderr
    assert recorded == {m.version: m.checksum for m in load_migrations()}
    assert {"payments", "account_balances", "merchant_daily_summary"} <= views
