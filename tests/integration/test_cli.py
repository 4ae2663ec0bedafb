"""The ``payledger`` CLI as real processes against the moto server, plus in-process edge cases.

Processes start in parallel where the commands are independent (each start costs ~1 s of CPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from rich.console import Console
from typer.testing import CliRunner

import cli
from cli import common, pay, render
from devstack.template import create_table
from ledger.codec import verify_chain
from ledger.domain.errors import ALL_ERRORS, ConcurrencyError
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    InitiatePayment,
)
from ledger.domain.timestamps import format_timestamp
from ledger.dynamodb import DynamoDBEventStore
from ledger.envelope import Actor, RecordedEvent, payment_stream_id
from ledger.memory import MemoryEventStore
from ledger.service import RETRIES_MAX, CommandContext, PaymentService, replay_steps

REPO_ROOT = Path(__file__).resolve().parents[2]
_CONSOLE_SCRIPT = Path(sys.executable).with_name("payledger")
PAYLEDGER = [str(_CONSOLE_SCRIPT)] if _CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "cli"]
PROCESS_TIMEOUT_S = 120
HOLD_SECONDS = 8  # long enough for the authorize processes to start, short enough to wait out
SETUP_ACTOR = Actor("system", "test-setup")


# ── Running processes ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:  # shown by pytest when an assertion on a Run fails
        return f"payledger {' '.join(self.args)} -> {self.code}\n{self.stdout}\n{self.stderr}"


def cli_environment(endpoint: str, table: str) -> dict[str, str]:
    # conftest put dummy credentials and the region in os.environ; the endpoint is moto's.
    return dict(os.environ, AWS_ENDPOINT_URL=endpoint, EVENTS_TABLE=table, COLUMNS="200")


def run_parallel(
    commands: Sequence[Sequence[str]], environment: Mapping[str, str] | Sequence[Mapping[str, str]]
) -> list[Run]:
    """Start every command at once, then collect them all (in order)."""
    environments = (
        [environment] * len(commands) if isinstance(environment, Mapping) else environment
    )
    processes = [
        subprocess.Popen(
            [*PAYLEDGER, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=dict(env),
        )
        for args, env in zip(commands, environments, strict=True)
    ]
    runs = []
    try:
        for args, process in zip(commands, processes, strict=True):
            stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT_S)
            runs.append(Run(tuple(args), process.returncode, stdout, stderr))
    finally:  # a hung process fails the test; it must not outlive it
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return runs


def run(args: Sequence[str], environment: Mapping[str, str]) -> Run:
    return run_parallel([args], environment)[0]


def run_json(args: Sequence[str], environment: Mapping[str, str]) -> dict[str, Any]:
    result = run([*args, "--json"], environment)
    assert result.code == 0, result
    document: dict[str, Any] = result.json()
    return document


def initiate_args(
    payment_id: str, key: str, amount: str = "10.00", currency: str = "EUR"
) -> list[str]:
    return [
        "pay", "initiate", "--payment-id", payment_id, "--amount", amount, "--currency", currency,
        "--merchant", "m-1", "--customer", "c-1", "--key", key,
    ]  # fmt: skip


def service_on(client: Any, table: str) -> PaymentService:
    return PaymentService(DynamoDBEventStore(client, table))


def stream(client: Any, table: str, payment_id: str) -> list[RecordedEvent]:
    return DynamoDBEventStore(client, table).load(payment_stream_id(payment_id))


def advance(service: PaymentService, payment_id: str, stage: str) -> None:
    """Bring a new EUR 10.00 payment to ``stage`` in-process (keys ``<payment_id>-<step>``)."""
    steps = [
        ("initiated", "init", InitiatePayment(payment_id, "10.00", "EUR", "m-1", "c-1")),
        ("approved", "risk", AssessRisk(payment_id, "approve", "0.1", "ok")),
        ("authorized", "auth", AuthorizePayment(payment_id)),
        ("captured", "capture", CapturePayment(payment_id, "4.00")),
    ]
    for reached, key, command in steps:
        service.execute(command, CommandContext(f"{payment_id}-{key}", SETUP_ACTOR))
        if reached == stage:
            return
    raise AssertionError(f"unknown stage {stage}")


@pytest.fixture
def environment(moto_endpoint: str, events_table: str) -> dict[str, str]:
    return cli_environment(moto_endpoint, events_table)


# ── The lifecycle, as a client would drive it ─────────────────────────────────────────────────


def test_lifecycle_with_json_output(environment, dynamodb_client, events_table) -> None:  # type: ignore[no-untyped-def]
    initiated = run_json(
        [
            *initiate_args("pay-1", "k-init", amount="100.00"),
            "--description", "order 1", "--metadata", "order=1001", "--metadata", "gift=true",
            "--metadata", "zip=\"02134\"", "--metadata", "note=fragile", "--actor", "api:checkout",
            "--correlation-id", "flow-1",
        ],
        environment,
    )  # fmt: skip
    payment = initiated["payment"]
    assert (payment["status"], payment["version"], payment["amount"]) == ("initiated", 1, "100.00")
    assert payment["amount_minor"] == 10000
    assert payment["currency"] == "EUR"
    assert initiated["replayed"] is False
    [event] = initiated["events"]
    assert event["event_type"] == "PaymentInitiated"
    assert event["version"] == 1
    assert event["actor"] == {"kind": "api", "id": "checkout"}
    assert event["correlation_id"] == "flow-1"
    assert event["payload"]["metadata"] == {
        "order": 1001,
        "gift": True,
        "zip": "02134",
        "note": "fragile",
    }
    assert event["prev_hash"] == "0" * 64

    assessed = run_json(
        [
            "pay", "assess-risk", "pay-1", "--decision", "approve", "--score", "0.12",
            "--reason", "low risk", "--key", "k-risk", "--actor", "agent:fraud-bot",
            "--actor-model", "gbm", "--actor-version", "7", "--causation-id", "req-9",
        ],
        environment,
    )  # fmt: skip
    assert assessed["payment"]["status"] == "approved"
    assert assessed["payment"]["risk_score"] == "0.12"
    [event] = assessed["events"]
    assert event["actor"] == {"kind": "agent", "id": "fraud-bot", "model": "gbm", "version": "7"}
    assert (event["correlation_id"], event["causation_id"]) == ("flow-1", "req-9")

    authorized = run_json(
        [
            "pay",
            "authorize",
            "pay-1",
            "--key",
            "k-auth",
            "--processor",
            "acme",
            "--reference",
            "r-1",
        ],
        environment,
    )
    assert authorized["payment"]["status"] == "authorized"
    assert authorized["payment"]["processor"] == "acme"
    assert authorized["payment"]["hold_remaining_minor"] == 10000
    assert authorized["events"][0]["actor"]["kind"] == "operator"  # the default actor

    captured = run_json(
        ["pay", "capture", "pay-1", "--amount", "60.00", "--currency", "EUR", "--key", "k-cap-1"],
        environment,
    )
    assert captured["payment"]["status"] == "captured"
    assert captured["payment"]["amount_captured_minor"] == 6000
    assert captured["payment"]["version"] == 4

    final = run_json(
        ["pay", "capture", "pay-1", "--amount", "30.00", "--final", "--key", "k-cap-2"], environment
    )
    assert [e["event_type"] for e in final["events"]] == ["PaymentCaptured", "PaymentHoldReleased"]
    assert final["payment"]["amount_captured_minor"] == 9000
    assert final["payment"]["amount_released_minor"] == 1000
    assert final["payment"]["hold_remaining_minor"] == 0
    assert final["payment"]["version"] == 6

    refunded = run_json(
        ["pay", "refund", "pay-1", "--amount", "5.00", "--reason", "damaged", "--key", "k-ref"],
        environment,
    )
    assert refunded["payment"]["status"] == "refunded"
    assert refunded["payment"]["amount_refunded_minor"] == 500

    settled = run_json(
        ["pay", "settle", "pay-1", "--reference", "batch-1", "--key", "k-settle"], environment
    )
    assert settled["payment"]["status"] == "settled"
    assert settled["payment"]["amount_settled_minor"] == 8500
    assert settled["payment"]["version"] == 8

    history_json, replay_json = run_parallel(
        [["history", "pay-1", "--json"], ["replay", "pay-1", "--version", "3", "--json"]],
        environment,
    )
    assert history_json.code == 0, history_json
    assert replay_json.code == 0, replay_json

    events = history_json.json()["events"]
    assert [e["version"] for e in events] == list(range(1, 9))
    assert [e["event_type"] for e in events] == [
        "PaymentInitiated", "RiskAssessed", "PaymentAuthorized", "PaymentCaptured",
        "PaymentCaptured", "PaymentHoldReleased", "PaymentRefunded", "PaymentSettled",
    ]  # fmt: skip
    expected_keys = {
        "stream_id", "version", "event_id", "event_type", "schema_version", "occurred_at",
        "recorded_at", "actor", "correlation_id", "causation_id", "idempotency_key",
        "request_digest", "payload", "prev_hash", "hash",
    }  # fmt: skip
    assert all(set(e) == expected_keys for e in events)
    assert all(e["correlation_id"] == "flow-1" for e in events)
    assert [e["prev_hash"] for e in events[1:]] == [e["hash"] for e in events[:-1]]
    stored = stream(dynamodb_client, events_table, "pay-1")
    assert [e["hash"] for e in events] == [e.hash for e in stored]
    assert events[-1]["hash"] == verify_chain(stored) == settled["payment"]["head_hash"]

    replayed = replay_json.json()
    assert replayed["payment"]["version"] == 3
    assert replayed["payment"]["status"] == "authorized"
    assert [step["payment"]["status"] for step in replayed["steps"]] == [
        "initiated",
        "approved",
        "authorized",
    ]
    assert [step["event"]["version"] for step in replayed["steps"]] == [1, 2, 3]
    assert replayed["steps"][-1]["payment"] == replayed["payment"]


def test_history_and_replay_tables(dynamodb_client, events_table, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Rendering runs in-process (through the service seam) on the real table: processes are slow.
    service = service_on(dynamodb_client, events_table)
    advance(service, "pay-2", "captured")
    service.execute(
        CapturePayment("pay-2", "6.00"),
        CommandContext("k-cap-2", Actor("agent", "capture-bot", model="m", version="2")),
    )
    monkeypatch.setattr(common, "service_factory", lambda stack: service)
    runner = CliRunner(env={"COLUMNS": "200"})

    history = runner.invoke(cli.app, ["history", "pay-2"])
    assert history.exit_code == 0, history.output
    assert "hash chain verified: 5 events" in history.stdout
    assert "agent:capture-bot (m 2)" in history.stdout
    assert "6.00 EUR" in history.stdout

    replay = runner.invoke(cli.app, ["replay", "pay-2", "--as-of", "2999-01-01T00:00:00Z"])
    assert replay.exit_code == 0, replay.output
    assert "captured" in replay.stdout
    assert "10.00" in replay.stdout

    steps = replay_steps(service.load("pay-2"))
    changed = [
        {label for label, _, was_changed in fields if was_changed}
        for fields in render.replay_fields(steps)
    ]
    assert changed == [
        set(),
        {"status", "risk"},
        {"status", "authorized", "hold left"},
        {"status", "captured", "hold left"},
        {"captured", "hold left"},
    ]
    narrow = Console(width=80, record=True)
    narrow.print(render.replay_table(steps))
    text = narrow.export_text()
    assert "PaymentCaptured" in text
    assert "agent:capture-bot (m 2)" in text
    assert "captured 10.00" in text
    assert all(event.recorded_at in text for event, _ in steps)  # nothing cut short

    too_early = runner.invoke(cli.app, ["replay", "pay-2", "--as-of", "2000-01-01T00:00:00Z"])
    assert too_early.exit_code == 5


# ── Every error code, with its exit code ──────────────────────────────────────────────────────


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]
    code: str  # expected error code
    exit_code: int
    json_output: bool = True
    environment: dict[str, str] = field(default_factory=dict)
    in_process: bool = False  # input errors need no AWS: run them in-process, processes are slow

    def argv(self) -> list[str]:
        return [*self.args, *(["--json"] if self.json_output else [])]


def error_cases() -> list[Case]:
    capture, refund = ["pay", "capture"], ["pay", "refund"]
    # fmt: off
    return [
        Case("amount_digits", initiate_args("x-1", "k", amount="1.234"), "validation_error", 2),
        Case("bad_currency", initiate_args("x-2", "k", currency="EURO"), "validation_error", 2,
             in_process=True),
        Case("pan_in_metadata", [*initiate_args("x-3", "k"), "--metadata", "card=4111111111111111"],
             "pan_detected", 2, in_process=True),
        Case("amount_limit", initiate_args("x-4", "k", amount="99999999999999999999"),
             "limit_exceeded", 2, in_process=True),
        Case("bad_metadata", [*initiate_args("x-5", "k"), "--metadata", "x"], "validation_error", 2,
             json_output=False, in_process=True),
        Case("bad_actor", [*initiate_args("x-6", "k"), "--actor", "robot:r2"], "validation_error",
             2, json_output=False, in_process=True),
        Case("not_found", ["pay", "void", "nobody", "--key", "k"], "not_found", 5),
        Case("invalid_transition", [*capture, "e-init", "--amount", "1.00", "--key", "k"],
             "invalid_transition", 3),
        Case("capture_exceeds", [*capture, "e-auth", "--amount", "10.01", "--key", "k"],
             "capture_exceeds_authorized", 3),
        Case("refund_exceeds", [*refund, "e-capt", "--amount", "4.01", "--key", "k"],
             "refund_exceeds_captured", 3),
        Case("currency_mismatch",
             [*capture, "e-auth", "--amount", "1.00", "--currency", "USD", "--key", "k"],
             "currency_mismatch", 3),
        Case("hold_not_expired", ["pay", "expire", "e-auth", "--key", "k"], "hold_not_expired", 3),
        Case("idempotency_conflict",
             [*capture, "e-capt", "--amount", "1.00", "--key", "e-capt-capture"],
             "idempotency_conflict", 4),
        Case("already_exists", initiate_args("e-auth", "k-2", amount="11.00"), "already_exists", 4),
        Case("chain_broken", ["history", "e-tamper"], "chain_broken", 1, json_output=False),
        Case("undecodable", ["replay", "e-bogus"], "undecodable_event", 1),
        Case("missing_table", ["history", "e-auth"], "unexpected_error", 1, json_output=False,
             environment={"EVENTS_TABLE": "no-such-table"}),
    ]
    # fmt: on


@dataclass(frozen=True)
class Scenario:
    table: str
    client: Any
    runs: dict[str, Run]


@pytest.fixture(scope="module")
def scenario(moto_endpoint: str) -> Scenario:
    """Payments in every state the error cases need, set up in-process, then three CLI phases:
    authorize two payments with a short hold; every error case (and void, fail) in parallel;
    once the hold has passed, capture one (hold_expired) and expire the other."""
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    table = f"events-cli-{uuid.uuid4().hex[:8]}"
    create_table(client, "EventsTable", table)
    service = service_on(client, table)
    stages = {
        "e-init": "initiated", "e-auth": "authorized", "e-capt": "captured",
        "e-hold-1": "approved", "e-hold-2": "approved", "e-void": "authorized",
        "e-fail": "approved", "e-tamper": "initiated", "e-bogus": "approved",
    }  # fmt: skip
    for payment_id, stage in stages.items():
        advance(service, payment_id, stage)
    _tamper(client, table, "e-tamper", version=1, attribute="payload", value='{"forged":true}')
    _tamper(client, table, "e-bogus", version=2, attribute="event_type", value="PaymentTeleported")
    environment = cli_environment(moto_endpoint, table)
    runs: dict[str, Run] = {}

    hold_until = format_timestamp(datetime.now(UTC) + timedelta(seconds=HOLD_SECONDS))
    authorize = ["pay", "authorize", "--key", "k-auth", "--hold-until", hold_until, "--json"]
    phase_one = {f"authorize {p}": [*authorize, p] for p in ("e-hold-1", "e-hold-2")}
    runs.update(zip(phase_one, run_parallel(list(phase_one.values()), environment), strict=True))

    cases = [case for case in error_cases() if not case.in_process]
    phase_two = {case.name: case.argv() for case in cases}
    phase_two["void"] = [
        "pay", "void", "e-void", "--key", "k-void", "--reason", "cancelled", "--json",
    ]  # fmt: skip
    phase_two["fail"] = [
        "pay", "fail", "e-fail", "--reason", "insufficient funds", "--code", "51",
        "--key", "k-fail", "--json",
    ]  # fmt: skip
    phase_two["unknown_stack"] = ["--stack", "no-such-stack", "history", "e-auth"]
    environments = [environment | case.environment for case in cases] + [environment] * 3
    runs.update(zip(phase_two, run_parallel(list(phase_two.values()), environments), strict=True))

    time.sleep(max(0.0, (datetime.fromisoformat(hold_until) - datetime.now(UTC)).total_seconds()))
    phase_three = {
        "hold_expired": ["pay", "capture", "e-hold-1", "--amount", "1.00", "--key", "k", "--json"],
        "expire": ["pay", "expire", "e-hold-2", "--key", "k-expire", "--json"],
        "retry_of_setup": ["pay", "authorize", "e-auth", "--key", "e-auth-auth", "--json"],
    }
    runs.update(
        zip(phase_three, run_parallel(list(phase_three.values()), environment), strict=True)
    )
    return Scenario(table, client, runs)


def _tamper(
    client: Any, table: str, payment_id: str, *, version: int, attribute: str, value: str
) -> None:
    client.update_item(
        TableName=table,
        Key={"pk": {"S": payment_stream_id(payment_id)}, "sk": {"N": str(version)}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":v": {"S": value}},
    )


ALL_CASES = [*error_cases(), Case("hold_expired", [], "hold_expired", 3)]


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.name)
def test_error_code_and_exit_code(
    case: Case, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.in_process:
        store = MemoryEventStore()
        monkeypatch.setattr(common, "service_factory", lambda stack: PaymentService(store))
        outcome = CliRunner().invoke(cli.app, case.argv())
        result = Run(tuple(case.argv()), outcome.exit_code, outcome.stdout, outcome.stderr)
    else:
        result = request.getfixturevalue("scenario").runs[case.name]
    assert result.code == case.exit_code, result
    if case.json_output:
        document = result.json()
        assert document["error"]["code"] == case.code, result
        assert document["error"]["message"], result
        assert result.stderr == ""
    else:
        [line] = result.stderr.splitlines()
        assert line.startswith(f"error[{case.code}]: "), result
    assert "Traceback" not in result.stderr
    assert "4111111111111111" not in result.stdout + result.stderr  # never echo a card number


def test_every_error_code_is_reachable_from_the_cli() -> None:
    covered = {case.code for case in ALL_CASES} | {"concurrency_conflict"}  # in-process below
    assert {error.code for error in ALL_ERRORS} <= covered


def test_error_cases_leave_no_event(scenario: Scenario) -> None:
    for payment_id, versions in {"e-init": 1, "e-auth": 3, "e-capt": 4, "e-hold-1": 3}.items():
        assert len(stream(scenario.client, scenario.table, payment_id)) == versions, payment_id
    for payment_id in ("x-1", "nobody"):
        assert stream(scenario.client, scenario.table, payment_id) == [], payment_id


def test_hold_until_is_honoured(scenario: Scenario) -> None:
    for payment_id in ("e-hold-1", "e-hold-2"):
        result = scenario.runs[f"authorize {payment_id}"]
        assert result.code == 0, result
        assert result.json()["payment"]["status"] == "authorized"
    expired = scenario.runs["expire"]
    assert expired.code == 0, expired
    assert expired.json()["payment"]["status"] == "expired"
    assert expired.json()["payment"]["amount_released_minor"] == 1000


def test_void_and_fail(scenario: Scenario) -> None:
    voided, failed = scenario.runs["void"], scenario.runs["fail"]
    assert voided.code == 0, voided
    assert failed.code == 0, failed
    assert voided.json()["payment"]["status"] == "voided"
    assert voided.json()["events"][0]["payload"]["reason"] == "cancelled"
    assert failed.json()["payment"]["status"] == "failed"
    assert failed.json()["payment"]["failure_reason"] == "insufficient funds"
    assert failed.json()["events"][0]["payload"]["processor_code"] == "51"


def test_a_retry_from_another_process_gets_the_original_result(scenario: Scenario) -> None:
    result = scenario.runs["retry_of_setup"]
    assert result.code == 0, result
    document = result.json()
    assert document["replayed"] is True
    assert document["payment"]["version"] == 3
    stored = stream(scenario.client, scenario.table, "e-auth")
    assert [e["event_id"] for e in document["events"]] == [stored[2].event_id]


def test_unknown_stack_is_one_clear_line(scenario: Scenario) -> None:
    result = scenario.runs["unknown_stack"]
    assert result.code != 0, result
    [line] = result.stderr.splitlines()
    assert line.startswith("error["), result
    assert "no-such-stack" in line, result


def test_tampered_history_is_shown_then_reported(scenario: Scenario) -> None:
    result = scenario.runs["chain_broken"]
    assert "PaymentInitiated" in result.stdout  # the table comes first, then the verdict
    assert "hash chain verified" not in result.stdout
    assert "version 1" in result.stderr


# ── Idempotency across processes ──────────────────────────────────────────────────────────────

CONCURRENT_PROCESSES = 6


def test_same_key_same_request_from_many_processes(
    environment, dynamodb_client, events_table
) -> None:  # type: ignore[no-untyped-def]
    initiate = [*initiate_args("race-1", "k-race-init"), "--json"]
    initiated = run_parallel([initiate] * CONCURRENT_PROCESSES, environment)
    _assert_one_outcome(initiated, version=1)
    service_on(dynamodb_client, events_table).execute(
        AssessRisk("race-1", "approve", "0.1", "ok"), CommandContext("k-race-risk", SETUP_ACTOR)
    )
    service_on(dynamodb_client, events_table).execute(
        AuthorizePayment("race-1"), CommandContext("k-race-auth", SETUP_ACTOR)
    )
    capture = ["pay", "capture", "race-1", "--amount", "2.00", "--key", "k-race-cap", "--json"]
    captured = run_parallel([capture] * CONCURRENT_PROCESSES, environment)
    _assert_one_outcome(captured, version=4)

    stored = stream(dynamodb_client, events_table, "race-1")
    assert [e.idempotency_key for e in stored] == [
        "k-race-init",
        "k-race-risk",
        "k-race-auth",
        "k-race-cap",
    ]
    assert initiated[0].json()["events"][0]["event_id"] == stored[0].event_id
    assert captured[0].json()["events"][0]["event_id"] == stored[3].event_id
    verify_chain(stored)


def _assert_one_outcome(runs: Sequence[Run], *, version: int) -> None:
    for result in runs:
        assert result.code == 0, result
    documents = [result.json() for result in runs]
    assert {d["payment"]["version"] for d in documents} == {version}
    assert {d["payment"]["head_hash"] for d in documents} == {documents[0]["payment"]["head_hash"]}
    assert {tuple(e["event_id"] for e in d["events"]) for d in documents} == {
        tuple(e["event_id"] for e in documents[0]["events"])
    }
    # Exactly one process wrote; every other one found the key and got the original back.
    assert sorted(d["replayed"] for d in documents) == [False] + [True] * (len(runs) - 1)


def test_same_key_different_requests_from_two_processes(
    environment, dynamodb_client, events_table
) -> None:  # type: ignore[no-untyped-def]
    service = service_on(dynamodb_client, events_table)
    advance(service, "race-2", "authorized")
    one, two = run_parallel(
        [
            ["pay", "capture", "race-2", "--amount", "1.00", "--key", "k-shared", "--json"],
            ["pay", "capture", "race-2", "--amount", "2.00", "--key", "k-shared", "--json"],
        ],
        environment,
    )
    assert sorted([one.code, two.code]) == [0, 4], (one, two)
    loser = one if one.code == 4 else two
    assert loser.json()["error"]["code"] == "idempotency_conflict"
    stored = stream(dynamodb_client, events_table, "race-2")
    assert [e.idempotency_key for e in stored].count("k-shared") == 1


# ── In-process: the paths a real process cannot reach on demand ───────────────────────────────


class AlwaysConflictingStore(MemoryEventStore):
    """Every append loses the race, as if another writer always got there first."""

    def __init__(self) -> None:
        super().__init__()
        self.appends = 0

    def append(self, events: Sequence[RecordedEvent]) -> None:
        self.appends += 1
        raise ConcurrencyError("another writer appended first")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_concurrency_conflict_after_bounded_retries(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AlwaysConflictingStore()
    monkeypatch.setattr(
        common, "service_factory", lambda stack: PaymentService(store, sleep=lambda _: None)
    )
    result = runner.invoke(cli.app, [*initiate_args("c-1", "k"), "--json"])
    assert result.exit_code == 4, result.output
    assert json.loads(result.stdout)["error"]["code"] == "concurrency_conflict"
    assert store.appends == RETRIES_MAX + 1

    result = runner.invoke(cli.app, initiate_args("c-1", "k"))
    assert result.exit_code == 4
    assert result.stderr.startswith("error[concurrency_conflict]: ")
    assert result.stdout == ""


def test_unexpected_errors_are_one_line_unless_debug(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(stack: str | None) -> PaymentService:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(common, "service_factory", broken)
    result = runner.invoke(cli.app, ["history", "p-1"])
    assert result.exit_code == 1
    assert result.stderr == "error[unexpected_error]: RuntimeError: disk on fire second line\n"

    result = runner.invoke(cli.app, ["history", "p-1", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "unexpected_error"

    result = runner.invoke(cli.app, ["--debug", "history", "p-1"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "disk on fire" in result.stderr


def test_missing_configuration_exits_1(runner: CliRunner) -> None:
    result = runner.invoke(cli.app, ["history", "p-1"], env={"EVENTS_TABLE": ""})
    assert result.exit_code == 1
    assert result.stderr.startswith("error[configuration_error]: set EVENTS_TABLE")


@pytest.mark.parametrize(
    "args",
    [
        ["--actor", "operator"],
        ["--actor", "agent:"],
        ["--actor", ":x"],
        ["--metadata", "novalue"],
        ["--metadata", "=1"],
        ["--metadata", "a=1", "--metadata", "a=2"],
        ["--metadata", "big=99999999999999999999"],
        ["--key", "has space"],
    ],
    ids=repr,
)
def test_malformed_caller_input_is_exit_2(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setattr(common, "service_factory", lambda stack: PaymentService(MemoryEventStore()))
    result = runner.invoke(cli.app, [*initiate_args("p-1", "k"), *args, "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["code"] in {"validation_error", "limit_exceeded"}


def test_metadata_values_are_typed() -> None:
    items = ["i=-12", "z=007", "t=true", "f=false", "n=null", 's="true"', "e=", "u=a=b"]
    assert pay.parse_metadata(items) == {
        "i": -12, "z": "007", "t": True, "f": False, "n": None, "s": "true", "e": "", "u": "a=b",
    }  # fmt: skip


def test_usage_errors_exit_2(runner: CliRunner) -> None:
    assert runner.invoke(cli.app, ["pay", "capture", "p-1", "--key", "k"]).exit_code == 2
    assert (
        runner.invoke(cli.app, ["pay", "assess-risk", "p-1", "--decision", "maybe"]).exit_code == 2
    )


def test_default_actor_is_the_operator(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryEventStore()
    monkeypatch.setattr(common, "service_factory", lambda stack: PaymentService(store))
    monkeypatch.setattr(pay.getpass, "getuser", lambda: "ada")
    result = runner.invoke(cli.app, [*initiate_args("p-1", "k"), "--json"])
    assert json.loads(result.stdout)["events"][0]["actor"] == {"kind": "operator", "id": "ada"}

    def no_user() -> str:
        raise OSError("no passwd entry")

    monkeypatch.setattr(pay.getpass, "getuser", no_user)
    result = runner.invoke(cli.app, [*initiate_args("p-2", "k"), "--json"])
    assert json.loads(result.stdout)["events"][0]["actor"] == {"kind": "operator", "id": "cli"}
