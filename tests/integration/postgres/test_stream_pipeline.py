"""The stream path end to end, as Lambda drives it (DESIGN §6, issue 3).

Real histories (decided by the domain) are written to a real events table on the moto server with
``DynamoDBEventStore.append``; the table's items become the NewImages of Lambda-shaped DynamoDB
Streams events (``tests.stream_events``, validated with Powertools' own model), which
``handlers.project.process`` applies to both real read models at once: the payment-state table
(created from template.yaml's ``PaymentStateTable``) and the PostgreSQL views (a fresh schema).

The PostgreSQL views are compared by checksum with the same events applied directly through
``PostgresProjection`` into another schema; every payment-state item with ``ledger.service.fold``
of its stream. However the stream delivers (twice, bisected, interleaved, with ignored REMOVE
records), both must end up the same; a poison record holds only its own payment, in both.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import psycopg
import pytest

from devstack.template import create_table
from ledger.codec import canonical_json
from ledger.dynamodb import DynamoDBEventStore, Item, item_to_event
from ledger.envelope import RecordedEvent, payment_id_of
from ledger.service import fold
from projections.payment_state import PaymentStateProjection, item_to_snapshot
from projections.postgres.checksums import TableChecksum, table_checksums
from projections.postgres.projection import PostgresProjection, connect_url
from tests.integration.postgres.conftest import History, interleaved, random_history
from tests.stream_events import (
    Shard,
    insert_record,
    remove_record,
    sequence_number,
    stream_event,
)

with pytest.MonkeyPatch.context() as _patch:
    # handlers.project wires its own projections at import (clients, no call); tests pass theirs.
    _patch.setenv("EVENTS_TABLE", "payledger-integration-tests-never-called")
    _patch.setenv("PAYMENT_STATE_TABLE", "payledger-integration-tests-never-called")
    from handlers import project

PAYMENTS = 15
STEPS = 200
BATCH_SIZE = 100  # Lambda's default BatchSize for a DynamoDB Stream event source
Checksums = dict[str, TableChecksum]
Record = dict[str, Any]
T = TypeVar("T")


# ── the events table ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Ledger:
    """A history written to an events table, and that table's items (the stream's NewImages)."""

    client: Any
    store: DynamoDBEventStore
    history: History
    items: Mapping[tuple[str, int], Item]

    def events(self) -> list[RecordedEvent]:
        """Every event in the order it was written: the order of the shard."""
        return self.history.events()

    def streams(self) -> dict[str, list[RecordedEvent]]:
        return {stream_id: self.history.stream(stream_id) for stream_id in self.history.stream_ids}

    def image(self, event: RecordedEvent) -> Item:
        """A copy of ``event``'s item as stored (free to edit into poison)."""
        return copy.deepcopy(self.items[(event.stream_id, event.version)])


@pytest.fixture(scope="module")
def ledger(moto_endpoint: str) -> Ledger:
    history = random_history(seed=11, payments=PAYMENTS, count=STEPS)
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    table = f"events-{uuid.uuid4().hex[:12]}"
    create_table(client, "EventsTable", table)
    store = DynamoDBEventStore(client, table)
    for event in history.events():  # one append per event, in the order the writers made them
        store.append([event])
    items = {}
    for stream_id in history.stream_ids:
        response = client.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": stream_id}},
            ConsistentRead=True,
        )
        assert "LastEvaluatedKey" not in response
        for item in response["Items"]:
            items[(item["pk"]["S"], int(item["sk"]["N"]))] = item
    # What the table holds is exactly the history: the records below carry its items.
    assert sorted(store.stream_ids()) == history.stream_ids
    assert {key: item_to_event(item) for key, item in items.items()} == {
        (event.stream_id, event.version): event for event in history.events()
    }
    assert len(history.events()) > BATCH_SIZE  # at least one batch boundary
    return Ledger(client, store, history, items)


# ── the pipeline: both read models behind the handler ────────────────────────────────────────


