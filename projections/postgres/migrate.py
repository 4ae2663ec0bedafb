"""Versioned SQL migrations of the PostgreSQL schemas, applied to one schema at a time.

Two sets, each ``<set>/NNNN_name.sql`` (version ``NNNN``, 1, 2, 3… without gaps):
- ``migrations/``: the views the stream projection writes, in the configured schema
  (``DATABASE_SCHEMA``). A rebuild builds a fresh schema from the same files and may swap it in.
- ``analytics_migrations/``: the analytics windows, in ``<schema>_analytics``
  (``tables.analytics_schema``). Apart because a rebuild replaces the views' schema and the
  windows cannot be rebuilt from the events (they count records by arrival on the Kinesis
  stream): a swap must leave them where they are.
The files use unqualified names: ``migrate`` sets ``search_path`` to the target schema for each
one, so the same files build the live schema or a fresh one beside it (``payledger rebuild``).

Guarantees:
- Each pending migration runs in its own transaction and is recorded in
  ``<schema>.schema_migrations`` (version, name, checksum, applied_at) in that transaction: it is
  applied entirely or not at all.
- Idempotent: a recorded version is never run again.
- Refused with ``MigrationError``, before anything runs, when a recorded migration's checksum
  differs from its file (history was edited: add a new migration instead) or the schema records
  a version this code does not know (it was migrated by newer code).
- Concurrent migrators of one schema are serialised by an advisory lock; the later one finds
  nothing left to do. Waiting for the lock is bounded.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from ledger.domain.errors import LedgerError
from projections.postgres.tables import analytics_schema, check_schema_name, qualified

# pg_advisory_lock(key1, key2): key1 names this lock family ("payl"), key2 the schema's hash.
LOCK_FAMILY = 0x7061796C
LOCK_WAIT_S_MAX = 60.0
_LOCK_POLL_S = 0.05
_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql\Z")


class MigrationError(LedgerError):
    """The schema's recorded migrations disagree with this code's, or the lock was not obtained."""

    code = "migration_refused"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


VIEWS_MIGRATIONS = "migrations"
ANALYTICS_MIGRATIONS = "analytics_migrations"


def load_migrations(directory_name: str = VIEWS_MIGRATIONS) -> tuple[Migration, ...]:
    """The migrations of one set shipped with this package, in version order."""
    directory = resources.files("projections.postgres").joinpath(directory_name)
    migrations = []
    for entry in directory.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            assert not entry.name.endswith(".sql"), f"badly named migration {entry.name}"
            continue
        migrations.append(
            Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
        )
    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    assert versions == list(range(1, len(versions) + 1)), f"migration versions {versions}"
    return tuple(migrations)


def migrate(
    connection: psycopg.Connection[Any],
    schema: str,
    *,
    migrations: tuple[Migration, ...] | None = None,
    lock_wait_s_max: float = LOCK_WAIT_S_MAX,
) -> list[Migration]:
    """Apply the pending migrations to ``schema`` (created if missing); those applied now.

    ``connection`` must be in autocommit mode: each migration gets its own transaction.
    """
    check_schema_name(schema)
    assert connection.autocommit, "migrate() manages its own transactions"
    migrations = load_migrations() if migrations is None else migrations
    _lock(connection, schema, lock_wait_s_max)
    try:
        _create_history(connection, schema)
        recorded = _recorded(connection, schema)
        _check_history(schema, migrations, recorded)
        pending = [migration for migration in migrations if migration.version not in recorded]
        for migration in pending:
            _apply(connection, schema, migration)
        return pending
    finally:
        if not connection.closed:
            connection.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_FAMILY, schema))


def migrate_database(
    connection: psycopg.Connection[Any], schema: str
) -> dict[str, list[Migration]]:
    """Both sets: the views into ``schema``, the analytics windows into its analytics schema;
    what was applied, per schema."""
    analytics = analytics_schema(schema)
    return {
        schema: migrate(connection, schema),
        analytics: migrate(connection, analytics, migrations=load_migrations(ANALYTICS_MIGRATIONS)),
    }


def recorded_migrations(connection: psycopg.Connection[Any], schema: str) -> dict[int, str]:
    """Version → checksum of the migrations recorded in ``schema`` (empty if none)."""
    check_schema_name(schema)
    exists = connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.schema_migrations",)
    ).fetchone()
    return _recorded(connection, schema) if exists and exists[0] else {}


def _lock(connection: psycopg.Connection[Any], schema: str, wait_s_max: float) -> None:
    deadline = time.monotonic() + wait_s_max
    while True:
        row = connection.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_FAMILY, schema)
        ).fetchone()
        if row is not None and row[0]:
            return
        if time.monotonic() >= deadline:
            raise MigrationError(
                f"another migrator of schema {schema} held its lock for over {wait_s_max:g} s"
            )
        time.sleep(_LOCK_POLL_S)


def _create_history(connection: psycopg.Connection[Any], schema: str) -> None:
    with connection.transaction():
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        connection.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(qualified(schema, "schema_migrations"))
        )


def _recorded(connection: psycopg.Connection[Any], schema: str) -> dict[int, str]:
    rows = connection.execute(
        sql.SQL("SELECT version, checksum FROM {} ORDER BY version").format(
            qualified(schema, "schema_migrations")
        )
    ).fetchall()
    return dict(rows)


def _check_history(
    schema: str, migrations: tuple[Migration, ...], recorded: dict[int, str]
) -> None:
    known = {migration.version: migration for migration in migrations}
    for version, checksum in sorted(recorded.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"schema {schema} has migration {version}, which this code does not know"
                " (migrated by a newer version?)"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version:04d}_{migration.name} changed after it was applied to"
                f" schema {schema} (checksum {checksum[:12]}… recorded,"
                f" {migration.checksum[:12]}… now); add a new migration instead"
            )


def _apply(connection: psycopg.Connection[Any], schema: str, migration: Migration) -> None:
    with connection.transaction():
        # SET LOCAL semantics: the search_path reverts when this transaction ends.
        connection.execute("SELECT set_config('search_path', %s, true)", (schema,))
        connection.execute(migration.sql.encode("utf-8"))
        connection.execute(
            sql.SQL("INSERT INTO {} (version, name, checksum) VALUES (%s, %s, %s)").format(
                qualified(schema, "schema_migrations")
            ),
            (migration.version, migration.name, migration.checksum),
        )
