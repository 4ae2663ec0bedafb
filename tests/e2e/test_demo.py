"""``payledger demo`` end to end: its own moto server, the scripted flow, every ledger check."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_CONSOLE_SCRIPT = Path(sys.executable).with_name("payledger")
PAYLEDGER = (
    [str(_CONSOLE_SCRIPT)] if _CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "handlers.cli"]
)
DEMO_TIMEOUT_S = 180
# A row of the "postings over all payments" table: currency, phase, debits, credits.
BALANCE_ROW = re.compile(r"^\W+([A-Z]{3})\W+([a-z_]+)\W+([0-9.]+)\W+([0-9.]+)\W+$")


def test_demo_runs_the_flow_and_every_check_passes() -> None:
    # A wide terminal keeps each table row on one line, so the lines below can be matched.
    environment = dict(os.environ, COLUMNS="220")
    environment.pop("AWS_ENDPOINT_URL", None)  # the demo starts and uses its own server
    result = subprocess.run(
        [*PAYLEDGER, "demo"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=environment,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, f"{output}\n{result.stderr}"
    assert result.stderr == ""
    lines = output.splitlines()

    def line_with(*parts: str) -> str:
        matches = [line for line in lines if all(part in line for part in parts)]
        assert len(matches) == 1, (parts, matches)
        return matches[0]

    # Every scripted command went as expected, and none was marked otherwise.
    assert "expected " not in output
    assert line_with("order-1001", "initiate 100.00 EUR", "initiated (PaymentInitiated v1)", "ok")
    assert line_with("assess risk: review (0.55)", "agent:fraud-agent", "in_review")
    assert line_with("client retry: capture 60.00", "replayed v5, new events: 0", "ok")
    assert line_with("capture 50.00", "error[capture_exceeds_authorized]", "ok")
    assert line_with("final capture 30.00", "PaymentCaptured v6, PaymentHoldReleased v7", "ok")
    assert line_with("order-1001", "settle", "settled (PaymentSettled v9)", "ok")
    assert line_with("order-1002", "assess risk: decline (0.97)", "declined", "ok")
    assert line_with("order-1003", "void (order cancelled)", "voided (PaymentVoided v4)", "ok")

    # Each history is printed and its hash chain verified.
    assert "hash chain verified: 9 events" in output
    assert "hash chain verified: 2 events" in output
    assert "hash chain verified: 4 events" in output

    # Postings balance in every currency and phase: the printed totals say so too.
    rows = [BALANCE_ROW.match(line) for line in lines]
    totals = [row.groups() for row in rows if row is not None]
    assert {currency for currency, _, _, _ in totals} == {"EUR", "JPY"}
    assert all(debits == credits for _, _, debits, credits in totals), totals
    assert re.search(
        r"^debits == credits in every currency and phase over \d+ posting lines \(EUR, JPY\)$",
        output,
        re.MULTILINE,
    )
    assert lines[-2:] == ["moto server stopped", "demo OK: every check passed"]
