"""Gaps filled from the event store: a stream never stays stuck behind a record it will not get.

A record dead-lettered after its bounded retries is never delivered again, and after
``payledger rebuild --swap`` the events written between the rebuild's scan and the swap reach the
rebuilt schema ahead of its positions. With an event store, ``PostgresProjection`` loads the
missing versions (one load per lagging stream, only when a gap is seen) and applies them as if
delivered; the views must then equal a clean delivery, and a fill that is not the views' own
history must be refused.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from psycopg import sql

from handlers import bootstrap
from handlers.bootstrap import DatabaseSettings, Settings
from handlers.database import build_postgres_projection
from ledger.domain.errors import LimitExceededError
from ledger.domain.limits import STREAM_EVENTS_MAX
from ledger.dynamodb import DynamoDBEventStore
from ledger.envelope import RecordedEvent, payment_id_of
from ledger.memory import MemoryEventStore
from ledger.service import fold
from ledger.store import EventStore
from projections.postgres.checksums import TableChecksum, table_checksums
from projections.postgres.projection import PostgresProjection, connect_url
from projections.postgres.tables import qualified
from projections.rebuild import StoreStreams, rebuild_postgres, swap_schemas
from tests.integration.postgres.conftest import (
    History,
    apply_all,
    batches,
    drop_schema,
    expected_posting_lines,
    interleaved,
    payment_snapshots,
    posting_lines,
    random_history,
    unique_schema_name,
)

Checksums = dict[str, TableChecksum]


class CountingStore(EventStore):
    """An event store that records every load, and may run ``before_load`` first (to let
    another applier move the views meanwhile)."""

    def __init__(self, store: EventStore, before_load: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.before_load = before_load
        self.loads: list[tuple[str, int | None]] = []

    def load(
        self, stream_id: str, *, version_max: int | None = None, limit: int = STREAM_EVENTS_MAX
    ) -> list[RecordedEvent]:
        self.loads.append((stream_id, version_max))
        if self.before_load is not None:
            self.before_load(stream_id)
        return self.store.load(stream_id, version_max=version_max, limit=limit)

    def append(self, events: Sequence[RecordedEvent]) -> None:
        self.store.append(events)

    def stream_ids(self) -> list[str]:
        return list(self.store.stream_ids())


@pytest.fixture(scope="module")
def history() -> History:
    return random_history(seed=7, payments=8, count=60)


@pytest.fixture
def store(history: History) -> CountingStore:
    return CountingStore(history.store)


@pytest.fixture
def filling(postgres_url: str, schema: str, store: CountingStore) -> Iterator[PostgresProjection]:
    """The views of ``schema``, with gaps filled from the history's own store."""
    projection = PostgresProjection(connect_url(postgres_url), schema, events=store)
    yield projection
    projection.close()


def clean_checksums(
    postgres_url: str, schema: str, connection: psycopg.Connection[Any], events: list[RecordedEvent]
) -> Checksums:
    """The views after ``events`` delivered once, in order, without any gap, into ``schema``."""
    projection = PostgresProjection(connect_url(postgres_url), schema)
    apply_all(projection, batches(events, 7))
    projection.close()
    return table_checksums(connection, schema)


def longest_streams(history: History, count: int) -> list[list[RecordedEvent]]:
    streams = sorted(history.stream_ids, key=lambda s: (-len(history.stream(s)), s))[:count]
    assert all(len(history.stream(stream_id)) >= 6 for stream_id in streams)
    return [history.stream(stream_id) for stream_id in streams]


def interleave(streams: Sequence[Sequence[RecordedEvent]]) -> list[RecordedEvent]:
    """Round-robin over ``streams``, each kept in version order."""
    merged: list[RecordedEvent] = []
    for position in range(max(map(len, streams))):
        merged.extend(stream[position] for stream in streams if position < len(stream))
    return merged


