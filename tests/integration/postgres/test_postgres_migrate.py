"""Versioned migrations: applied once per schema, in order, atomically, never silently edited."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from psycopg import sql

from projections.postgres.migrate import (
    Migration,
    MigrationError,
    load_migrations,
    migrate,
    recorded_migrations,
)
from projections.postgres.projection import PostgresProjection, connect_url
from tests.integration.postgres.conftest import (
    apply_all,
    batches,
    drop_schema,
    random_history,
    unique_schema_name,
)


def _tables(connection: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = connection.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v')",
        (schema,),
    ).fetchall()
    return {name for (name,) in rows}


def test_migrate_applies_every_migration_once(
    connection: psycopg.Connection[Any], schema: str
) -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert recorded_migrations(connection, schema) == {m.version: m.checksum for m in migrations}
    assert migrate(connection, schema) == []  # idempotent
    assert {
        "schema_migrations",
        "payments",
        "postings",
        "agent_actions",
        "projection_positions",
        "account_balances",
        "merchant_daily_summary",
        "agent_decisions",
    } <= _tables(connection, schema)


def test_a_fresh_schema_records_name_checksum_and_time(
    connection: psycopg.Connection[Any], other_schema: str
) -> None:
    rows = connection.execute(
        sql.SQL("SELECT version, name, checksum, applied_at FROM {} ORDER BY version").format(
            sql.Identifier(other_schema, "schema_migrations")
        )
    ).fetchall()
    assert [(v, n, c) for v, n, c, _ in rows] == [
        (m.version, m.name, m.checksum) for m in load_migrations()
    ]
    assert all(applied_at is not None for *_, applied_at in rows)


def test_a_changed_migration_is_refused(connection: psycopg.Connection[Any], schema: str) -> None:
    edited = list(load_migrations())
    edited[0] = Migration(edited[0].version, edited[0].name, edited[0].sql + "\n-- edited\n")
    with pytest.raises(MigrationError, match="0001_tables changed after it was applied"):
        migrate(connection, schema, migrations=tuple(edited))


def test_a_migration_unknown_to_this_code_is_refused(
    connection: psycopg.Connection[Any], schema: str
) -> None:
    connection.execute(
        sql.SQL("INSERT INTO {} (version, name, checksum) VALUES (99, 'future', 'x')").format(
            sql.Identifier(schema, "schema_migrations")
        )
    )
    with pytest.raises(MigrationError, match="migration 99, which this code does not know"):
        migrate(connection, schema)


def test_a_failing_migration_leaves_no_trace_and_keeps_the_earlier_ones(
    connection: psycopg.Connection[Any],
) -> None:
    schema = unique_schema_name()
    shipped = load_migrations()
    half_done = "CREATE TABLE half (a int);\nSELECT no_such_function();"
    broken = (*shipped, Migration(len(shipped) + 1, "half_done", half_done))
    try:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            migrate(connection, schema, migrations=broken)
        assert set(recorded_migrations(connection, schema)) == {m.version for m in shipped}
        assert "half" not in _tables(connection, schema)
        assert "payments" in _tables(connection, schema)
    finally:
        drop_schema(connection, schema)


def test_concurrent_migrators_apply_each_migration_once(
    postgres_url: str, connection: psycopg.Connection[Any]
) -> None:
    schema = unique_schema_name()
    applied: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        try:
            with psycopg.connect(postgres_url, autocommit=True) as own:
                barrier.wait()
                applied.append([m.version for m in migrate(own, schema)])
        except BaseException as error:  # noqa: BLE001 - re-raised by the test thread below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert sorted(applied) == [[], [], [m.version for m in load_migrations()]]
    finally:
        drop_schema(connection, schema)


def test_a_held_lock_is_waited_for_a_bounded_time(
    postgres_url: str, connection: psycopg.Connection[Any], schema: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (0x7061796C, schema))
        with pytest.raises(MigrationError, match="held its lock"):
            migrate(connection, schema, lock_wait_s_max=0.2)


def test_two_schemas_side_by_side_are_independent(
    postgres_url: str, connection: psycopg.Connection[Any], schema: str, other_schema: str
) -> None:
    history = random_history(seed=3, payments=3, count=12)
    projection = PostgresProjection(connect_url(postgres_url), schema)
    apply_all(projection, batches(history.events(), 10))
    projection.close()
    count = sql.SQL("SELECT count(*) FROM {}")
    for table in ("payments", "postings"):
        assert connection.execute(count.format(sql.Identifier(schema, table))).fetchone()[0] > 0  # type: ignore[index]
        assert connection.execute(count.format(sql.Identifier(other_schema, table))).fetchone() == (
            0,
        )
    # Views and the as-of function read their own schema's tables, whatever the search_path.
    account = connection.execute(
        sql.SQL("SELECT account FROM {} LIMIT 1").format(sql.Identifier(schema, "postings"))
    ).fetchone()[0]  # type: ignore[index]
    connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    as_of = sql.SQL("SELECT count(*) FROM {}.account_balance_as_of(%s, 'infinity')")
    assert connection.execute(
        as_of.format(sql.Identifier(other_schema)), (account,)
    ).fetchone() == (0,)
    assert connection.execute(as_of.format(sql.Identifier(schema)), (account,)).fetchone() != (0,)
    balances = sql.SQL("SELECT count(*) FROM {}")
    assert connection.execute(
        balances.format(sql.Identifier(other_schema, "account_balances"))
    ).fetchone() == (0,)
    connection.execute("RESET search_path")
