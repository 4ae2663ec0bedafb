"""The ``EventStore`` and ``EventReader`` contract, shared by every backend (as eventsourcing's
tests/persistence.py).

Subclass ``EventStoreContract`` in a ``test_*.py`` module as ``Test<Backend>EventStore`` and
implement ``make_store`` (a fresh, empty store on each call). This module is not collected itself.
"""

from __future__ import annotations

import dataclasses
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from ledger.codec import (
    canonical_json,
    event_hash,
    format_timestamp,
    uuid7,
    verify_chain,
)
from ledger.domain.errors import ConcurrencyError, LimitExceededError
from ledger.envelope import GENESIS_HASH, Actor, RecordedEvent, payment_stream_id
from ledger.store import EventReader, EventStore

AGENT = Actor(kind="agent", id="fraud-agent-7", model="risk-model", version="2026.11")
API_CLIENT = Actor(kind="api", id="merchant-key-42")
OPERATOR_WITH_VERSION_ONLY = Actor(kind="operator", id="ops-1", version="3")
_EPOCH = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
T = TypeVar("T")


def next_event(
    stream_id: str,
    head: RecordedEvent | None,
    *,
    actor: Actor = AGENT,
    causation_id: str | None = "command-1",
    writer: str = "writer-a",
    payload: dict[str, object] | None = None,
) -> RecordedEvent:
    """A valid event following ``head`` (None: the first of the stream), its hash chained."""
    version = 1 if head is None else head.version + 1
    moment = format_timestamp(_EPOCH + timedelta(seconds=version))
    draft = RecordedEvent(
        stream_id=stream_id,
        version=version,
        event_id=uuid7(),
        event_type="PaymentInitiated" if version == 1 else "PaymentCaptured",
        schema_version=1,
        occurred_at=moment,
        recorded_at=moment,
        actor=actor,
        correlation_id=f"correlation-{writer}",
        causation_id=causation_id,
        idempotency_key=f"{writer}-{version}",
        request_digest="d" * 64,
        payload=canonical_json(
            payload
            if payload is not None
            else {"amount_minor": 1_000 * version, "currency": "EUR", "writer": writer}
        ),
        prev_hash=GENESIS_HASH if head is None else head.hash,
        hash="",
    )
    return dataclasses.replace(draft, hash=event_hash(draft))


def chain(
    stream_id: str, count: int, *, after: Sequence[RecordedEvent] = (), writer: str = "writer-a"
) -> list[RecordedEvent]:
    """``count`` events following ``after`` (the stream as loaded), actors and causation varied."""
    actors = (AGENT, API_CLIENT, OPERATOR_WITH_VERSION_ONLY)
    events: list[RecordedEvent] = []
    head = after[-1] if after else None
    for offset in range(count):
        head = next_event(
            stream_id,
            head,
            actor=actors[offset % len(actors)],
            causation_id=None if offset % 2 == 0 else f"cause-{offset}",
            writer=writer,
        )
        events.append(head)
    return events


def new_stream_id() -> str:
    return payment_stream_id(uuid7())


def race(workers: int, work: Callable[[int], T]) -> list[T | ConcurrencyError]:
    """Run ``work(i)`` for i in 0..workers-1 in threads released together: each result, or the
    ``ConcurrencyError`` it raised (any other error fails the test)."""
    barrier = threading.Barrier(workers)

    def run(index: int) -> T | ConcurrencyError:
        barrier.wait(timeout=10)
        try:
            return work(index)
        except ConcurrencyError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=workers) as executor:
        return list(executor.map(run, range(workers)))


def reader_of(store: EventStore) -> EventReader:
    """The store's audit reader: every backend's event store is its own."""
    assert isinstance(store, EventReader), type(store)
    return store


