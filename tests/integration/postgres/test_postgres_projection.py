"""The PostgreSQL views, exactly once and in order, however the stream delivers (issue 3)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ledger.envelope import RecordedEvent
from ledger.service import fold
from projections.postgres.checksums import table_checksums
from projections.postgres.projection import PostgresProjection, connect_url
from tests.integration.postgres.conftest import (
    History,
    apply_all,
    batches,
    expected_posting_lines,
    interleaved,
    payment_snapshots,
    posting_lines,
    random_history,
)


@pytest.fixture(scope="module")
def history() -> History:
    return random_history(seed=7, payments=8, count=60)


@pytest.fixture
def clean(
    postgres_url: str, other_schema: str, connection: psycopg.Connection[Any], history: History
) -> dict[str, Any]:
    """Checksums of one clean delivery: every event once, in recorded order, batches of 7."""
    projection = PostgresProjection(connect_url(postgres_url), other_schema)
    apply_all(projection, batches(history.events(), 7))
    projection.close()
    return table_checksums(connection, other_schema)


def test_a_clean_delivery_equals_the_fold(
    projection: PostgresProjection,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
) -> None:
    events = history.events()
    result = projection.apply(events)
    assert (result.applied, result.duplicates, result.failures) == (len(events), 0, {})
    assert payment_snapshots(connection, schema) == history.snapshots()
    assert posting_lines(connection, schema) == expected_posting_lines(events)
    checksums = table_checksums(connection, schema)
    assert checksums["projection_positions"].rows == len(history.stream_ids)
    assert checksums["postings"].rows > 0
    assert checksums["agent_actions"].rows > 0


def test_every_batch_delivered_twice_changes_nothing(
    projection: PostgresProjection,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
    clean: dict[str, Any],
) -> None:
    for batch in batches(history.events(), 5):
        first, second = projection.apply(batch), projection.apply(batch)
        assert first.applied == len(batch)
        assert (second.applied, second.duplicates, second.failures) == (0, len(batch), {})
    assert table_checksums(connection, schema) == clean


def test_bisected_and_resent_batches_change_nothing(
    projection: PostgresProjection,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
    clean: dict[str, Any],
) -> None:
    # Lambda's BisectBatchOnFunctionError: a batch, then its halves, then each half's halves.
    for batch in batches(history.events(), 16):
        half = len(batch) // 2
        for delivery in (batch[:half], batch, batch[half:], batch[: half // 2], batch):
            assert not projection.apply(delivery).failures
    assert table_checksums(connection, schema) == clean


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_interleaving_of_payments_changes_nothing(
    projection: PostgresProjection,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
    clean: dict[str, Any],
    seed: int,
) -> None:
    rng = random.Random(seed)
    apply_all(projection, batches(interleaved(history, rng), rng.randrange(1, 30)))
    assert table_checksums(connection, schema) == clean


def _two_streams(history: History) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
    longest = sorted(history.stream_ids, key=lambda s: -len(history.stream(s)))
    first, second = history.stream(longest[0]), history.stream(longest[1])
    assert len(first) >= 5
    return first, second


def test_a_gap_fails_its_stream_until_the_missing_event_arrives(
    projection: PostgresProjection,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
    clean: dict[str, Any],
) -> None:
    gapped, other = _two_streams(history)
    result = projection.apply([*gapped[:2], *gapped[3:], *other])
    failure = result.failures[gapped[0].stream_id]
    assert (failure.version, failure.event_id) == (4, gapped[3].event_id)
    assert failure.reason.startswith("version_gap")
    assert set(result.failures) == {gapped[0].stream_id}
    assert result.applied == 2 + len(other)
    snapshots = payment_snapshots(connection, schema)
    assert snapshots[gapped[0].stream_id[8:]].version == 2
    assert snapshots[other[0].stream_id[8:]].version == len(other)

    # The redelivery from the failed event on (with the missing one first) completes it.
    assert not projection.apply(gapped[2:]).failures
    rest = [
        event
        for event in history.events()
        if event.stream_id not in {gapped[0].stream_id, other[0].stream_id}
    ]
    assert not projection.apply(rest).failures
    assert table_checksums(connection, schema) == clean


@pytest.mark.parametrize(
    ("poison", "code"),
    [
        (lambda event: replace(event, payload="{"), "undecodable_event"),
        (lambda event: replace(event, event_type="PaymentTeleported"), "undecodable_event"),
        (lambda event: replace(event, schema_version=9), "undecodable_event"),
        (lambda event: replace(event, prev_hash="f" * 64), "chain_broken"),
        (lambda event: replace(event, recorded_at="2026-11-30 10:00:00"), "undecodable_event"),
        (
            lambda event: replace(
                event, payload=event.payload.replace('"merchant_id":"', '"merchant_id":"\\u0000')
            ),
            "undecodable_event",
        ),
    ],
)
def test_a_poison_event_holds_only_its_own_stream(
    projection: PostgresProjection,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
    poison: Callable[[RecordedEvent], RecordedEvent],
    code: str,
) -> None:
    poisoned, other = _two_streams(history)
    bad = poison(poisoned[2])
    result = projection.apply([*poisoned[:2], bad, *poisoned[3:], *other])
    failure = result.failures[bad.stream_id]
    assert (failure.version, failure.event_id) == (3, bad.event_id)
    assert failure.reason.startswith(code), failure.reason
    assert set(result.failures) == {bad.stream_id}
    assert result.applied == 2 + len(other)
    snapshots = payment_snapshots(connection, schema)
    assert snapshots[bad.stream_id[8:]].version == 2
    assert snapshots[other[0].stream_id[8:]] == history.snapshots()[other[0].stream_id[8:]]


def test_other_streams_are_ignored_and_counted(
    projection: PostgresProjection, history: History
) -> None:
    events = history.events()[:4]
    foreign = [replace(event, stream_id="merchant#m-1") for event in events[:3]]
    result = projection.apply([*foreign, *events])
    assert (result.ignored, result.applied, result.failures) == (3, 4, {})


def test_a_database_error_fails_the_whole_batch_and_applies_nothing(
    projection: PostgresProjection,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
    clean: dict[str, Any],
) -> None:
    events = history.events()
    half = len(events) // 2
    apply_all(projection, [events[:half]])
    before = table_checksums(connection, schema)
    # A row already holding the id of an event the next batch inserts: its COPY fails.
    victim = next(e for e in events[half:] if e.event_type == "RiskAssessed")
    connection.execute(
        sql.SQL(
            "INSERT INTO {} SELECT %s, payment_id, version, agent_kind, agent_id, agent_model,"
            " agent_version, action, decision, score, reason, metadata, correlation_id,"
            " occurred_at FROM {} LIMIT 1"
        ).format(*[sql.Identifier(schema, "agent_actions")] * 2),
        (victim.event_id,),
    )
    blocked = table_checksums(connection, schema)
    result = projection.apply(events[half:])
    assert result.applied == 0
    assert set(result.failures) == {event.stream_id for event in events[half:]}
    assert all("UniqueViolation" in failure.reason for failure in result.failures.values())
    assert table_checksums(connection, schema) == blocked != before

    connection.execute(
        sql.SQL("DELETE FROM {} WHERE event_id = %s").format(
            sql.Identifier(schema, "agent_actions")
        ),
        (victim.event_id,),
    )
    assert not projection.apply(events[half:]).failures  # the same connection, still usable
    assert table_checksums(connection, schema) == clean


def _cursor_with_hook(
    hook: Callable[[psycopg.Cursor[Any], str], None],
) -> type[psycopg.Cursor[Any]]:
    """A cursor class that calls ``hook(cursor, statement text)`` before each statement."""

    class HookedCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            hook(self, _text(self, query))
            return super().execute(query, *args, **kwargs)

        def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
            hook(self, _text(self, statement))
            return super().copy(statement, *args, **kwargs)

    return HookedCursor


def _text(cursor: psycopg.Cursor[Any], statement: Any) -> str:
    return statement.as_string(cursor) if hasattr(statement, "as_string") else str(statement)


@pytest.mark.parametrize("target", ["payments", "postings"])
def test_a_connection_dropped_mid_batch_applies_nothing_and_the_retry_completes(
    postgres_url: str,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
    clean: dict[str, Any],
    target: str,
) -> None:
    # Killed when the payments upsert starts (positions already upserted), or when the postings
    # COPY starts (both upserts done): the server ends the connection mid-transaction.
    trigger = (
        f'INSERT INTO "{schema}"."payments"'
        if target == "payments"
        else f'COPY "{schema}"."postings"'
    )
    kills: list[int] = []
    armed = [False]

    def kill(cursor: psycopg.Cursor[Any], statement: str) -> None:
        if armed[0] and statement.startswith(trigger):
            armed[0] = False
            kills.append(cursor.connection.info.backend_pid)
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (kills[-1],))

    cursor_class = _cursor_with_hook(kill)
    projection = PostgresProjection(
        lambda: psycopg.connect(postgres_url, autocommit=True, cursor_factory=cursor_class),
        schema,
    )
    events = history.events()
    half = len(events) // 2
    apply_all(projection, [events[:half]])
    before = table_checksums(connection, schema)
    armed[0] = True
    result = projection.apply(events[half:])
    assert len(kills) == 1
    assert result.applied == 0
    assert set(result.failures) == {event.stream_id for event in events[half:]}
    assert all(f.reason.startswith("database_error: ") for f in result.failures.values())
    assert table_checksums(connection, schema) == before  # nothing partially applied

    retried = projection.apply(events[half:])  # on a new connection
    assert (retried.applied, retried.failures) == (len(events) - half, {})
    assert table_checksums(connection, schema) == clean
    projection.close()


def test_a_stream_created_by_a_concurrent_applier_rolls_back_the_later_batch(
    postgres_url: str,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
) -> None:
    """Two appliers read the same (empty) head; the later writer must not apply it twice."""
    stream = history.stream(history.stream_ids[0])
    first = PostgresProjection(connect_url(postgres_url), schema)
    started = [False]

    def let_first_commit_after_the_read(cursor: psycopg.Cursor[Any], statement: str) -> None:
        if statement.startswith("COPY") and not started[0]:  # heads were read, writes begin
            started[0] = True
            assert not first.apply(stream).failures

    cursor_class = _cursor_with_hook(let_first_commit_after_the_read)
    second = PostgresProjection(
        lambda: psycopg.connect(postgres_url, autocommit=True, cursor_factory=cursor_class),
        schema,
    )
    result = second.apply(stream)
    assert result.applied == 0
    assert "ConcurrencyError" in result.failures[stream[0].stream_id].reason
    assert payment_snapshots(connection, schema)[stream[0].stream_id[8:]] == fold(stream)
    assert second.apply(stream).duplicates == len(stream)
    first.close()
    second.close()