@dataclass
class Pipeline:
    ledger: Ledger
    state: PaymentStateProjection
    state_table: str
    postgres: PostgresProjection
    connection: psycopg.Connection[Any]

    def deliver(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """One Lambda invocation on ``records``; the sequence numbers it reported failed."""
        response = project.process(stream_event(records), [self.state, self.postgres])
        assert set(response) == {"batchItemFailures"}, response
        return [str(failure["itemIdentifier"]) for failure in response["batchItemFailures"]]

    def checksums(self) -> Checksums:
        return table_checksums(self.connection, self.postgres.schema)

    def state_items(self) -> dict[str, dict[str, Any]]:
        """Every payment-state item, as ``PaymentSnapshot.to_dict`` shapes it (one Scan)."""
        response = self.ledger.client.scan(TableName=self.state_table, ConsistentRead=True)
        assert "LastEvaluatedKey" not in response
        snapshots = [item_to_snapshot(item) for item in response["Items"]]
        return {snapshot.state.payment_id: snapshot.to_dict() for snapshot in snapshots}


@pytest.fixture
def pipeline(
    ledger: Ledger, projection: PostgresProjection, connection: psycopg.Connection[Any]
) -> Pipeline:
    state_table = f"payment-state-{uuid.uuid4().hex[:12]}"
    create_table(ledger.client, "PaymentStateTable", state_table)
    state = PaymentStateProjection(ledger.client, state_table, ledger.store, sleep=lambda _: None)
    return Pipeline(ledger, state, state_table, projection, connection)


@pytest.fixture
def direct(
    postgres_url: str, other_schema: str, connection: psycopg.Connection[Any]
) -> Iterator[Callable[[Sequence[RecordedEvent]], Checksums]]:
    """Applies events straight through ``PostgresProjection`` into another schema; its checksums."""
    projection = PostgresProjection(connect_url(postgres_url), other_schema)

    def apply(events: Sequence[RecordedEvent]) -> Checksums:
        result = projection.apply(events)
        assert (result.applied, result.failures) == (len(events), {})
        return table_checksums(connection, other_schema)

    yield apply
    projection.close()


# ── expectations ─────────────────────────────────────────────────────────────────────────────


def folded(streams: Mapping[str, Sequence[RecordedEvent]]) -> dict[str, dict[str, Any]]:
    """Each payment as ``ledger.service.fold`` of ``streams`` gives it (``to_dict``)."""
    snapshots = [fold(events) for events in streams.values() if events]
    return {s.state.payment_id: s.to_dict() for s in snapshots if s is not None}


def assert_fully_projected(pipeline: Pipeline, expected: Checksums) -> None:
    assert pipeline.checksums() == expected
    assert pipeline.state_items() == folded(pipeline.ledger.streams())


def insert_records(ledger: Ledger, events: Sequence[RecordedEvent], shard: Shard) -> list[Record]:
    return [insert_record(event, shard, new_image=ledger.image(event)) for event in events]


def chunks(records: Sequence[T], size: int) -> list[Sequence[T]]:
    return [records[start : start + size] for start in range(0, len(records), size)]


def bisected(batch: Sequence[Record]) -> list[Sequence[Record]]:
    """Lambda's BisectBatchOnFunctionError, depth first: each half of ``batch``, then that
    half's halves (as if every attempt errored after its projections had written)."""
    deliveries: list[Sequence[Record]] = []
    half = len(batch) // 2
    for part in (batch[:half], batch[half:]):
        quarter = len(part) // 2
        deliveries.extend(piece for piece in (part, part[:quarter], part[quarter:]) if piece)
    return deliveries


def twice(batch: Sequence[Record]) -> list[Sequence[Record]]:
    return [batch, batch]


def twice_then_bisected(batch: Sequence[Record]) -> list[Sequence[Record]]:
    return [*twice(batch), *bisected(batch)]


# ── tests ────────────────────────────────────────────────────────────────────────────────────


def test_one_clean_delivery_equals_the_direct_projection_and_the_fold(
    pipeline: Pipeline, direct: Callable[[Sequence[RecordedEvent]], Checksums]
) -> None:
    events = pipeline.ledger.events()
    records = insert_records(pipeline.ledger, events, Shard())

    for batch in chunks(records, BATCH_SIZE):
        assert pipeline.deliver(batch) == []

    expected = direct(events)
    assert expected["postings"].rows > 0
    assert expected["agent_actions"].rows > 0
    assert expected["projection_positions"].rows == PAYMENTS
    assert_fully_projected(pipeline, expected)


@pytest.mark.parametrize(
    ("order_seed", "batch_size", "schedule"),
    [
        pytest.param(None, BATCH_SIZE, twice, id="recorded-order-every-batch-twice"),
        pytest.param(None, BATCH_SIZE, bisected, id="recorded-order-bisected"),
        pytest.param(1, BATCH_SIZE, twice_then_bisected, id="interleaved-twice-and-bisected"),
        pytest.param(2, 17, twice_then_bisected, id="interleaved-small-batches"),
    ],
)
def test_redelivered_bisected_and_interleaved_batches_equal_one_clean_delivery(
    pipeline: Pipeline,
    direct: Callable[[Sequence[RecordedEvent]], Checksums],
    order_seed: int | None,
    batch_size: int,
    schedule: Callable[[Sequence[Record]], list[Sequence[Record]]],
) -> None:
    ledger = pipeline.ledger
    if order_seed is None:
        events = ledger.events()
    else:
        events = interleaved(ledger.history, random.Random(order_seed))
        assert events != ledger.events()
    records = insert_records(ledger, events, Shard())  # a redelivery keeps its sequence numbers

    for batch in chunks(records, batch_size):
        for delivery in schedule(batch):
            assert pipeline.deliver(delivery) == []

    assert_fully_projected(pipeline, direct(ledger.events()))


def _invalid_payload(item: Item) -> None:
    payload = json.loads(item["payload"]["S"])
    payload["merchant_id"] = 42  # every payload has one, and it is a string
    item["payload"] = {"S": json.dumps(payload)}


def _unknown_event_type(item: Item) -> None:
    item["event_type"] = {"S": "PaymentTeleported"}


def _missing_attribute(item: Item) -> None:
    del item["event_id"]


def _broken_chain_link(item: Item) -> None:
    # Decodes: the projections, not the handler, refuse it (ChainBrokenError in both).
    item["prev_hash"] = {"S": "f" * 64}


def _recorded_at_not_a_timestamp(item: Item) -> None:
    # Valid JSON, but no view could store it faithfully: ledger.decoding refuses it for all.
    item["recorded_at"] = {"S": "2026-11-30 10:00:00"}


def _score_or_text_unstorable(item: Item) -> None:
    payload = json.loads(item["payload"]["S"])
    if "score" in payload:
        payload["score"] = "high"
    else:
        payload["merchant_id"] = "m\u0000"
    item["payload"] = {"S": canonical_json(payload)}


@pytest.mark.parametrize(
    "poison",
    [
        _invalid_payload,
        _unknown_event_type,
        _missing_attribute,
        _broken_chain_link,
        _recorded_at_not_a_timestamp,
        _score_or_text_unstorable,
    ],
)
def test_a_poison_record_holds_only_its_payment_until_the_repaired_record_is_delivered(
    pipeline: Pipeline,
    direct: Callable[[Sequence[RecordedEvent]], Checksums],
    poison: Callable[[Item], None],
) -> None:
    ledger = pipeline.ledger
    events = ledger.events()
    streams = ledger.streams()
    stream_id = max(streams, key=lambda stream: len(streams[stream]))
    version = 3
    assert len(streams[stream_id]) >= version + 2  # later records of the payment exist
    poisoned = streams[stream_id][version - 1]
    image = ledger.image(poisoned)
    poison(image)
    shard = Shard()
    records = [
        insert_record(event, shard, new_image=image if event == poisoned else ledger.image(event))
        for event in events
    ]

    # One batch holding the whole history: every other payment is delivered with the poison.
    failed = pipeline.deliver(records)

    held = [
        sequence_number(record)
        for record, event in zip(records, events, strict=True)
        if event.stream_id == stream_id and event.version >= version
    ]
    assert failed == held
    applied = {**streams, stream_id: streams[stream_id][: version - 1]}
    kept = [event for event in events if event in applied[event.stream_id]]
    assert pipeline.checksums() == direct(kept)
    assert pipeline.state_items() == folded(applied)
    assert pipeline.state_items()[payment_id_of(stream_id)]["version"] == version - 1

    # Lambda redelivers from the lowest failed sequence number on; this time the image is sound.
    checkpoint = [sequence_number(record) for record in records].index(held[0])
    repaired = insert_record(poisoned, Shard(int(held[0])), new_image=ledger.image(poisoned))
    assert sequence_number(repaired) == held[0]
    redelivery = [repaired, *records[checkpoint + 1 :]]

    assert pipeline.deliver(redelivery) == []
    rest = [event for event in events if event not in kept]
    assert_fully_projected(pipeline, direct(rest))


def test_remove_records_are_ignored(
    pipeline: Pipeline, direct: Callable[[Sequence[RecordedEvent]], Checksums]
) -> None:
    ledger = pipeline.ledger
    events = ledger.events()
    rng = random.Random(5)
    shard = Shard()
    records = []
    expired: list[RecordedEvent] = []
    for event in events:
        records.append(insert_record(event, shard, new_image=ledger.image(event)))
        expired.append(event)
        if rng.random() < 0.3:  # a retention TTL deleting an item already streamed
            records.append(remove_record(expired.pop(rng.randrange(len(expired))), shard))
    assert sum(record["eventName"] == "REMOVE" for record in records) > BATCH_SIZE // 4

    for batch in chunks(records, BATCH_SIZE):
        assert pipeline.deliver(batch) == []
    expected = direct(events)
    assert_fully_projected(pipeline, expected)

    # The TTL deletes the rest of the history: nothing the read models hold changes.
    removals = [remove_record(event, shard) for event in expired]
    for batch in chunks(removals, BATCH_SIZE):
        assert pipeline.deliver(batch) == []
    assert_fully_projected(pipeline, expected)
