"""Functions run as Lambda runs them: one process per function, exactly its environment, its
timeout, errors in Lambda's shape, a fresh process after a timeout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.functions import FunctionWorker, function_environment
from devstack.mappings import FunctionTarget

MODULE = "tests.integration.local.functions"
ENDPOINT = "http://127.0.0.1:1"


WorkerFor = Callable[..., FunctionWorker]


def target(handler: str, **settings: Any) -> FunctionTarget:
    return FunctionTarget(name="probe", handler=f"{MODULE}.{handler}", **settings)


@pytest.fixture
def worker_for(tmp_path: Path) -> Iterator[WorkerFor]:
    started: list[FunctionWorker] = []

    def start(function: FunctionTarget, database_url: str | None = None) -> FunctionWorker:
        environment = function_environment(
            function, endpoint_url=ENDPOINT, region="eu-west-1", database_url=database_url
        )
        worker = FunctionWorker(function, environment, log_path=tmp_path / "probe.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_a_function_gets_exactly_its_environment_and_the_local_overrides(
    worker_for: WorkerFor,
) -> None:
    function = target(
        "environment",
        environment={"EVENTS_TABLE": "events-1", "DATABASE_SCHEMA": "views"},
        timeout_s=7,
        memory_mb=256,
    )
    invocation = worker_for(function, database_url="postgresql:///x?host=/tmp").invoke({"a": 1})

    assert invocation.error is None
    result = invocation.result
    environment = result["environment"]
    assert environment["EVENTS_TABLE"] == "events-1"
    assert environment["DATABASE_SCHEMA"] == "views"
    assert environment["PAYLEDGER_DATABASE_URL"] == "postgresql:///x?host=/tmp"
    assert environment["AWS_ENDPOINT_URL"] == ENDPOINT
    assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == result["function_name"] == "probe"
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert "AWS_PROFILE" not in environment
    assert "POWERTOOLS_METRICS_NAMESPACE" not in environment  # the test process's, not its own
    assert 0 < result["remaining_ms"] <= 7_000
    assert result["event"] == {"a": 1}


def test_cloud_database_variables_give_way_to_the_local_database() -> None:
    cloud = FunctionTarget(
        name="project",
        handler="handlers.project.handler",
        environment={
            "DATABASE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
            "DATABASE_HOST": "proxy",
            "DATABASE_PORT": "5432",
            "DATABASE_USER": "payledger",
            "DATABASE_NAME": "payledger",
            "DATABASE_SCHEMA": "payledger",
        },
    )
    without_database = FunctionTarget(name="api", handler="handlers.api.handler")

    environment = function_environment(
        cloud, endpoint_url=ENDPOINT, region="us-east-1", database_url="postgresql:///db"
    )
    plain = function_environment(
        without_database, endpoint_url=ENDPOINT, region="us-east-1", database_url="postgresql:///db"
    )

    assert {name for name in environment if name.startswith("DATABASE_")} == {"DATABASE_SCHEMA"}
    assert environment["PAYLEDGER_DATABASE_URL"] == "postgresql:///db"
    assert "PAYLEDGER_DATABASE_URL" not in plain


def test_an_exception_is_an_error_in_lambdas_shape_and_the_runtime_lives_on(
    worker_for: WorkerFor,
) -> None:
    failing = worker_for(target("fail"))

    first = failing.invoke({})
    second = failing.invoke({})

    assert first.error is not None
    assert first.error["errorType"] == "ValueError"
    assert first.error["errorMessage"] == "the function refused the event"
    assert first.error["stackTrace"]
    assert second.failed
    assert failing.cold_starts == 1


def test_a_timeout_ends_the_runtime_and_the_next_invocation_starts_a_new_one(
    worker_for: WorkerFor,
) -> None:
    sleeper = worker_for(target("sleep", timeout_s=1))

    timed_out = sleeper.invoke({"seconds": 30})
    answered = sleeper.invoke({"seconds": 0})

    assert timed_out.error is not None
    # Killed at its timeout: a handler that slept its 30 s out would have answered "slept".
    assert timed_out.error["errorType"] == "Sandbox.Timedout"
    assert timed_out.result is None
    assert answered.result == "slept"
    assert sleeper.cold_starts == 2


def test_a_handler_that_cannot_be_imported_fails_every_invocation(worker_for: WorkerFor) -> None:
    missing = worker_for(FunctionTarget(name="missing", handler=f"{MODULE}_absent.handler"))

    invocation = missing.invoke({})

    assert invocation.error is not None
    assert invocation.error["errorType"] == "Runtime.ImportModuleError"
