"""What a newcomer reaches for first: ``--version``, shell completion, and a one-line
``configuration_error`` with a hint when AWS has no region or credentials."""

from __future__ import annotations

import os
from importlib import metadata

import pytest
from botocore.exceptions import NoCredentialsError, NoRegionError
from typer.testing import CliRunner

import cli
from cli import common
from ledger.service import PaymentService


def test_version() -> None:
    result = CliRunner().invoke(cli.app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"payledger {metadata.version('payledger')}\n"


def test_shell_completion_is_offered() -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(cli.app, ["--help"])
    assert result.exit_code == 0
    assert "--install-completion" in result.stdout
    assert "--show-completion" in result.stdout


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (NoRegionError(), "You must specify a region: set AWS_DEFAULT_REGION"),
        (NoCredentialsError(), "Unable to locate credentials: set AWS_PROFILE"),
    ],
)
def test_missing_aws_region_or_credentials_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, error: Exception, hint: str
) -> None:
    def unconfigured(resources: common.Resources) -> PaymentService:
        raise error

    monkeypatch.setattr(common, "service_factory", unconfigured)
    monkeypatch.setenv("EVENTS_TABLE", "events")
    result = CliRunner().invoke(cli.app, ["history", "pay-1"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error[configuration_error]: {hint}")
    assert result.stderr.count("\n") == 1
    result = CliRunner().invoke(cli.app, ["history", "pay-1", "--json"])
    assert result.exit_code == 1
    assert '"code": "configuration_error"' in result.stdout


def test_a_reader_that_leaves_early_gets_no_error_report() -> None:
    """``payledger api openapi | head``: the closed pipe is not reported as an error. The document
    (over 100 KB) outgrows the pipe's buffer, so the writer always meets the closed pipe."""
    import subprocess
    import sys

    with subprocess.Popen(
        [sys.executable, "-m", "cli", "api", "openapi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.read(10) == b'{\n  "opena'
        process.stdout.close()
        errors = process.stderr.read()
    assert process.returncode == 1
    assert errors == b""


def test_an_undecodable_argument_is_invalid_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates (``os.fsdecode``): invalid input,
    exit 2, never an unexpected error."""
    from ledger.memory import MemoryEventStore

    monkeypatch.setattr(common, "service_factory", lambda _: PaymentService(MemoryEventStore()))
    description = os.fsdecode(b"caf\xe9")  # Latin-1 bytes, as a shell in a Latin-1 locale sends
    result = CliRunner().invoke(
        cli.app,
        ["pay", "initiate", "--payment-id", "pay-1", "--amount", "1.00", "--currency", "EUR",
         "--merchant", "m-1", "--customer", "c-1", "--key", "k-1", "--description", description],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "validation_error" in result.output
