"""The migration Lambda: a CloudFormation custom resource that applies the PostgreSQL
migrations (``projections.postgres.migrate``) from inside the database's network, so a deploy
ends with the views in place and a failed migration fails the deploy.

CloudFormation invokes it on Create and Update of the resource (its ``MigrationsDigest``
property changes with the migration files, so a deploy that brings new ones re-runs it) and on
Delete, which leaves the database as it is: the views outlive the stack's resource, never
dropped by a deploy. Migrating twice changes nothing (applied versions are recorded).

The function answers CloudFormation by a PUT of the response document to the event's pre-signed
``ResponseURL``, whatever happens: an answer never sent would hold the stack for an hour.

Environment: ``DATABASE_SCHEMA`` and one way into the database (``handlers.bootstrap``).
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.bootstrap import ConfigurationError, DatabaseSettings, database_settings
from handlers.database import database_connector
from handlers.observability import make_logger
from projections.postgres.migrate import (
    ANALYTICS_MIGRATIONS,
    VIEWS_MIGRATIONS,
    load_migrations,
    migrate_database,
)

RESPONSE_TIMEOUT_S = 30
# CloudFormation refuses a response document over 4 KB.
REASON_CHARS_MAX = 1_000
SUCCESS = "SUCCESS"
FAILED = "FAILED"

logger = make_logger()

Respond = Callable[[str, bytes], None]


def handler(event: dict[str, Any], context: LambdaContext) -> None:
    answer(event, context.log_stream_name, database_settings(), put_response)


def answer(
    event: Mapping[str, Any],
    log_stream: str,
    database: DatabaseSettings | None,
    respond: Respond,
) -> dict[str, Any]:
    """Run the request and send CloudFormation its response document (also returned)."""
    physical_id = str(event.get("PhysicalResourceId") or _physical_id(database))
    try:
        data = _run(str(event["RequestType"]), database)
        status, reason = SUCCESS, f"See CloudWatch log stream {log_stream}"
    except Exception as exc:
        logger.exception("migrations failed")
        data, status = {}, FAILED
        reason = f"{type(exc).__name__}: {exc} (log stream {log_stream})"[:REASON_CHARS_MAX]
    document = {
        "Status": status,
        "Reason": reason,
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": data,
    }
    respond(str(event["ResponseURL"]), json.dumps(document).encode("utf-8"))
    return document


def _run(request_type: str, database: DatabaseSettings | None) -> dict[str, str]:
    if request_type == "Delete":
        logger.info("delete: the database and its views are left as they are")
        return {}
    if database is None:
        raise ConfigurationError("no database configured: nothing to migrate")
    with database_connector(database)() as connection:
        applied = migrate_database(connection, database.schema)
    names = {
        schema: ",".join(f"{migration.version:04d}_{migration.name}" for migration in migrations)
        for schema, migrations in applied.items()
    }
    logger.info("migrations applied", extra={"applied": names})
    return {"Schema": database.schema, "Applied": ";".join(f"{s}:{n}" for s, n in names.items())}


def _physical_id(database: DatabaseSettings | None) -> str:
    schema = "unconfigured" if database is None else database.schema
    return f"payledger-migrations-{schema}"


def put_response(url: str, body: bytes) -> None:
    """PUT ``body`` to the pre-signed URL as CloudFormation expects it (no content type: the
    URL's signature covers an empty one)."""
    request = urllib.request.Request(  # noqa: S310 - the URL is CloudFormation's own
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=RESPONSE_TIMEOUT_S) as response:  # noqa: S310
        response.read()


def migrations_digest() -> str:
    """What the template's ``MigrationsDigest`` property must be: a digest of every migration
    file of both sets (names and contents), so it changes whenever the set changes."""
    digest = hashlib.sha256()
    for directory in (VIEWS_MIGRATIONS, ANALYTICS_MIGRATIONS):
        for migration in load_migrations(directory):
            digest.update(f"{directory}/{migration.version}/{migration.name}/".encode())
            digest.update(migration.checksum.encode())
    return digest.hexdigest()[:16]
