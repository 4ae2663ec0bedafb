"""The migration Lambda: a CloudFormation custom resource that applies the PostgreSQL
migrations (``projections.postgres.migrate``) from inside the database's network, so a deploy
ends with the views in place and a failed migration fails the deploy.

CloudFormation invokes it on Create and Update of the resource (its ``MigrationsDigest``
property changes with the migration files, so a deploy that brings new ones re-runs it) and on
Delete, which leaves the database as it is: the views outlive the stack's resource, never
dropped by a deploy. Migrating twice changes nothing (applied versions are recorded).

The function answers CloudFormation by a PUT of the response document to the event's pre-signed
``ResponseURL``, whatever happens: an answer never sent would hold the stack for an hour. So an
error is a FAILED answer with its reason, and so is a run that has not finished
``DEADLINE_MARGIN_S`` before Lambda's timeout.

Environment: ``DATABASE_SCHEMA`` and one way into the database (``handlers.bootstrap``).
"""

from __future__ import annotations

import hashlib
import json
import threading
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
# Answered FAILED this long before Lambda would end the invocation: a timed-out function sends
# nothing, and CloudFormation would wait an hour for its answer.
DEADLINE_MARGIN_S = 20
# CloudFormation refuses a response document over 4 KB.
REASON_CHARS_MAX = 1_000
SUCCESS = "SUCCESS"
FAILED = "FAILED"

logger = make_logger()

Respond = Callable[[str, bytes], None]
Database = Callable[[], DatabaseSettings | None]


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    time_s = context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN_S
    answer(event, context.log_stream_name, database_settings, put_response, time_s=time_s)


def answer(
    event: Mapping[str, Any],
    log_stream: str,
    database: Database,
    respond: Respond,
    *,
    time_s: float,
) -> dict[str, Any]:
    """Run the request (reading the settings from ``database`` is part of it: a bad
    configuration is a FAILED answer too) and send CloudFormation its response document (also
    returned); FAILED if it has not finished within ``time_s``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            settings = database()
            outcome["id"] = _physical_id(settings)
            outcome["data"] = _run(str(event["RequestType"]), settings)
        except Exception as exc:
            logger.exception("migrations failed")
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(max(time_s, 0.0))
    if "data" in outcome:
        status, reason = SUCCESS, f"See CloudWatch log stream {log_stream}"
    else:
        status = FAILED
        error = outcome.get("error") or f"not finished within {time_s:.0f} s"
        reason = f"{error} (log stream {log_stream})"[:REASON_CHARS_MAX]
    document = {
        "Status": status,
        "Reason": reason,
        "PhysicalResourceId": str(
            event.get("PhysicalResourceId") or outcome.get("id") or _physical_id(None)
        ),
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": outcome.get("data", {}),
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
