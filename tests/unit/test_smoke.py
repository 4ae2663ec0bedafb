"""``payledger smoke``'s checks against a fake of the payledger client (the same methods, a
ledger in memory) and fake probes: each check passes once its consumer caught up, fails with
the reason when it did not within the timeout or broke, and is "not run" when it cannot run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app, common, smoke
from cli.smoke import Probes, run_smoke
from devstack.runtime import DRAIN_FILE


@dataclass
class _Result:
    payment: dict[str, Any]


@dataclass
class _Page:
    payments: list[dict[str, Any]]
    next_cursor: str | None = None


@dataclass
class FakeClient:
    """The client's surface over one payment; the read model lags ``lag`` reads behind."""

    lag: int = 0
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def _step(self, payment_id: str, status: str, **fields: Any) -> _Result:
        payment = self.payments.setdefault(payment_id, {"payment_id": payment_id, "version": 0})
        payment.update(fields, status=status, version=payment["version"] + 1)
        self.calls.append(status)
        return _Result(dict(payment))

    def initiate_payment(self, **fields: Any) -> _Result:
        return self._step(fields.pop("payment_id"), "initiated", **fields)

    def assess_risk(self, payment_id: str, **fields: Any) -> _Result:
        return self._step(payment_id, "approved", risk_decision=fields["decision"])

    def authorize_payment(self, payment_id: str, **fields: Any) -> _Result:
        return self._step(payment_id, "authorized")

    def capture_payment(self, payment_id: str, **fields: Any) -> _Result:
        return self._step(payment_id, "captured")

    def get_payment(self, payment_id: str, **options: Any) -> dict[str, Any]:
        return dict(self.payments[payment_id])

    def list_merchant_payments(self, merchant_id: str, **options: Any) -> _Page:
        if self.lag > 0:
            self.lag -= 1
            return _Page([])
        assert options["status"] == "captured"
        return _Page([p for p in self.payments.values() if p["merchant_id"] == merchant_id])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def caught_up_after(polls: int, detail: str) -> Any:
    seen: list[int] = []

    def probe(payment_id: str, version: int) -> str | None:
        seen.append(version)
        return detail if len(seen) > polls else None

    return probe


def _run(client: FakeClient, probes: Probes, timeout_s: float = 30.0) -> dict[str, Any]:
    clock = Clock()
    checks = run_smoke(
        client, probes, timeout_s=timeout_s, payment_id="smoke-1", clock=clock, sleep=clock.sleep
    )
    return {check.name: check for check in checks}


def test_every_check_passes_once_its_consumer_caught_up() -> None:
    client = FakeClient(lag=3)
    probes = Probes(
        views=caught_up_after(2, "schema payledger: projected through version 4"),
        archive=caught_up_after(5, "4 events in Parquet"),
        proof=caught_up_after(1, "digest 2 proves version 4"),
        missing={},
    )
    checks = _run(client, probes)
    assert client.calls == ["initiated", "approved", "authorized", "captured"]
    assert list(checks) == [
        "payment over the API",
        "read your writes",
        "read model",
        "views",
        "archive",
        "proof",
    ]
    assert all(check.passed for check in checks.values()), checks
    assert checks["archive"].detail == "4 events in Parquet"
    assert "version 4" in checks["payment over the API"].detail


def test_a_consumer_that_never_catches_up_fails_at_the_timeout() -> None:
    probes = Probes(
        views=None,
        archive=caught_up_after(1_000, "never"),
        proof=caught_up_after(0, "digest 1 proves version 4"),
        missing={"views": "the database is in the stack's private network"},
    )
    checks = _run(FakeClient(), probes, timeout_s=5)
    assert checks["views"].passed is None
    assert "private network" in checks["views"].detail
    assert checks["archive"].passed is False
    assert checks["archive"].detail == "not caught up with version 4 in 5 s"
    assert checks["proof"].passed is True


def test_a_probe_that_breaks_fails_its_check_with_the_reason() -> None:
    def broken(payment_id: str, version: int) -> str | None:
        raise AssertionError("the proof does not verify: root differs")

    probes = Probes(views=None, archive=None, proof=broken, missing={})
    checks = _run(FakeClient(), probes)
    assert checks["proof"].passed is False
    assert "root differs" in checks["proof"].detail


def test_a_refused_command_fails_the_smoke_at_once() -> None:
    class Refusing(FakeClient):
        def authorize_payment(self, payment_id: str, **fields: Any) -> _Result:
            raise PermissionError("403: not allowed to POST /payments/*/authorization")

    checks = run_smoke(Refusing(), Probes(None, None, None, {}), timeout_s=1, payment_id="smoke-1")
    assert [(check.name, check.passed) for check in checks] == [("payment over the API", False)]
    assert "403" in checks[0].detail


@pytest.mark.parametrize(("archive", "exit_code"), [("4 events", 0), (None, 6)])
def test_the_command_prints_the_checks_and_exits_0_or_6(
    monkeypatch: pytest.MonkeyPatch, archive: str | None, exit_code: int
) -> None:
    probes = Probes(
        views=None,
        archive=(lambda p, v: archive),
        proof=caught_up_after(0, "digest 1"),
        missing={"views": "no database"},
    )
    monkeypatch.setattr(smoke, "build_client", lambda resources: FakeClient())
    monkeypatch.setattr(smoke, "build_probes", lambda resources: probes)
    monkeypatch.setattr(smoke, "POLL_S", 0.001)
    result = CliRunner().invoke(app, ["smoke", "--timeout", "1", "--json"])
    assert result.exit_code == exit_code, result.output
    assert '"name": "archive"' in result.stdout


@pytest.mark.parametrize("drained_before", [False, True])
def test_against_the_local_stack_batches_are_drained_while_smoke_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, drained_before: bool
) -> None:
    monkeypatch.setenv("PAYLEDGER_HOME", str(tmp_path))
    monkeypatch.setattr(common, "local_stack", lambda: SimpleNamespace(stack_name="local-1"))
    if drained_before:
        (tmp_path / DRAIN_FILE).touch()
    with smoke.local_batches_drained(SimpleNamespace(stack="local-1")):  # type: ignore[arg-type]
        assert (tmp_path / DRAIN_FILE).exists()
    assert (tmp_path / DRAIN_FILE).exists() is drained_before
    with smoke.local_batches_drained(SimpleNamespace(stack="deployed")):  # type: ignore[arg-type]
        assert (tmp_path / DRAIN_FILE).exists() is drained_before
