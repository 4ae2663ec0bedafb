"""The analytics Lambda writing its windows into a real PostgreSQL (migration 0003).

Each test has its own migrated schema; events come from ``tests.analytics_events`` (the real
service) as Lambda-shaped tumbling-window Kinesis events, through ``handlers.analytics.process``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from handlers import analytics
from handlers.bootstrap import AnalyticsSettings, DatabaseSettings
from handlers.database import build_window_store
from ledger.envelope import RecordedEvent
from projections.analytics import NUMBER_FIELDS, Figures, WindowKey, WindowRow
from projections.postgres.analytics import AnalyticsStoreError, PostgresWindowStore
from projections.postgres.migrate import ANALYTICS_MIGRATIONS, load_migrations, migrate
from projections.postgres.tables import analytics_schema, qualified
from tests.analytics_events import expected_rows, window_history
from tests.integration.postgres.conftest import drop_schema, unique_schema_name
from tests.kinesis_events import KinesisShard, change_record, window_event
from tests.lambda_context import FakeLambdaContext

HISTORY = window_history()
CONTEXT = FakeLambdaContext("payledger-analytics")
NOVEMBER = datetime(2026, 11, 30, 23, 58, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
SHARD_0, SHARD_1 = "shardId-000000000000", "shardId-000000000001"
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def schema(connection: psycopg.Connection[Any]) -> Iterator[str]:
    """A fresh analytics schema (the analytics migrations, as ``db migrate`` applies them to
    ``<schema>_analytics``), dropped at teardown."""
    name = analytics_schema(unique_schema_name())
    migrate(connection, name, migrations=load_migrations(ANALYTICS_MIGRATIONS))
    yield name
    drop_schema(connection, name)


@pytest.fixture
def db(connection: psycopg.Connection[Any], schema: str) -> psycopg.Connection[Any]:
    """The test's connection, with the test's schema first on its search_path."""
    connection.execute("SELECT set_config('search_path', %s, false)", (schema,))
    return connection


@pytest.fixture
def store(postgres_url: str, schema: str) -> Iterator[PostgresWindowStore]:
    store = PostgresWindowStore(postgres_url, schema)
    yield store
    store.close()


class Window:
    """One shard's window, invoked as Lambda would (the state passed through JSON)."""

    def __init__(
        self, store: PostgresWindowStore | None, start: datetime, shard_id: str = SHARD_0
    ) -> None:
        self.store = store
        self.start = start
        self.shard = KinesisShard(shard_id)
        self.state: dict[str, Any] = {}

    def invoke(self, events: Sequence[RecordedEvent], *, final: bool = False) -> dict[str, Any]:
        event = window_event(
            [change_record(item, self.shard) for item in events],
            start=self.start.isoformat().replace("+00:00", "Z"),
            end=(self.start + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
            state=self.state,
            final=final,
            shard_id=self.shard.shard_id,
        )
        response = json.loads(json.dumps(analytics.process(event, self.store, CONTEXT)))
        self.state = response["state"]
        return response


def stored_rows(
    connection: psycopg.Connection[Any], schema: str, start: datetime, shard_id: str = SHARD_0
) -> dict[tuple[str, str], dict[str, Any]]:
    """The window's rows that count events, shaped like ``expected_rows`` (without the duplicate
    counts; a row may hold only skipped duplicates)."""
    numbers = [name for name in NUMBER_FIELDS if name != "duplicate_count"]
    rows = connection.execute(
        sql.SQL(
            "SELECT merchant_id, currency, {}, agent_decisions FROM {}"
            " WHERE window_start = %s AND shard_id = %s AND event_count > 0"
        ).format(
            sql.SQL(", ").join(map(sql.Identifier, numbers)),
            qualified(schema, "payment_metrics_minute"),
        ),
        (start, shard_id),
    ).fetchall()
    return {
        (merchant_id, currency): {
            **{name: int(value) for name, value in zip(numbers, values, strict=True)},
            "agent_decisions": decisions,
        }
        for merchant_id, currency, *values, decisions in rows
    }


def one(connection: psycopg.Connection[Any], query: str, *arguments: Any) -> Any:
    row = connection.execute(query, arguments).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


def test_the_final_invoke_writes_the_windows_rows(
    store: PostgresWindowStore, db: psycopg.Connection[Any], schema: str
) -> None:
    window = Window(store, NOVEMBER)
    window.invoke(HISTORY[:8])
    window.invoke(HISTORY[8:])
    assert stored_rows(db, schema, NOVEMBER) == {}  # nothing before the final invoke
    window.invoke([], final=True)
    assert stored_rows(db, schema, NOVEMBER) == expected_rows(HISTORY)
    end, deduplicated, duplicates = one(
        db,
        "SELECT max(window_end), bool_and(deduplicated), sum(duplicate_count)"
        " FROM payment_metrics_minute",
    )
    assert (end, deduplicated, duplicates) == (NOVEMBER + timedelta(minutes=1), True, 0)


def test_the_views_sum_across_shards(
    store: PostgresWindowStore, db: psycopg.Connection[Any], schema: str
) -> None:
    by_stream = sorted({event.stream_id for event in HISTORY})
    on_1 = set(by_stream[::2])
    for shard_id, events in (
        (SHARD_0, [e for e in HISTORY if e.stream_id not in on_1]),
        (SHARD_1, [e for e in HISTORY if e.stream_id in on_1]),
    ):
        Window(store, NOVEMBER, shard_id).invoke(events, final=True)
    shards = one(db, "SELECT count(DISTINCT shard_id) FROM payment_metrics_minute")
    assert shards == 2

    merchants = db.execute(
        "SELECT merchant_id, initiated_count, authorized_count, declined_count, approval_rate,"
        " decline_rate, shard_count"
        " FROM merchant_metrics_minute WHERE window_start = %s ORDER BY merchant_id",
        (NOVEMBER,),
    ).fetchall()
    # m-1: a1 and f6 authorized, b2 declined after review; m-2: e5 authorized, d4 declined by
    # risk, c3 failed at the processor.
    assert merchants == [
        ("m-1", 3, 2, 1, Decimal("66.67"), Decimal("33.33"), 2),
        ("m-2", 3, 1, 2, Decimal("33.33"), Decimal("66.67"), 2),
    ]
    volumes = db.execute(
        "SELECT merchant_id, currency, initiated_minor, authorized_minor, captured_minor,"
        " refunded_minor FROM merchant_currency_metrics_minute"
        " ORDER BY merchant_id, currency"
    ).fetchall()
    assert volumes == [
        ("m-1", "EUR", 10999, 10999, 400, 150),
        ("m-1", "JPY", 1500, 0, 0, 0),
        ("m-2", "BHD", 2125, 2125, 2125, 0),
        ("m-2", "EUR", 1025, 0, 0, 0),
    ]
    decisions = db.execute(
        "SELECT agent_id, decision, sum(decision_count)"
        " FROM agent_decisions_minute GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    assert decisions == [
        ("fraud-agent", "approve", 2),
        ("fraud-agent", "decline", 1),
        ("fraud-agent", "review", 1),
        ("fraud-agent-2", "approve", 2),
        ("router-agent", "PaymentAuthorized", 3),
        ("router-agent", "PaymentFailed", 1),
    ]


def test_a_retried_final_invoke_replaces_its_own_rows(
    store: PostgresWindowStore, db: psycopg.Connection[Any], schema: str
) -> None:
    window = Window(store, NOVEMBER)
    window.invoke(HISTORY, final=True)
    first = stored_rows(db, schema, NOVEMBER)
    window.invoke([], final=True)  # the same final invoke again: the same rows
    assert stored_rows(db, schema, NOVEMBER) == first

    # An attempt with less in its state (a bisected retry) leaves exactly its own rows.
    smaller = Window(store, NOVEMBER)
    smaller.invoke(HISTORY[:3], final=True)
    assert stored_rows(db, schema, NOVEMBER) == expected_rows(HISTORY[:3])
    assert len(expected_rows(HISTORY[:3])) < len(first)


def test_a_copy_in_a_later_window_or_on_another_shard_is_not_counted_again(
    store: PostgresWindowStore, db: psycopg.Connection[Any], schema: str
) -> None:
    Window(store, NOVEMBER).invoke(HISTORY[:6], final=True)
    Window(store, NOVEMBER, SHARD_1).invoke(HISTORY[4:7], final=True)
    Window(store, DECEMBER).invoke([*HISTORY[5:10], HISTORY[0]], final=True)

    assert stored_rows(db, schema, NOVEMBER) == expected_rows(HISTORY[:6])
    assert stored_rows(db, schema, NOVEMBER, SHARD_1) == expected_rows(HISTORY[6:7])
    assert stored_rows(db, schema, DECEMBER) == expected_rows(HISTORY[7:10])
    duplicates = db.execute(
        "SELECT shard_id, window_start, sum(duplicate_count) FROM payment_metrics_minute"
        " GROUP BY 1, 2 ORDER BY 2, 1"
    ).fetchall()
    assert [count for _, _, count in duplicates] == [0, 2, 3]


def test_the_claims_of_an_attempt_whose_state_was_lost_are_counted(
    store: PostgresWindowStore, db: psycopg.Connection[Any], schema: str
) -> None:
    window = Window(store, NOVEMBER)
    window.invoke(HISTORY[:10])
    window.state = {}  # the attempt claimed its events, then Lambda discarded its state
    window.invoke(HISTORY[:10])
    window.invoke(HISTORY[10:], final=True)
    assert stored_rows(db, schema, NOVEMBER) == expected_rows(HISTORY)


def test_rows_and_claims_are_partitioned_by_month(
    store: PostgresWindowStore, db: psycopg.Connection[Any], schema: str
) -> None:
    Window(store, NOVEMBER).invoke(HISTORY, final=True)  # recorded in November and December
    Window(store, DECEMBER).invoke([], final=True)  # no rows: no partition needed
    partitions = db.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY 1",
        (schema,),
    ).fetchall()
    assert [name for (name,) in partitions] == [
        "payment_metric_events_y2026m11",
        "payment_metric_events_y2026m12",
        "payment_metrics_minute_y2026m11",
    ]
    assert one(db, "SELECT count(*) FROM payment_metric_events") == len(HISTORY)