def event_ids_in_views(connection: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = connection.execute(
        sql.SQL("SELECT event_id FROM {} UNION SELECT event_id FROM {}").format(
            qualified(schema, "postings"), qualified(schema, "agent_actions")
        )
    ).fetchall()
    return {event_id for (event_id,) in rows}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_dead_lettered_batches_are_filled_and_the_views_equal_a_clean_delivery(
    filling: PostgresProjection,
    store: CountingStore,
    postgres_url: str,
    connection: psycopg.Connection[Any],
    schema: str,
    other_schema: str,
    history: History,
    seed: int,
) -> None:
    # Whole batches are lost (retries exhausted, dead-lettered, never redelivered); every later
    # batch goes through without a failure, loading once per stream it finds lagging.
    rng = random.Random(seed)
    deliveries = batches(interleaved(history, rng), rng.randrange(3, 12))
    lost = set(rng.sample(range(1, len(deliveries) - 1), k=(len(deliveries) - 2) // 3))
    applied: dict[str, int] = {}  # what the views hold per stream
    filled_total = 0
    for index, delivery in enumerate(deliveries):
        if index in lost:
            continue
        firsts: dict[str, int] = {}
        for event in delivery:
            firsts.setdefault(event.stream_id, event.version)
        missing = {s: v - 1 - applied.get(s, 0) for s, v in firsts.items()}
        lagging = sorted((s, firsts[s] - 1) for s, count in missing.items() if count)
        loads_before = len(store.loads)

        result = filling.apply(delivery)

        assert (result.failures, result.applied) == ({}, len(delivery))
        assert result.filled == sum(missing.values())
        assert sorted(store.loads[loads_before:]) == lagging
        filled_total += result.filled
        for event in delivery:
            applied[event.stream_id] = event.version
    assert lost
    assert filled_total, "the seed must lose events that a later batch needs"

    # A clean delivery of every stream up to the last version that reached the views.
    expected = [event for event in history.events() if event.version <= applied[event.stream_id]]
    assert table_checksums(connection, schema) == clean_checksums(
        postgres_url, other_schema, connection, expected
    )


def test_a_dead_lettered_record_does_not_block_its_payment(
    filling: PostgresProjection,
    store: CountingStore,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
) -> None:
    stream, other = longest_streams(history, 2)
    stream_id = stream[0].stream_id
    assert not filling.apply(stream[:2]).failures
    # Versions 3 and 4 were dead-lettered: the stream goes on from version 5.
    later = [*stream[4:], *other]
    result = filling.apply(later)
    assert (result.applied, result.filled, result.failures) == (len(later), 2, {})
    assert store.loads == [(stream_id, 4)]
    snapshots = payment_snapshots(connection, schema)
    assert snapshots[payment_id_of(stream_id)] == fold(stream)
    assert snapshots[payment_id_of(other[0].stream_id)] == fold(other)
    assert posting_lines(connection, schema) == expected_posting_lines([*stream, *other])

    # An operator redrives the dead-letter queue: nothing left to do.
    redriven = filling.apply(stream[2:4])
    assert (redriven.applied, redriven.duplicates, redriven.failures) == (0, 2, {})
    assert len(store.loads) == 1


def test_without_a_gap_nothing_is_loaded(
    filling: PostgresProjection, store: CountingStore, history: History
) -> None:
    for delivery in batches(history.events(), 9):
        result = filling.apply(delivery)
        assert (result.failures, result.filled) == ({}, 0)
        assert filling.apply(delivery).duplicates == len(delivery)  # redelivered: no load either
    assert store.loads == []


def test_one_load_per_lagging_stream(
    filling: PostgresProjection,
    store: CountingStore,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
) -> None:
    streams = longest_streams(history, 5)
    assert not filling.apply([event for stream in streams for event in stream[:2]]).failures
    # Three streams lag (by 1, 2 and 3 versions), each with several events in the batch; two
    # follow their head; the batch interleaves them all.
    tails = [streams[0][3:], streams[1][4:], streams[2][5:], streams[3][2:], streams[4][2:]]
    merged = interleave(tails)
    result = filling.apply(merged)
    assert (result.applied, result.filled, result.failures) == (len(merged), 1 + 2 + 3, {})
    assert sorted(store.loads) == sorted(
        [(streams[0][0].stream_id, 3), (streams[1][0].stream_id, 4), (streams[2][0].stream_id, 5)]
    )
    snapshots = payment_snapshots(connection, schema)
    assert all(snapshots[payment_id_of(s[0].stream_id)] == fold(s) for s in streams)


def store_of(streams: Sequence[Sequence[RecordedEvent]]) -> MemoryEventStore:
    memory = MemoryEventStore()
    for stream in streams:
        for event in stream:
            memory.append([event])
    return memory


def test_a_gap_the_store_cannot_fill_fails_only_its_stream_until_it_can(
    postgres_url: str, connection: psycopg.Connection[Any], schema: str, history: History
) -> None:
    stream, other = longest_streams(history, 2)
    stream_id = stream[0].stream_id
    # The store is behind the stream's delivery (it holds versions 1..3 only; a misconfigured
    # or restored table): versions 4..5 cannot be filled.
    store = CountingStore(store_of([stream[:3], other]))
    projection = PostgresProjection(connect_url(postgres_url), schema, events=store)
    assert not projection.apply(stream[:2]).failures
    result = projection.apply([*stream[5:], *other])
    failure = result.failures[stream_id]
    assert set(result.failures) == {stream_id}
    assert (failure.version, failure.event_id) == (6, stream[5].event_id)
    assert failure.reason == (
        "version_gap: version 6 follows applied version 2, and the event store holds 3 events"
        " before it"
    )
    assert (result.applied, result.filled) == (len(other), 0)
    assert store.loads == [(stream_id, 5)]
    snapshots = payment_snapshots(connection, schema)
    assert snapshots[payment_id_of(stream_id)] == fold(stream[:2])  # nothing of the fill
    assert snapshots[payment_id_of(other[0].stream_id)] == fold(other)

    # Retried once the store holds the missing events: filled, applied, in order.
    store.append([stream[3]])
    store.append([stream[4]])
    retried = projection.apply([*stream[5:], *other])
    assert (retried.applied, retried.filled, retried.failures) == (len(stream) - 5, 3, {})
    assert payment_snapshots(connection, schema)[payment_id_of(stream_id)] == fold(stream)
    projection.close()


def test_a_store_error_fails_only_the_lagging_stream(
    postgres_url: str, connection: psycopg.Connection[Any], schema: str, history: History
) -> None:
    stream, other = longest_streams(history, 2)

    def too_long(stream_id: str) -> None:
        raise LimitExceededError(f"stream {stream_id} holds more than 1 events")

    store = CountingStore(history.store, before_load=too_long)
    projection = PostgresProjection(connect_url(postgres_url), schema, events=store)
    assert not projection.apply(stream[:2]).failures
    result = projection.apply([*stream[4:], *other])
    failure = result.failures[stream[0].stream_id]
    assert set(result.failures) == {stream[0].stream_id}
    assert failure.version == 5
    assert failure.reason.startswith("gap_fill_failed: limit_exceeded: stream payment#")
    assert result.applied == len(other)
    assert payment_snapshots(connection, schema)[payment_id_of(other[0].stream_id)] == fold(other)
    projection.close()


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        # Another history than the views' (another table, a forged event): version 3 of the
        # store does not follow the head the views hold.
        (
            lambda stream: [replace(stream[2], prev_hash="f" * 64), *stream[3:]],
            "gap_fill_refused: at version 3: chain_broken: prev_hash ffffffffffff… is not the"
            " applied head",
        ),
        # Follows the head but is not what the delivered version 5 follows.
        (
            lambda stream: [
                replace(stream[2], hash="a" * 64),
                replace(stream[3], prev_hash="a" * 64, hash="b" * 64),
                *stream[4:],
            ],
            "gap_fill_refused: at version 5: chain_broken: delivered version 5 does not follow"
            " the event store's version 4",
        ),
    ],
)
def test_a_fill_that_does_not_join_the_chain_is_refused(
    postgres_url: str,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
    forge: Callable[[list[RecordedEvent]], list[RecordedEvent]],
    reason: str,
) -> None:
    stream, other = longest_streams(history, 2)
    stream_id = stream[0].stream_id
    store = CountingStore(store_of([[*stream[:2], *forge(stream)], other]))
    projection = PostgresProjection(connect_url(postgres_url), schema, events=store)
    assert not projection.apply(stream[:2]).failures

    result = projection.apply([*stream[4:], *other])
    failure = result.failures[stream_id]
    assert set(result.failures) == {stream_id}
    assert (failure.version, failure.event_id) == (5, stream[4].event_id)
    assert failure.reason.startswith(reason), failure.reason
    assert (result.applied, result.filled) == (len(other), 0)
    # Nothing of the fill reached the views: the stream stays at its last applied version.
    snapshots = payment_snapshots(connection, schema)
    assert snapshots[payment_id_of(stream_id)] == fold(stream[:2])
    assert snapshots[payment_id_of(other[0].stream_id)] == fold(other)
    assert not event_ids_in_views(connection, schema) & {event.event_id for event in stream[2:]}
    projection.close()


@pytest.mark.parametrize("moved_to", [3, 4, 6])
def test_a_head_moved_while_loading_is_respected(
    postgres_url: str,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
    moved_to: int,
) -> None:
    """Another applier (a retry, a rebuild) applies versions while the gap is being loaded: the
    fill's transaction re-reads the head and applies only what is still missing."""
    stream, other = longest_streams(history, 2)
    racer = PostgresProjection(connect_url(postgres_url), schema)

    def race(stream_id: str) -> None:
        assert not racer.apply(history.stream(stream_id)[2:moved_to]).failures

    store = CountingStore(history.store, before_load=race)
    projection = PostgresProjection(connect_url(postgres_url), schema, events=store)
    assert not projection.apply(stream[:2]).failures
    result = projection.apply([*stream[4:], *other])
    assert result.failures == {}
    assert result.filled == max(0, 4 - moved_to)
    assert result.applied + result.duplicates == len(stream) - 4 + len(other)
    assert result.duplicates == max(0, moved_to - 4)
    snapshots = payment_snapshots(connection, schema)
    assert snapshots[payment_id_of(stream[0].stream_id)] == fold(stream)
    assert posting_lines(connection, schema) == expected_posting_lines([*stream, *other])
    racer.close()
    projection.close()


def test_a_fill_into_a_fresh_schema_creates_the_partitions_it_needs(
    postgres_url: str, connection: psycopg.Connection[Any], schema: str, history: History
) -> None:
    """Nothing applied yet and only the stream's December events delivered: the fill (from
    version 1) holds November postings, whose partition no delivered event needs."""
    stream = next(
        stream
        for stream in map(history.stream, history.stream_ids)
        if stream[0].recorded_at < "2026-12" <= stream[-1].recorded_at
    )
    december = [event for event in stream if event.recorded_at >= "2026-12"]
    assert any("postings" in e.payload for e in stream if e.recorded_at < "2026-12")
    store = CountingStore(history.store)
    projection = PostgresProjection(connect_url(postgres_url), schema, events=store)
    result = projection.apply(december)
    assert (result.applied, result.filled, result.failures) == (
        len(december),
        len(stream) - len(december),
        {},
    )
    assert store.loads == [(stream[0].stream_id, december[0].version - 1)]
    assert payment_snapshots(connection, schema) == {
        payment_id_of(stream[0].stream_id): fold(stream)
    }
    assert posting_lines(connection, schema) == expected_posting_lines(stream)
    projection.close()


def test_events_written_between_a_rebuild_scan_and_the_swap_are_filled(
    postgres_url: str,
    connection: psycopg.Connection[Any],
    schema: str,
    other_schema: str,
    history: History,
) -> None:
    """``payledger rebuild --swap`` while the stream runs: the events table gains events after
    the rebuild read it; the live consumer applies them to the old schema, then the swap makes
    the rebuilt schema (which never saw them) live, and the next events are ahead of it."""
    events = history.events()
    scanned, between, after = (
        events[: len(events) // 2],
        events[len(events) // 2 : -20],
        events[-20:],
    )
    table = MemoryEventStore()
    for event in scanned:
        table.append([event])
    live = PostgresProjection(connect_url(postgres_url), schema, events=table)
    apply_all(live, batches(scanned, 10))

    rebuilt = unique_schema_name()
    connect = connect_url(postgres_url)
    retired = None
    try:
        report = rebuild_postgres(
            StoreStreams(table), connect, live_schema=schema, into_schema=rebuilt, events=table
        )
        assert report.identical
        for event in between:
            table.append([event])
        apply_all(live, batches(between, 10))
        retired = swap_schemas(connect, live_schema=schema, rebuilt_schema=rebuilt)

        filled = 0
        for delivery in batches(after, 10):
            for event in delivery:
                table.append([event])
            result = live.apply(delivery)
            assert result.failures == {}
            filled += result.filled
        # Each stream that gained events in between lags in the rebuilt schema, by those events.
        behind = {event.stream_id for event in between} & {event.stream_id for event in after}
        assert behind
        assert filled == sum(event.stream_id in behind for event in between)
        assert table_checksums(connection, schema) == clean_checksums(
            postgres_url, other_schema, connection, events
        )
    finally:
        live.close()
        drop_schema(connection, rebuilt)
        if retired is not None:
            drop_schema(connection, retired)


@pytest.fixture
def aws_clients_for(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The composition root's boto3 clients on the moto server (a cache per process: dropped
    before and after, as the CLI tests do)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    bootstrap.aws_client.cache_clear()
    yield
    bootstrap.aws_client.cache_clear()


@pytest.mark.usefixtures("aws_clients_for")
def test_the_wired_projection_fills_gaps_from_the_events_table(
    dynamodb_client: Any,
    events_table: str,
    postgres_url: str,
    connection: psycopg.Connection[Any],
    schema: str,
    history: History,
) -> None:
    stream, other = longest_streams(history, 2)
    events = DynamoDBEventStore(dynamodb_client, events_table)
    for chunk in [*batches(stream, 25), *batches(other, 25)]:
        events.append(chunk)
    settings = Settings(
        events_table=events_table, database=DatabaseSettings(schema=schema, url=postgres_url)
    )
    projection = build_postgres_projection(settings)
    assert projection is not None
    assert not projection.apply(stream[:2]).failures
    result = projection.apply([*stream[5:], *other])
    assert (result.applied, result.filled, result.failures) == (
        len(stream) - 5 + len(other),
        3,
        {},
    )
    snapshots = payment_snapshots(connection, schema)
    assert snapshots[payment_id_of(stream[0].stream_id)] == fold(stream)
    projection.close()
