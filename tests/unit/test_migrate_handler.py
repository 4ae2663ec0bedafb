"""The migration function's answer to CloudFormation: a PUT of the response document to the
event's ResponseURL (here a loopback server standing for the pre-signed S3 URL), SUCCESS or
FAILED with the reason, Delete a no-op; the template's digest property follows the files."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.custom_resources import ResponseReceiver
from devstack.template import load_template
from handlers import migrate
from handlers.bootstrap import ConfigurationError, DatabaseSettings
from tests.lambda_context import FakeLambdaContext

UNREACHABLE = DatabaseSettings(schema="views", url="postgresql://nobody@127.0.0.1:1/none")


@pytest.fixture
def receiver() -> Iterator[ResponseReceiver]:
    with ResponseReceiver() as server:
        yield server


def _event(receiver: ResponseReceiver, request_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": receiver.url("response"),
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
        "RequestId": "request-1",
        "LogicalResourceId": "DatabaseMigrations",
        "ResourceType": "Custom::DatabaseMigrations",
        "ResourceProperties": {"ServiceToken": "arn", "MigrationsDigest": "d"},
        **extra,
    }


def _answered(
    receiver: ResponseReceiver, event: dict[str, Any], database: Any, time_s: float = 30.0
) -> dict[str, Any]:
    returned = migrate.answer(
        event, "stream-1", lambda: database, migrate.put_response, time_s=time_s
    )
    received = receiver.response("response")
    assert received == returned
    return received


def test_delete_succeeds_without_touching_the_database(receiver: ResponseReceiver) -> None:
    event = _event(receiver, "Delete", PhysicalResourceId="payledger-migrations-views")
    received = _answered(receiver, event, UNREACHABLE)
    assert received["Status"] == "SUCCESS"
    assert received["PhysicalResourceId"] == "payledger-migrations-views"
    assert (received["StackId"], received["RequestId"]) == (event["StackId"], "request-1")
    assert received["LogicalResourceId"] == "DatabaseMigrations"
    assert received["Data"] == {}


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_a_failed_migration_answers_failed_with_the_reason(
    receiver: ResponseReceiver, request_type: str
) -> None:
    received = _answered(receiver, _event(receiver, request_type), UNREACHABLE)
    assert received["Status"] == "FAILED"
    assert received["Reason"].startswith("OperationalError: ")
    assert "stream-1" in received["Reason"]
    assert received["PhysicalResourceId"] == "payledger-migrations-views"
    assert len(json.dumps(received)) < 4096


def test_no_database_configured_is_a_failure_not_a_silent_success(
    receiver: ResponseReceiver,
) -> None:
    received = _answered(receiver, _event(receiver, "Create"), None)
    assert received["Status"] == "FAILED"
    assert "ConfigurationError: no database configured" in received["Reason"]


def test_a_bad_configuration_is_answered_failed_too(receiver: ResponseReceiver) -> None:
    def misconfigured() -> DatabaseSettings:
        raise ConfigurationError("set only one of PAYLEDGER_DATABASE_URL, DATABASE_HOST")

    returned = migrate.answer(
        _event(receiver, "Create"), "s", misconfigured, migrate.put_response, time_s=30
    )
    assert returned["Status"] == "FAILED"
    assert returned == receiver.response("response")
    assert "set only one of" in returned["Reason"]


def test_a_run_near_the_functions_timeout_is_answered_failed(
    receiver: ResponseReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    monkeypatch.setattr(migrate, "_run", lambda request_type, database: release.wait(10) or {})
    try:
        received = _answered(receiver, _event(receiver, "Create"), UNREACHABLE, time_s=0.2)
    finally:
        release.set()
    assert received["Status"] == "FAILED"
    assert received["Reason"].startswith("not finished within 0 s")


def test_the_lambda_handler_answers_from_its_environment(
    receiver: ResponseReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYLEDGER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("DATABASE_SCHEMA", "from_env")
    migrate.handler(_event(receiver, "Create"), FakeLambdaContext("migrate", timeout_ms=60_000))
    received = receiver.response("response")
    assert received is not None
    assert received["Status"] == "FAILED"
    assert received["PhysicalResourceId"] == "payledger-migrations-from_env"


def test_an_update_keeps_the_physical_id(receiver: ResponseReceiver) -> None:
    event = _event(receiver, "Update", PhysicalResourceId="given-before")
    assert _answered(receiver, event, UNREACHABLE)["PhysicalResourceId"] == "given-before"


def test_the_template_digest_is_the_migration_files_digest() -> None:
    properties = load_template()["Resources"]["DatabaseMigrations"]["Properties"]
    assert properties["MigrationsDigest"] == migrate.migrations_digest(), (
        "a migration was added or changed: set MigrationsDigest in template.yaml to"
        f" {migrate.migrations_digest()} so that deploys run it"
    )
