"""The migration function against a real PostgreSQL: it answers SUCCESS with what it applied,
and a second run (an update without new migrations) applies nothing and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from devstack.custom_resources import ResponseReceiver
from handlers import migrate
from handlers.bootstrap import DatabaseSettings
from projections.postgres.migrate import load_migrations, recorded_migrations
from tests.integration.postgres.conftest import drop_schema, unique_schema_name


@pytest.fixture
def database(postgres_url: str, connection: psycopg.Connection[Any]) -> Iterator[DatabaseSettings]:
    schema = unique_schema_name()
    yield DatabaseSettings(schema=schema, url=postgres_url)
    drop_schema(connection, schema)
    drop_schema(connection, f"{schema}_analytics")


def _run(database: DatabaseSettings, request_type: str) -> dict[str, Any]:
    with ResponseReceiver() as receiver:
        event = {
            "RequestType": request_type,
            "ResponseURL": receiver.url("r"),
            "StackId": "stack",
            "RequestId": "request",
            "LogicalResourceId": "DatabaseMigrations",
        }
        migrate.answer(event, "stream", lambda: database, migrate.put_response, time_s=60)
        received = receiver.response("r")
    assert received is not None
    return received


def test_create_migrates_and_an_update_changes_nothing(
    database: DatabaseSettings, connection: psycopg.Connection[Any]
) -> None:
    created = _run(database, "Create")
    assert created["Status"] == "SUCCESS", created["Reason"]
    assert created["Data"]["Schema"] == database.schema
    assert "0001_tables" in created["Data"]["Applied"]
    recorded = recorded_migrations(connection, database.schema)
    assert recorded == {m.version: m.checksum for m in load_migrations()}

    updated = _run(database, "Update")
    assert updated["Status"] == "SUCCESS", updated["Reason"]
    assert updated["Data"]["Applied"] == f"{database.schema}:;{database.schema}_analytics:"
    assert recorded_migrations(connection, database.schema) == recorded
