"""``verify --projections`` on the PostgreSQL views: equal to a fresh replay at the versions they
say they applied; an altered or missing row is located; lag is not a problem; the fresh schema
is always dropped."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from ledger.integrity.runner import Verification, VerifyReport, run_verification
from projections.postgres.projection import PostgresProjection, connect_url
from projections.postgres.tables import qualified
from projections.verify import PostgresCheck
from tests.integration.postgres.conftest import History, apply_all, batches, random_history


@pytest.fixture
def history() -> History:
    return random_history(21, payments=6, count=40)


def verify(history: History, postgres_url: str, schema: str) -> tuple[VerifyReport, str]:
    check = PostgresCheck(connect_url(postgres_url), schema)
    with check:
        report = run_verification(Verification(store=history.store, stream_checks=[check]))
    return report, check.fresh_schema


def project(history: History, postgres_url: str, schema: str, events: Any = None) -> None:
    projection = PostgresProjection(connect_url(postgres_url), schema)
    try:
        apply_all(projection, batches(history.events() if events is None else events, 25))
    finally:
        projection.close()


def schemas(connection: psycopg.Connection[Any]) -> set[str]:
    rows = connection.execute("SELECT nspname FROM pg_namespace").fetchall()
    return {row[0] for row in rows}


def test_views_equal_to_the_replay_verify(
    history: History, postgres_url: str, schema: str, connection: psycopg.Connection[Any]
) -> None:
    project(history, postgres_url, schema)
    report, fresh = verify(history, postgres_url, schema)
    assert report.problems == []
    assert report.counts["postgres"] == {"behind": 0}
    assert fresh not in schemas(connection)


def test_altered_and_missing_rows_are_located(
    history: History, postgres_url: str, schema: str, connection: psycopg.Connection[Any]
) -> None:
    project(history, postgres_url, schema)
    payment_id, version = connection.execute(
        sql.SQL("SELECT payment_id, version FROM {} ORDER BY payment_id LIMIT 1").format(
            qualified(schema, "payments")
        )
    ).fetchone()  # type: ignore[misc]
    connection.execute(
        sql.SQL("UPDATE {} SET captured_minor = captured_minor + 1 WHERE payment_id = %s").format(
            qualified(schema, "payments")
        ),
        (payment_id,),
    )
    event_id, line, posting_payment, posting_version = connection.execute(
        sql.SQL(
            "SELECT event_id, line, payment_id, version FROM {} ORDER BY event_id LIMIT 1"
        ).format(qualified(schema, "postings"))
    ).fetchone()  # type: ignore[misc]
    connection.execute(
        sql.SQL("DELETE FROM {} WHERE event_id = %s AND line = %s").format(
            qualified(schema, "postings")
        ),
        (event_id, line),
    )
    report, _ = verify(history, postgres_url, schema)
    found = {(p.kind, p.stream_id, p.version, p.event_id, p.location) for p in report.problems}
    assert ("projection_mismatch", f"payment#{payment_id}", version, None,
            f"postgresql:{schema}.payments") in found  # fmt: skip
    assert ("projection_mismatch", f"payment#{posting_payment}", posting_version,
            f"{event_id} line {line}", f"postgresql:{schema}.postings") in found  # fmt: skip
    details = {p.detail for p in report.problems}
    assert "payments: this row of the views is not what the replay gives" in details
    assert "postings: the replay gives this row, the views do not have it" in details


def test_lag_is_counted_not_reported(history: History, postgres_url: str, schema: str) -> None:
    longest = max(history.stream_ids, key=lambda s: len(history.stream(s)))
    held_back = history.stream(longest)[-2:]
    delivered = [e for e in history.events() if e not in held_back]
    project(history, postgres_url, schema, events=delivered)
    report, _ = verify(history, postgres_url, schema)
    assert report.problems == []
    assert report.counts["postgres"] == {"behind": 1}


def test_a_payment_with_no_events_is_an_orphan(
    history: History, postgres_url: str, schema: str, connection: psycopg.Connection[Any]
) -> None:
    project(history, postgres_url, schema)
    connection.execute(
        sql.SQL(
            "INSERT INTO {} (stream_id, version, event_id, hash, updated_at)"
            " VALUES ('payment#ghost', 1, 'e-ghost', %s, now())"
        ).format(qualified(schema, "projection_positions")),
        ("0" * 64,),
    )
    report, _ = verify(history, postgres_url, schema)
    assert [(p.kind, p.stream_id) for p in report.problems] == [
        ("projection_orphan", "payment#ghost")
    ]
