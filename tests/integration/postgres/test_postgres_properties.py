"""Property: every view equals the fold of the events, however they were delivered; balances."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from ledger.domain.events import Payload, RiskAssessed, decode_payload
from ledger.envelope import RecordedEvent
from projections.postgres.projection import PostgresProjection, connect_url
from tests.integration.postgres.conftest import (
    ACTORS,
    COMMANDS,
    History,
    apply_all,
    batches,
    build_history,
    create_schema,
    drop_schema,
    expected_posting_lines,
    interleaved,
    payment_snapshots,
    posting_lines,
    random_history,
)

VIEW_TABLES = ("agent_actions", "postings", "payments", "projection_positions")
HAPPY_PREFIX = [
    (index, name, 50, 2, 0)
    for index in range(3)
    for name in ("initiate", "assess", "authorize", "capture")
]
steps = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from(COMMANDS),
        st.integers(1, 100),
        st.integers(0, len(ACTORS) - 1),
        st.sampled_from([0, 0, 1, 3, 12, 30]),
    ),
    max_size=35,
)


@pytest.fixture(scope="module")
def module_connection(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def module_schema(module_connection: psycopg.Connection[Any]) -> Iterator[str]:
    name = create_schema(module_connection)
    yield name
    drop_schema(module_connection, name)


@pytest.fixture(scope="module")
def module_projection(postgres_url: str, module_schema: str) -> Iterator[PostgresProjection]:
    projection = PostgresProjection(connect_url(postgres_url), module_schema)
    yield projection
    projection.close()


def _payloads(events: list[RecordedEvent]) -> list[tuple[RecordedEvent, Payload]]:
    return [(e, decode_payload(e.event_type, e.schema_version, e.payload)) for e in events]


def expected_balances(events: list[RecordedEvent]) -> dict[tuple[str, str], tuple[int, ...]]:
    """account_balances computed in Python from the postings phases (ledger/domain/postings.py)."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    pending_sign = {"pending": 1, "post_pending": -1, "void_pending": -1, "posted": 0}
    posted_sign = {"pending": 0, "post_pending": 1, "void_pending": 0, "posted": 1}
    for _, payload in _payloads(events):
        for line in getattr(payload, "postings", ()):
            column = 0 if line.direction == "debit" else 1
            row = totals[(line.account, line.currency)]
            row[column] += pending_sign[line.phase] * line.amount_minor
            row[2 + column] += posted_sign[line.phase] * line.amount_minor
    return {key: (pd, pc, pd - pc, sd, sc, sd - sc) for key, (pd, pc, sd, sc) in totals.items()}


def view_balances(
    connection: psycopg.Connection[Any], schema: str
) -> dict[tuple[str, str], tuple[int, ...]]:
    rows = connection.execute(
        sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, "account_balances"))
    ).fetchall()
    return {(row[0], row[1]): tuple(int(value) for value in row[2:]) for row in rows}


def check_views_equal_the_fold(
    connection: psycopg.Connection[Any], schema: str, history: History
) -> None:
    events = history.events()
    assert payment_snapshots(connection, schema) == history.snapshots()
    assert posting_lines(connection, schema) == expected_posting_lines(events)
    assert view_balances(connection, schema) == expected_balances(events)
    positions = connection.execute(
        sql.SQL("SELECT stream_id, version FROM {}").format(
            sql.Identifier(schema, "projection_positions")
        )
    ).fetchall()
    assert dict(positions) == {s: len(history.stream(s)) for s in history.stream_ids}
    actions = connection.execute(
        sql.SQL("SELECT event_id, agent_id, action, decision, score::text FROM {}").format(
            sql.Identifier(schema, "agent_actions")
        )
    ).fetchall()
    assert sorted(actions) == sorted(
        (
            e.event_id,
            e.actor.id,
            e.event_type,
            getattr(p, "decision", None),
            getattr(p, "score", None),
        )
        for e, p in _payloads(events)
        if e.actor.kind == "agent" or e.event_type == "RiskAssessed"
    )


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    steps=steps,
    batch_size=st.integers(1, 25),
    seed=st.integers(0, 2**16),
    redeliver=st.floats(0, 0.5),
)
def test_every_view_equals_the_fold_of_the_events(
    module_connection: psycopg.Connection[Any],
    module_schema: str,
    module_projection: PostgresProjection,
    steps: list[tuple[int, str, int, int, int]],
    batch_size: int,
    seed: int,
    redeliver: float,
) -> None:
    module_connection.execute(
        sql.SQL("TRUNCATE {}").format(
            sql.SQL(", ").join(sql.Identifier(module_schema, table) for table in VIEW_TABLES)
        )
    )
    history = build_history([*HAPPY_PREFIX, *steps])
    rng = random.Random(seed)
    deliveries: list[list[RecordedEvent]] = []
    for batch in batches(interleaved(history, rng), batch_size):
        deliveries.append(batch)
        if rng.random() < redeliver:  # redelivered whole, or only its second half
            deliveries.append(batch[rng.randrange(len(batch)) :])
    apply_all(module_projection, deliveries)
    check_views_equal_the_fold(module_connection, module_schema, history)


