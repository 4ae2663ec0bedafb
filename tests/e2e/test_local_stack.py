"""``payledger local up|status|down|credentials`` as a developer runs them, each a process of its
own, in a directory of the test's own (its ``.payledger``): the stack comes up on a free port,
other commands use it with nothing configured, the consumers catch up, ``up`` after the runtime
crashed restarts it on the same stack (nothing lost), and ``down`` stops everything even after
the runtime and moto were killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devstack.processes import is_running

REPO_ROOT = Path(__file__).resolve().parents[2]
_CONSOLE_SCRIPT = Path(sys.executable).with_name("payledger")
PAYLEDGER = [str(_CONSOLE_SCRIPT)] if _CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "cli"]
TIMEOUT_S = 180
# Nothing configured: the commands must find the local stack by themselves.
UNSET = (
    "EVENTS_TABLE",
    "PAYMENT_STATE_TABLE",
    "ARCHIVE_BUCKET",
    "AWS_ENDPOINT_URL",
    "PAYLEDGER_DATABASE_URL",
    "PAYLEDGER_HOME",  # the default: .payledger in the test's own directory
)


def environment() -> dict[str, str]:
    variables = {name: value for name, value in os.environ.items() if name not in UNSET}
    variables["COLUMNS"] = "200"
    return variables


def payledger(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PAYLEDGER, *args],
        cwd=directory,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def status(directory: Path) -> tuple[int, dict[str, Any]]:
    done = payledger(directory, "local", "status", "--json")
    return done.returncode, json.loads(done.stdout)


def test_local_up_status_use_and_down_after_a_crash(tmp_path: Path) -> None:
    up = payledger(tmp_path, "local", "up", "--json")
    assert up.returncode == 0, up.stderr
    state = json.loads(up.stdout)["local"]
    try:
        assert state["endpoint_url"].startswith("http://127.0.0.1:")
        assert int(state["endpoint_url"].rsplit(":", 1)[1]) > 0
        assert state["database_url"].startswith("postgresql://")
        assert (tmp_path / ".payledger" / "local.json").exists()

        again = payledger(tmp_path, "local", "up", "--json")
        assert again.returncode == 0
        assert json.loads(again.stdout)["local"] == state  # already up: the same stack

        code, report = status(tmp_path)
        assert code == 0
        assert report["running"] is True
        assert {process["name"] for process in report["processes"]} == {
            "gateway",
            "moto",
            "postgres",
            "runtime",
        }
        api_url = state["outputs"]["ApiUrl"]
        assert api_url.startswith("http://127.0.0.1:")
        assert report["state"]["outputs"]["ApiUrl"] == api_url
        issued = payledger(tmp_path, "local", "credentials", "e2e-agent", "--json")
        assert issued.returncode == 0, issued.stderr
        credentials = json.loads(issued.stdout)
        assert credentials["Version"] == 1
        assert credentials["AccessKeyId"].startswith("ASIA")
        assert {"SecretAccessKey", "SessionToken", "Expiration"} <= set(credentials)
        assert all(process["running"] for process in report["processes"])
        consumers = {consumer["consumer"] for consumer in report["consumers"]}
        assert any(name.startswith("kinesis-destination-") for name in consumers)
        assert any(name.startswith("ProjectFunction") for name in consumers)
        assert report["dead_letters"]
        assert set(report["dead_letters"].values()) == {0}

        created = payledger(
            tmp_path,
            *("pay", "initiate", "--payment-id", "pay-local-1", "--amount", "12.34"),
            *("--currency", "EUR", "--merchant", "m-1", "--customer", "c-1", "--key", "k-1"),
        )
        assert created.returncode == 0, created.stderr
        history = payledger(tmp_path, "history", "pay-local-1", "--json")
        assert history.returncode == 0, history.stderr
        assert [event["event_type"] for event in json.loads(history.stdout)["events"]] == [
            "PaymentInitiated"
        ]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, report = status(tmp_path)
            projects = [c for c in report["consumers"] if c["consumer"].startswith("Project")]
            if projects and all(c["checkpoint"] and c["behind"] == 0 for c in projects):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the projection never caught up: {report['consumers']}")

        # The runtime crashes: up restarts it (and the gateway) on the same stack.
        runtime_pid = {p["name"]: p["pid"] for p in report["processes"]}["runtime"]
        os.kill(runtime_pid, signal.SIGKILL)
        code, report = status(tmp_path)
        assert code == 1
        restarted = payledger(tmp_path, "local", "up", "--json")
        assert restarted.returncode == 0, restarted.stderr
        again_state = json.loads(restarted.stdout)["local"]
        assert again_state["endpoint_url"] == state["endpoint_url"]
        assert again_state["outputs"]["EventsTableName"] == state["outputs"]["EventsTableName"]
        code, report = status(tmp_path)
        assert code == 0
        assert {p["name"]: p["pid"] for p in report["processes"]}["runtime"] != runtime_pid
        history = payledger(tmp_path, "history", "pay-local-1", "--json")
        assert history.returncode == 0, history.stderr
        assert len(json.loads(history.stdout)["events"]) == 1

        # A crash: the runtime and moto die; the stack is not running any more.
        pids = {process["name"]: process["pid"] for process in report["processes"]}
        for name in ("runtime", "moto"):
            os.kill(pids[name], signal.SIGKILL)
        code, report = status(tmp_path)
        assert code == 1
        assert report["running"] is False
    finally:
        down = payledger(tmp_path, "local", "down", "--json")
    assert down.returncode == 0, down.stderr
    assert "postgres" in json.loads(down.stdout)["stopped"]
    deadline = time.monotonic() + 10
    while any(is_running(pid, "") for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(is_running(pid, "") for pid in pids.values())
    assert not (tmp_path / ".payledger" / "local.json").exists()
    assert list((tmp_path / ".payledger" / "run").glob("*.pid")) == []
    code, report = status(tmp_path)
    assert (code, report["running"], report["state"]) == (1, False, None)
