"""``payledger demo`` as ``make demo`` runs it, with a small workload: it starts its own local
stack in a directory of the test's own, the agents pay through the API over HTTP (the local
gateway logs each of their requests), every consumer catches up, and every check it prints has
run and passed; the stack is gone afterwards."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.test_local_stack import payledger

PAYMENTS = 12
EXPECTED_CHECKS = [
    "consumers caught up",
    "agents",
    "hash chains",
    "debits == credits",
    "read model == fold",
    "views == fold",
    "views == rebuild",
    "analytics == fold",
    "archive == events",
    "replay from archive",
    "audit report refund_ratio_by_merchant",
    "dead letters",
]
# A table row: cells between box-drawing bars.
ROW = re.compile(r"^│(.*)│$")
AGENTS_ROW = re.compile(r"^│ agents +│ passed +│ (\d+) requests:", re.MULTILINE)
# The gateway's access log: one line per request it answered (werkzeug may colour the request).
GATEWAY_COMMAND = re.compile(r'"(?:\x1b\[[\d;]*m)*POST /local/payments\S* HTTP/1\.1')


def rows(lines: list[str], title: str) -> list[list[str]]:
    """The body rows of the table printed under ``title``."""
    start = next(index for index, line in enumerate(lines) if line.strip().startswith(title))
    body: list[list[str]] = []
    for line in lines[start + 4 :]:
        match = ROW.match(line.strip())
        if match is None:
            return body
        body.append([cell.strip() for cell in match.group(1).split("│")])
    return body


def test_the_demo_runs_every_check_and_each_passes(tmp_path: Path) -> None:
    done = payledger(tmp_path, "demo", "--payments", str(PAYMENTS), "--seed", "3")

    output = done.stdout
    assert done.returncode == 0, f"{output}\n{done.stderr}"
    lines = output.splitlines()

    checks = rows(lines, "checks")
    assert [row[0] for row in checks] == EXPECTED_CHECKS
    assert {row[1] for row in checks} == {"passed"}, checks
    assert f"demo OK: {len(EXPECTED_CHECKS)} checks passed" in output
    assert "not run" not in output

    statuses = rows(lines, "payments by status")
    assert statuses[-1] == ["total", *[str(PAYMENTS)] * 4]
    for status, *counts in statuses:
        assert len(set(counts)) == 1, (status, counts)  # events, read model, views, planned
    totals = rows(lines, "totals per currency")
    assert sum(int(row[1]) for row in totals) == PAYMENTS
    for currency, phase, debits, credits in rows(lines, "postings per currency and phase"):
        assert debits == credits, (currency, phase)
    assert any(re.match(r"^payment pay-\w+-\d+ replayed", line) for line in lines)
    assert rows(lines, "audit report refund_ratio_by_merchant")

    assert "local stack stopped" in output
    home = tmp_path / ".payledger"
    requests = AGENTS_ROW.search(output)
    assert requests is not None, output
    gateway_log = (home / "logs" / "gateway.log").read_text(encoding="utf-8")
    assert len(GATEWAY_COMMAND.findall(gateway_log)) == int(requests.group(1))
    assert not (home / "local.json").exists()
    assert list((home / "run").glob("*.pid")) == []