def test_a_database_error_fails_the_invocation_and_the_store_reconnects(
    postgres_url: str, connection: psycopg.Connection[Any], schema: str
) -> None:
    unmigrated = PostgresWindowStore(postgres_url, "not_migrated")
    with pytest.raises(AnalyticsStoreError, match="analytics claim of window"):
        Window(unmigrated, NOVEMBER).invoke(HISTORY[:2])
    unmigrated.close()

    opened: list[psycopg.Connection[Any]] = []

    def connect() -> psycopg.Connection[Any]:
        opened.append(psycopg.connect(postgres_url, autocommit=True))
        return opened[-1]

    store = PostgresWindowStore(connect, schema)
    window = Window(store, NOVEMBER)
    window.invoke(HISTORY[:2])
    connection.execute("SELECT pg_terminate_backend(%s)", (opened[-1].info.backend_pid,))
    state = dict(window.state)
    with pytest.raises(AnalyticsStoreError):
        window.invoke(HISTORY[2:4], final=True)
    window.state = state  # Lambda retries with the state it had
    window.invoke(HISTORY[2:4], final=True)
    assert len(opened) == 2
    assert stored_rows(connection, schema, NOVEMBER) == expected_rows(HISTORY[:4])
    store.close()


def test_the_store_is_wired_from_the_database_settings(postgres_url: str) -> None:
    assert build_window_store(AnalyticsSettings()) is None
    settings = AnalyticsSettings(DatabaseSettings(schema="views", url=postgres_url))
    store = build_window_store(settings)
    assert isinstance(store, PostgresWindowStore)
    assert store.schema == "views_analytics"  # beside the views, never replaced by a rebuild


def test_without_a_database_the_function_says_so_once_at_start() -> None:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "PAYLEDGER_DATABASE"))
    }
    done = subprocess.run(
        [sys.executable, "-c", "from handlers import analytics; assert analytics.store is None"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    warnings = [line for line in lines if line["message"].startswith("no database configured")]
    assert len(warnings) == 1
    assert warnings[0]["level"] == "WARNING"


def test_amount_sums_beyond_64_bits_are_stored_exactly(
    store: PostgresWindowStore, db: psycopg.Connection[Any]
) -> None:
    key = WindowKey(NOVEMBER, NOVEMBER + timedelta(minutes=1), SHARD_0)
    huge = 3 * (2**63 - 1)
    rows = [
        WindowRow("m-1", "EUR", Figures(event_count=3, initiated_count=3, initiated_minor=huge)),
        WindowRow("m-2", "EUR", Figures(event_count=1, initiated_count=1, initiated_minor=5)),
    ]
    store.write(key, rows, deduplicated=True)
    stored = db.execute(
        "SELECT merchant_id, initiated_minor FROM payment_metrics_minute ORDER BY 1"
    ).fetchall()
    assert stored == [("m-1", huge), ("m-2", 5)]
