"""The README's examples and the reference tables under docs/ are executed and checked, so they
cannot rot."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from ledger.domain.errors import ALL_ERRORS
from tests.integration.test_cli import PAYLEDGER, PROCESS_TIMEOUT_S, cli_environment

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CLI_REFERENCE = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
ROUTES = (ROOT / "docs" / "routes.md").read_text(encoding="utf-8")


def test_cli_examples_run_as_written(moto_endpoint: str, events_table: str) -> None:
    commands = [line[2:] for line in README.splitlines() if line.startswith("$ payledger ")]
    assert len(commands) >= 8
    environment = cli_environment(moto_endpoint, events_table)
    outputs = []
    for command in commands:
        args = shlex.split(command)[1:]
        done = subprocess.run(
            [*PAYLEDGER, *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        outputs.append(done.stdout)
    history = json.loads(outputs[-2])["events"]
    assert [event["event_type"] for event in history] == [
        "PaymentInitiated",
        "RiskAssessed",
        "PaymentAuthorized",
        "PaymentCaptured",
        "PaymentRefunded",
        "PaymentHoldReleased",
        "PaymentSettled",
    ]
    assert json.loads(outputs[-1])["payment"]["status"] == "authorized"


def test_error_table_matches_the_code() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \| (\d) \|", CLI_REFERENCE, flags=re.MULTILINE)
    documented = {code: (int(status), int(exit_code)) for code, status, exit_code in rows}
    expected = {
        error.code: (error.http_status, error.exit_code)
        for error in ALL_ERRORS
        if error.http_status < 500
    }
    assert documented == expected


def test_route_table_matches_the_openapi_document(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EVENTS_TABLE", "never-called")
    from handlers.api.resolver import app

    rows = re.findall(r"^\| `(GET|POST) (/[^`]*)` \|", ROUTES, flags=re.MULTILINE)
    documented = {(method, _placeholders(path)) for method, path in rows}
    schema = json.loads(app.get_openapi_json_schema())
    served = {
        (method.upper(), _placeholders(path))
        for path, operations in schema["paths"].items()
        for method in operations
        if path != "/openapi.json"
    }
    assert documented == served


def _placeholders(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)