class EventStoreContract(ABC):
    """What every backend guarantees (``ledger.store.EventStore`` and ``EventReader``)."""

    @abstractmethod
    def make_store(self) -> EventStore:
        """A new, empty store."""

    @pytest.fixture
    def store(self) -> EventStore:
        return self.make_store()

    def test_load_of_an_unknown_stream_is_empty(self, store: EventStore) -> None:
        assert store.load(new_stream_id()) == []
        assert store.load(new_stream_id(), version_max=5, limit=0) == []

    def test_append_one_then_load_returns_it(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        [event] = chain(stream_id, 1)
        store.append([event])
        assert store.load(stream_id) == [event]

    def test_append_several_atomically_then_continue_the_stream(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        first = chain(stream_id, 3)
        store.append(first)
        assert store.load(stream_id) == first
        second = chain(stream_id, 2, after=first)
        store.append(second)
        loaded = store.load(stream_id)
        assert loaded == first + second
        assert [event.version for event in loaded] == [1, 2, 3, 4, 5]
        assert verify_chain(loaded) == second[-1].hash

    def test_loaded_events_equal_appended_field_for_field(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        first = next_event(stream_id, None, actor=AGENT, causation_id=None)
        second = next_event(stream_id, first, actor=API_CLIENT, causation_id=first.event_id)
        third = next_event(
            stream_id,
            second,
            actor=OPERATOR_WITH_VERSION_ONLY,
            causation_id="",
            payload={"note": "réf. 10 € — 支付", "nested": {"b": [1, 2], "a": None}},
        )
        store.append([first])
        store.append([second, third])
        loaded = store.load(stream_id)
        for expected, actual in zip([first, second, third], loaded, strict=True):
            assert dataclasses.asdict(actual) == dataclasses.asdict(expected)
            assert actual == expected
        assert loaded[0].causation_id is None
        assert (loaded[1].actor.model, loaded[1].actor.version) == (None, None)
        assert loaded[2].actor == OPERATOR_WITH_VERSION_ONLY
        assert loaded[2].causation_id == ""

    def test_version_max_loads_a_prefix(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        events = chain(stream_id, 4)
        store.append(events)
        assert store.load(stream_id, version_max=0) == []
        assert store.load(stream_id, version_max=1) == events[:1]
        assert store.load(stream_id, version_max=3) == events[:3]
        assert store.load(stream_id, version_max=4) == events
        assert store.load(stream_id, version_max=99) == events

    def test_limit_is_enforced_not_truncated(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        events = chain(stream_id, 5)
        store.append(events)
        assert store.load(stream_id, limit=5) == events
        with pytest.raises(LimitExceededError):
            store.load(stream_id, limit=4)
        with pytest.raises(LimitExceededError):
            store.load(stream_id, limit=0)
        # The limit counts events in range, not in the stream.
        assert store.load(stream_id, version_max=3, limit=3) == events[:3]
        with pytest.raises(LimitExceededError):
            store.load(stream_id, version_max=3, limit=2)

    def test_second_writer_of_a_version_gets_concurrency_error(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        # Both writers loaded the empty stream and decided version 1.
        winner = chain(stream_id, 1, writer="winner")
        loser = chain(stream_id, 1, writer="loser")
        store.append(winner)
        with pytest.raises(ConcurrencyError):
            store.append(loser)
        assert store.load(stream_id) == winner

    def test_conflicting_batch_is_rejected_whole(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        base = chain(stream_id, 1)
        store.append(base)
        winner = chain(stream_id, 1, after=base, writer="winner")
        loser = chain(stream_id, 3, after=base, writer="loser")  # versions 2..4; 3 and 4 free
        store.append(winner)
        with pytest.raises(ConcurrencyError):
            store.append(loser)
        assert store.load(stream_id) == base + winner
        # The loser reloads, decides again and succeeds.
        retried = chain(stream_id, 3, after=base + winner, writer="loser")
        store.append(retried)
        assert store.load(stream_id) == base + winner + retried

    @pytest.mark.parametrize("batch_size", [1, 3])
    def test_racing_writers_of_the_same_version_exactly_one_wins(
        self, store: EventStore, batch_size: int
    ) -> None:
        stream_id = new_stream_id()
        batches = [chain(stream_id, batch_size, writer=f"w{index}") for index in range(8)]
        outcomes = race(8, lambda index: store.append(batches[index]))
        winners = [index for index, outcome in enumerate(outcomes) if outcome is None]
        assert len(winners) == 1, outcomes
        losers = [outcome for index, outcome in enumerate(outcomes) if index != winners[0]]
        assert all(isinstance(outcome, ConcurrencyError) for outcome in losers), outcomes
        assert store.load(stream_id) == batches[winners[0]]

    def test_streams_are_independent(self, store: EventStore) -> None:
        stream_a, stream_b = new_stream_id(), new_stream_id()
        events_a = chain(stream_a, 2, writer="a")
        events_b = chain(stream_b, 1, writer="b")
        store.append(events_a)
        store.append(events_b)  # version 1 again, in another stream: no conflict
        with pytest.raises(ConcurrencyError):
            store.append(chain(stream_a, 1, writer="late"))
        more_b = chain(stream_b, 2, after=events_b, writer="b")
        store.append(more_b)
        assert store.load(stream_a) == events_a
        assert store.load(stream_b) == events_b + more_b
        assert store.load(stream_a, version_max=1) == events_a[:1]

    def test_stream_ids_lists_every_stream_once(self, store: EventStore) -> None:
        streams = [new_stream_id() for _ in range(5)]
        for length, stream_id in enumerate(streams, start=1):
            store.append(chain(stream_id, length))
        listed = list(store.stream_ids())
        assert sorted(listed) == sorted(streams)

    def test_racing_appends_with_retries_keep_versions_gap_free(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        appends_per_writer, attempts_max = 3, 200

        def write(index: int) -> list[str]:
            batch_size = 1 + index % 2  # half the writers append pairs (the transactional path)
            appended: list[str] = []
            for _ in range(appends_per_writer):
                for _attempt in range(attempts_max):
                    loaded = store.load(stream_id)
                    batch = chain(stream_id, batch_size, after=loaded, writer=f"w{index}")
                    try:
                        store.append(batch)
                    except ConcurrencyError:
                        continue
                    appended.extend(event.event_id for event in batch)
                    break
                else:
                    raise AssertionError(f"writer {index} exhausted {attempts_max} attempts")
            return appended

        results = race(8, write)
        appended_ids: list[str] = []
        for result in results:
            assert isinstance(result, list), result  # write() retries every ConcurrencyError
            appended_ids.extend(result)
        loaded = store.load(stream_id)
        assert [event.version for event in loaded] == list(range(1, len(loaded) + 1))
        assert len(loaded) == 8 * appends_per_writer + 4 * appends_per_writer
        assert sorted(event.event_id for event in loaded) == sorted(appended_ids)
        assert len(set(appended_ids)) == len(appended_ids)
        verify_chain(loaded)

    def test_reader_lists_every_stream_once(self, store: EventStore) -> None:
        streams = [new_stream_id() for _ in range(3)]
        for length, stream_id in enumerate(streams, start=1):
            store.append(chain(stream_id, length))
        listed = list(reader_of(store).all_stream_ids())
        assert sorted(listed) == sorted(streams)

    def test_reader_returns_every_stored_event_in_version_order(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        events = chain(stream_id, 4)
        store.append(events[:1])
        store.append(events[1:])
        stored = reader_of(store).stored_events(stream_id)
        assert [item.version for item in stored] == [1, 2, 3, 4]
        assert [item.event for item in stored] == events
        assert all(item.error is None for item in stored)
        assert reader_of(store).stored_events(new_stream_id()) == []

    def test_reader_finds_events_by_event_id_or_correlation_id(self, store: EventStore) -> None:
        first, second = new_stream_id(), new_stream_id()
        events = chain(first, 3, writer="writer-a")
        others = chain(second, 2, writer="writer-b")
        store.append(events)
        store.append(others)
        reader = reader_of(store)
        assert reader.events_with(event_id=events[1].event_id, limit=5) == [events[1]]
        assert reader.events_with(event_id="no-such-event", limit=5) == []
        found = reader.events_with(correlation_id="correlation-writer-b", limit=5)
        assert sorted(found, key=lambda event: event.version) == others
        [one] = reader.events_with(correlation_id="correlation-writer-a", limit=1)
        assert one in events
