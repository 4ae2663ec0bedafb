from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator

import boto3
import pytest

from devstack.motoserver import MotoServer
from devstack.template import create_table

# Dummy credentials so no test can reach a real account; every AWS call goes to the moto server.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "PayledgerTest",
        "POWERTOOLS_SERVICE_NAME": "payledger",
        # A local stack the developer runs (``.payledger``) is never what a test talks to: no
        # stack is ever started here.
        "PAYLEDGER_HOME": os.path.join(tempfile.gettempdir(), "payledger-tests-no-local-stack"),
    }
)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server process on loopback for the whole session (each test uses its own tables)."""
    with MotoServer() as server:
        yield server.endpoint_url


@pytest.fixture
def dynamodb_client(moto_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def events_table(dynamodb_client) -> str:  # type: ignore[no-untyped-def]
    """A fresh events table shaped exactly as template.yaml declares ``EventsTable``."""
    name = f"events-{uuid.uuid4().hex[:12]}"
    create_table(dynamodb_client, "EventsTable", name)
    return name
