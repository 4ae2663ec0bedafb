"""Wiring of the PostgreSQL views, apart from ``bootstrap`` so that only the processes that
write into PostgreSQL (the stream Lambdas, the CLI) load the driver: the API's cold start never
pays for it (an import contract keeps it so)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from handlers.bootstrap import (
    DATABASE_CONNECT_TIMEOUT_S,
    PROCESS_AWS,
    AnalyticsSettings,
    AwsTarget,
    DatabaseSettings,
    Settings,
    aws_client,
)
from ledger.dynamodb import DynamoDBEventStore
from projections.postgres.analytics import PostgresWindowStore
from projections.postgres.projection import PostgresProjection
from projections.postgres.tables import analytics_schema


def database_connector(
    database: DatabaseSettings, aws: AwsTarget = PROCESS_AWS
) -> Callable[[], Any]:
    """A function opening a new autocommit psycopg connection (credentials fetched per call from
    ``aws``: IAM tokens last 15 minutes; a rotated secret is picked up on the next reconnect)."""

    def connect() -> Any:
        return psycopg.connect(
            _conninfo(database, aws), autocommit=True, connect_timeout=DATABASE_CONNECT_TIMEOUT_S
        )

    return connect


def _conninfo(database: DatabaseSettings, aws: AwsTarget) -> str:
    if database.url is not None:
        return database.url
    if database.secret_arn is not None:
        secret = json.loads(
            aws_client(aws, "secretsmanager").get_secret_value(SecretId=database.secret_arn)[
                "SecretString"
            ]
        )
        return make_conninfo(
            host=secret["host"],
            port=secret.get("port", 5432),
            user=secret["username"],
            password=secret["password"],
            dbname=secret.get("dbname", "postgres"),
            sslmode="require",
        )
    assert database.iam_host is not None
    token = aws_client(aws, "rds").generate_db_auth_token(
        DBHostname=database.iam_host, Port=database.iam_port, DBUsername=database.iam_user
    )
    return make_conninfo(
        host=database.iam_host,
        port=database.iam_port,
        user=database.iam_user,
        password=token,
        dbname=database.iam_database,
        sslmode="require",
    )


def build_postgres_projection(settings: Settings) -> PostgresProjection | None:
    """The PostgreSQL views, if this process has a database configured; gaps are filled from
    the events table (one Query per lagging stream, only when a gap is seen)."""
    if settings.database is None:
        return None
    return PostgresProjection(
        database_connector(settings.database, settings.aws),
        settings.database.schema,
        events=DynamoDBEventStore(aws_client(settings.aws, "dynamodb"), settings.events_table),
    )


def build_window_store(settings: AnalyticsSettings) -> PostgresWindowStore | None:
    """The analytics windows' tables, if this process has a database configured."""
    if settings.database is None:
        return None
    connect = database_connector(settings.database, settings.aws)
    return PostgresWindowStore(connect, analytics_schema(settings.database.schema))