@pytest.fixture(scope="module")
def long_history() -> History:
    return random_history(seed=11, payments=10, count=120)


@pytest.fixture
def applied(
    projection: PostgresProjection,
    long_history: History,
    connection: psycopg.Connection[Any],
    schema: str,
) -> History:
    apply_all(projection, batches(long_history.events(), 13))
    check_views_equal_the_fold(connection, schema, long_history)
    return long_history


def test_debits_equal_credits_per_currency_overall_and_per_phase(
    connection: psycopg.Connection[Any], schema: str, applied: History
) -> None:
    per_phase = connection.execute(
        sql.SQL(
            "SELECT currency, phase,"
            " sum(CASE direction WHEN 'debit' THEN amount_minor ELSE -amount_minor END), count(*)"
            " FROM {} GROUP BY 1, 2"
        ).format(sql.Identifier(schema, "postings"))
    ).fetchall()
    assert {phase for _, phase, _, _ in per_phase} == {
        "pending",
        "post_pending",
        "void_pending",
        "posted",
    }
    assert all(total == 0 for _, _, total, _ in per_phase)
    assert len({currency for currency, *_ in per_phase}) == 3
    nets = connection.execute(
        sql.SQL(
            "SELECT currency, sum(pending_net_minor), sum(posted_net_minor) FROM {} GROUP BY 1"
        ).format(sql.Identifier(schema, "account_balances"))
    ).fetchall()
    assert nets
    assert all(pending == posted == 0 for _, pending, posted in nets)


def test_balance_as_of_a_time_is_the_sum_of_postings_up_to_it(
    connection: psycopg.Connection[Any], schema: str, applied: History
) -> None:
    events = applied.events()
    months = {event.recorded_at[:7] for event in events}
    assert len(months) >= 2, "the history should cross a month (two partitions)"
    times = sorted({event.recorded_at for event in events})
    cuts = [times[0][:10] + "T00:00:00.000000Z", *times[::3]]  # before the first, then some
    accounts = sorted({account for account, _ in expected_balances(events)})
    function = sql.SQL("SELECT * FROM {}.account_balance_as_of(%s, %s)").format(
        sql.Identifier(schema)
    )
    checked = Counter[str]()
    for cut in cuts:
        expected = expected_balances([e for e in events if e.recorded_at <= cut])
        for account in accounts:
            rows = connection.execute(function, (account, datetime.fromisoformat(cut))).fetchall()
            got = {(row[0], row[1]): tuple(int(v) for v in row[2:]) for row in rows}
            want = {key: value for key, value in expected.items() if key[0] == account}
            assert got == want, (account, cut)
            checked["non-empty" if want else "empty"] += 1
    assert checked["empty"]
    assert checked["non-empty"]
    # Now (any time after the last event) is the live view.
    assert view_balances(connection, schema) == expected_balances(events)


def test_merchant_daily_summary_and_agent_decisions(
    connection: psycopg.Connection[Any], schema: str, applied: History
) -> None:
    summary: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    actions: Counter[tuple[str, str, Any, str]] = Counter()
    scores: dict[tuple[str, str, Any, str], list[Decimal]] = defaultdict(list)
    merchants = {s.state.payment_id: s.state.merchant_id for s in applied.snapshots().values()}
    for event, payload in _payloads(applied.events()):
        payment_id = event.stream_id[8:]
        day = event.recorded_at[:10]
        amount = getattr(payload, "amount_minor", 0)
        key = (merchants[payment_id], day, getattr(payload, "currency", ""))
        kind = event.event_type.removeprefix("Payment").lower()
        if kind in ("initiated", "authorized", "captured", "refunded", "settled"):
            summary[key][f"{kind}_count"] += 1
            summary[key][f"{kind}_minor"] += amount
        if event.actor.kind == "agent" or event.event_type == "RiskAssessed":
            action = (event.actor.id, event.event_type, getattr(payload, "decision", None), day)
            actions[action] += 1
            if isinstance(payload, RiskAssessed):
                scores[action].append(Decimal(payload.score))
    columns = [
        f"{kind}_{measure}"
        for kind in ("initiated", "authorized", "captured", "refunded", "settled")
        for measure in ("count", "minor")
    ]
    rows = connection.execute(
        sql.SQL("SELECT merchant_id, day::text, currency, {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.Identifier(schema, "merchant_daily_summary"),
        )
    ).fetchall()
    assert {tuple(row[:3]): dict(zip(columns, map(int, row[3:]), strict=True)) for row in rows} == {
        key: {column: counts[column] for column in columns} for key, counts in summary.items()
    }
    agent_rows = connection.execute(
        sql.SQL(
            "SELECT agent_id, action, decision, day::text, action_count, score_average FROM {}"
        ).format(sql.Identifier(schema, "agent_decisions"))
    ).fetchall()
    assert {tuple(row[:4]): row[4] for row in agent_rows} == dict(actions)
    for *key, _, average in agent_rows:
        values = scores.get(tuple(key), [])  # type: ignore[call-overload]
        if values:
            assert abs(average - sum(values) / len(values)) < Decimal("1e-12")
        else:
            assert average is None
