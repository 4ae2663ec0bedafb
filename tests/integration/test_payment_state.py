"""The payment-state read model (projections/payment_state.py and its reader) on the moto server.

Tables come from template.yaml. Write requests are counted with a botocore event hook on the
client the projection uses, so "one PutItem per payment per batch" is measured, not assumed.
"""

from __future__ import annotations

import contextlib
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from itertools import count
from typing import Any

import boto3
import hypothesis
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.template import create_table
from ledger.domain.errors import LedgerError, ValidationError
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    Command,
    ExpirePayment,
    FailPayment,
    InitiatePayment,
    RefundPayment,
    SettlePayment,
    VoidPayment,
)
from ledger.dynamodb import BATCH_GET_ITEM_KEYS_MAX, BATCH_GET_RETRIES_MAX, DynamoDBEventStore
from ledger.envelope import RecordedEvent, payment_stream_id
from ledger.memory import MemoryEventStore
from ledger.service import CommandContext, PaymentService, fold
from ledger.store import EventStore
from projections import payment_state_reader
from projections.payment_state import PaymentStateProjection
from projections.payment_state_reader import (
    MERCHANT_INDEX,
    MerchantPaymentsPage,
    MerchantPosition,
    PaymentStateReader,
)
from tests.stream_events import Shard, insert_event, insert_record, stream_event
from tests.unit.conftest import AGENT, FakeClock

with pytest.MonkeyPatch.context() as _patch:
    _patch.setenv("EVENTS_TABLE", "payledger-integration-tests-never-called")
    _patch.setenv("PAYMENT_STATE_TABLE", "payledger-integration-tests-never-called")
    from handlers import project


class Calls:
    """DynamoDB requests a client sends, by operation (counted before each is sent)."""

    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.counts[model.name] += 1

    def take(self) -> dict[str, int]:
        """Counts since the last ``take``."""
        with self._lock:
            counts = dict(self.counts)
            self.counts.clear()
        return counts


@pytest.fixture
def state_table(dynamodb_client: Any) -> str:
    name = f"payment-state-{uuid.uuid4().hex[:12]}"
    create_table(dynamodb_client, "PaymentStateTable", name)
    return name


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(dynamodb_client: Any, events_table: str) -> DynamoDBEventStore:
    return DynamoDBEventStore(dynamodb_client, events_table)


@pytest.fixture
def service(store: DynamoDBEventStore, clock: FakeClock) -> PaymentService:
    return PaymentService(store, clock=clock, sleep=lambda _: None)


@pytest.fixture
def calls(dynamodb_client: Any) -> Calls:
    return Calls(dynamodb_client)


def projection_on(client: Any, table: str, events: EventStore) -> PaymentStateProjection:
    return PaymentStateProjection(client, table, events, sleep=lambda _: None)


@pytest.fixture
def reader(dynamodb_client: Any, state_table: str) -> PaymentStateReader:
    return PaymentStateReader(dynamodb_client, state_table)


@pytest.fixture
def projection(
    dynamodb_client: Any, state_table: str, store: DynamoDBEventStore
) -> PaymentStateProjection:
    return projection_on(dynamodb_client, state_table, store)


# Idempotency keys from a counter: a random hex key can hold a digit run that passes Luhn.
_KEYS = count(1)


def run(service: PaymentService, clock: FakeClock, commands: Sequence[Command]) -> None:
    for command in commands:
        clock.advance(timedelta(seconds=1))
        key = f"key-{next(_KEYS)}"
        service.execute(command, CommandContext(idempotency_key=key, actor=AGENT))


def lifecycle(
    service: PaymentService, clock: FakeClock, payment_id: str, merchant_id: str = "m-1"
) -> list[RecordedEvent]:
    """Seven events: initiated, approved, authorized, captured ×2, hold released, settled."""
    run(
        service,
        clock,
        [
            InitiatePayment(payment_id, "10.00", "EUR", merchant_id, "c-1", description="tea"),
            AssessRisk(payment_id, "approve", "0.12", "low risk"),
            AuthorizePayment(payment_id),
            CapturePayment(payment_id, "4.00"),
            CapturePayment(payment_id, "5.00", final=True),
            SettlePayment(payment_id),
        ],
    )
    return service.load(payment_id)


def interleave(streams: Sequence[Sequence[RecordedEvent]], seed: int) -> list[RecordedEvent]:
    """A random merge keeping each stream's order: how concurrent payments reach a shard."""
    rng = random.Random(seed)
    cursors = [list(stream) for stream in streams]
    merged: list[RecordedEvent] = []
    while any(cursors):
        merged.append(rng.choice([cursor for cursor in cursors if cursor]).pop(0))
    return merged


def table_items(client: Any, table: str) -> dict[str, Any]:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return {item["payment_id"]["S"]: item for item in items}


def expected(events: Sequence[RecordedEvent]) -> dict[str, Any]:
    snapshot = fold(events)
    assert snapshot is not None
    return snapshot.to_dict()


# ── The read model is the fold, written once per payment per batch ───────────────────────────


def test_each_payment_is_its_fold_and_redelivery_writes_nothing(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    calls: Calls,
    dynamodb_client: Any,
    state_table: str,
) -> None:
    histories = {pid: lifecycle(service, clock, pid) for pid in ("p-1", "p-2", "p-3")}
    batch = interleave(list(histories.values()), seed=1)
    calls.take()

    first = projection.apply(batch)

    assert (first.applied, first.duplicates, first.failures) == (len(batch), 0, {})
    assert calls.take() == {"BatchGetItem": 1, "PutItem": 3}
    for payment_id, events in histories.items():
        assert reader.read_payment(payment_id) == expected(events)
    items = table_items(dynamodb_client, state_table)
    calls.take()

    again = projection.apply(batch)

    assert (again.applied, again.duplicates, again.failures) == (0, len(batch), {})
    assert calls.take() == {"BatchGetItem": 1}
    assert table_items(dynamodb_client, state_table) == items


def test_one_put_per_payment_and_one_read_per_hundred_payments(
    dynamodb_client: Any, state_table: str, calls: Calls
) -> None:
    clock = FakeClock()
    memory = MemoryEventStore()
    service = PaymentService(memory, clock=clock, sleep=lambda _: None)
    payments = 150
    for index in range(payments):
        run(
            service,
            clock,
            [
                InitiatePayment(f"p-{index}", "1.00", "EUR", "m-1", "c-1"),
                AssessRisk(f"p-{index}", "approve", "0.1", "ok"),
            ],
        )
    batch = interleave([service.load(f"p-{index}") for index in range(payments)], seed=2)
    projection = projection_on(dynamodb_client, state_table, memory)
    calls.take()

    result = projection.apply(batch)

    assert (result.applied, result.failures) == (2 * payments, {})
    reads = -(-payments // BATCH_GET_ITEM_KEYS_MAX)
    assert calls.take() == {"BatchGetItem": reads, "PutItem": payments}


def test_split_interleaved_and_duplicated_batches_give_the_same_items(
    service: PaymentService,
    clock: FakeClock,
    dynamodb_client: Any,
    store: DynamoDBEventStore,
) -> None:
    histories = [lifecycle(service, clock, f"p-{index}") for index in range(4)]
    clean_table = f"payment-state-{uuid.uuid4().hex[:12]}"
    create_table(dynamodb_client, "PaymentStateTable", clean_table)
    projection_on(dynamodb_client, clean_table, store).apply(interleave(histories, seed=0))
    clean = table_items(dynamodb_client, clean_table)

    for seed in range(1, 6):
        rng = random.Random(seed)
        table = f"payment-state-{uuid.uuid4().hex[:12]}"
        create_table(dynamodb_client, "PaymentStateTable", table)
        projection = projection_on(dynamodb_client, table, store)
        records = interleave(histories, seed=seed)
        position = 0
        while position < len(records):
            end = min(len(records), position + rng.randint(1, 8))
            result = projection.apply(records[position:end])  # a delivery
            assert result.failures == {}
            if rng.random() < 0.4:  # a retry from an earlier checkpoint (bisect, redelivery)
                assert projection.apply(records[rng.randint(0, position) : end]).failures == {}
            position = end

        assert table_items(dynamodb_client, table) == clean, seed


# ── Gaps, chain links and poison ─────────────────────────────────────────────────────────────


def test_a_gap_is_filled_from_the_events_table_with_one_query(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    calls: Calls,
) -> None:
    events = lifecycle(service, clock, "p-1")
    projection.apply(events[:2])
    calls.take()

    result = projection.apply(events[4:])  # versions 3 and 4 were dead-lettered

    assert (result.applied, result.failures) == (3, {})
    assert calls.take() == {"BatchGetItem": 1, "Query": 1, "PutItem": 1}
    assert reader.read_payment("p-1") == expected(events)


def test_a_new_read_model_starts_from_any_version(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
) -> None:
    """E.g. deployed after the stream's 24-hour retention: history comes from the events table."""
    events = lifecycle(service, clock, "p-1")

    result = projection.apply(events[5:])

    assert (result.applied, result.failures) == (2, {})
    assert reader.read_payment("p-1") == expected(events)


def test_a_gap_the_events_table_cannot_fill_fails_only_that_stream(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    dynamodb_client: Any,
    state_table: str,
    calls: Calls,
) -> None:
    first, second = lifecycle(service, clock, "p-1"), lifecycle(service, clock, "p-2")
    projection = projection_on(dynamodb_client, state_table, MemoryEventStore())  # empty
    calls.take()

    result = projection.apply([*first[2:4], *second])

    [failure] = result.failures.values()
    assert (failure.stream_id, failure.version) == (payment_stream_id("p-1"), 3)
    assert "gap" in failure.reason
    assert reader.read_payment("p-1") is None
    assert reader.read_payment("p-2") == expected(second)
    assert calls.take()["PutItem"] == 1


def test_a_broken_chain_link_fails_the_stream_and_keeps_what_came_before(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
) -> None:
    events = lifecycle(service, clock, "p-1")
    forged = replace(events[2], prev_hash="f" * 64)

    result = projection.apply([*events[:2], forged, *events[3:]])

    assert result.failures[payment_stream_id("p-1")].version == 3
    assert "ChainBrokenError" in result.failures[payment_stream_id("p-1")].reason
    assert reader.read_payment("p-1") == expected(events[:2])


def test_an_undecodable_payload_fails_the_stream_and_keeps_what_came_before(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
) -> None:
    events = lifecycle(service, clock, "p-1")
    poison = replace(events[3], event_type="PaymentTeleported")

    result = projection.apply([*events[:3], poison, *events[4:]])

    assert result.failures[payment_stream_id("p-1")].version == 4
    assert reader.read_payment("p-1") == expected(events[:3])


def test_an_item_already_past_the_batch_is_a_duplicate_not_an_error(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    moto_endpoint: str,
    dynamodb_client: Any,
    state_table: str,
    store: DynamoDBEventStore,
) -> None:
    """A rebuild (or a second consumer) writes version 7 between our read and our write."""
    events = lifecycle(service, clock, "p-1")
    other_client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    other = projection_on(other_client, state_table, store)
    raced: list[bool] = []

    def race(**_: Any) -> None:
        if not raced:
            raced.append(True)
            assert other.apply(events).applied == len(events)

    dynamodb_client.meta.events.register("before-call.dynamodb.PutItem", race)

    result = projection.apply(events[:3])

    assert (result.applied, result.duplicates, result.failures) == (0, 3, {})
    assert reader.read_payment("p-1") == expected(events)


def test_a_write_dynamodb_refuses_fails_only_that_stream(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    dynamodb_client: Any,
) -> None:
    first, second = lifecycle(service, clock, "p-1"), lifecycle(service, clock, "p-2")

    def throttle(params: dict[str, Any], **_: Any) -> None:
        if params["Item"]["payment_id"]["S"] == "p-1":
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}
            raise ClientError({"Error": error}, "PutItem")

    dynamodb_client.meta.events.register("before-parameter-build.dynamodb.PutItem", throttle)

    result = projection.apply(interleave([first, second], seed=4))

    assert list(result.failures) == [payment_stream_id("p-1")]
    assert result.failures[payment_stream_id("p-1")].version == 1
    assert result.applied == len(second)
    assert reader.read_payment("p-1") is None
    assert reader.read_payment("p-2") == expected(second)


def test_unprocessed_keys_are_read_again(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    dynamodb_client: Any,
    state_table: str,
    calls: Calls,
) -> None:
    events = lifecycle(service, clock, "p-1")
    projection.apply(events[:2])
    starve = _starve_batch_get(dynamodb_client, state_table, times=1)
    calls.take()

    result = projection.apply(events[2:])

    assert (result.applied, result.failures, starve()) == (len(events) - 2, {}, 0)
    assert calls.take() == {"BatchGetItem": 2, "PutItem": 1}  # no Query: the item was read
    assert reader.read_payment("p-1") == expected(events)


def test_keys_left_unprocessed_every_time_fail_their_streams(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    dynamodb_client: Any,
    state_table: str,
) -> None:
    events = lifecycle(service, clock, "p-1")
    projection.apply(events[:2])
    _starve_batch_get(dynamodb_client, state_table, times=BATCH_GET_RETRIES_MAX + 1)

    result = projection.apply(events[2:])

    assert result.failures[payment_stream_id("p-1")].version == 3
    assert reader.read_payment("p-1") == expected(events[:2])


def _starve_batch_get(client: Any, table: str, *, times: int) -> Callable[[], int]:
    """Make the next ``times`` BatchGetItem responses return their items as unprocessed keys,
    as DynamoDB does under throttling; returns how many starvations are left."""
    left = [times]

    def starve(parsed: dict[str, Any], **_: Any) -> None:
        items = parsed["Responses"].get(table, [])
        if left[0] and items:
            left[0] -= 1
            keys = [{"payment_id": item["payment_id"]} for item in items]
            parsed["Responses"][table] = []
            parsed["UnprocessedKeys"] = {table: {"Keys": keys, "ConsistentRead": True}}

    client.meta.events.register("after-call.dynamodb.BatchGetItem", starve)
    return lambda: left[0]


# ── Queries for the API ──────────────────────────────────────────────────────────────────────


def _ids(page: MerchantPaymentsPage) -> list[str]:
    return [payment["payment_id"] for payment in page.payments]


def _project_payments(
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    payments: Sequence[tuple[str, str]],
) -> None:
    """Initiate each (payment id, merchant id) one second apart and project them."""
    for payment_id, merchant_id in payments:
        run(service, clock, [InitiatePayment(payment_id, "1.00", "EUR", merchant_id, "c-1")])
    projection.apply([event for pid, _ in payments for event in service.load(pid)])


def test_the_merchant_index_lists_a_merchants_payments_newest_first(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    dynamodb_client: Any,
    state_table: str,
) -> None:
    _project_payments(
        service, clock, projection, [("p-1", "m-1"), ("p-2", "m-1"), ("x-1", "m-2"), ("p-3", "m-1")]
    )
    run(service, clock, [AssessRisk("p-1", "approve", "0.1", "ok")])  # p-1 updated last
    projection.apply(service.load("p-1"))
    index = dynamodb_client.describe_table(TableName=state_table)["Table"]
    [gsi] = index["GlobalSecondaryIndexes"]
    assert (gsi["IndexName"], [key["AttributeName"] for key in gsi["KeySchema"]]) == (
        MERCHANT_INDEX,
        ["merchant_id", "updated_at"],
    )

    listed = reader.list_merchant_payments("m-1", limit=10)
    assert (_ids(listed), listed.next_position) == (["p-1", "p-3", "p-2"], None)
    assert listed.payments[0] == expected(service.load("p-1"))
    first = reader.list_merchant_payments("m-1", 2)
    assert _ids(first) == ["p-1", "p-3"]
    p3 = listed.payments[1]
    assert first.next_position == MerchantPosition(p3["updated_at"], "p-3")
    rest = reader.list_merchant_payments("m-1", 2, after=first.next_position)
    assert (_ids(rest), rest.next_position) == (["p-2"], None)
    assert reader.list_merchant_payments("m-3", 10) == MerchantPaymentsPage([], None)
    with pytest.raises(ValidationError):
        reader.list_merchant_payments("not an id", 10)


def test_a_last_page_of_exactly_limit_payments_has_no_next_position(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    calls: Calls,
) -> None:
    _project_payments(service, clock, projection, [(f"p-{n}", "m-1") for n in range(4)])
    calls.take()
    first = reader.list_merchant_payments("m-1", 2)
    assert (_ids(first), calls.take()) == (["p-3", "p-2"], {"Query": 1})
    last = reader.list_merchant_payments("m-1", 2, after=first.next_position)
    assert (_ids(last), last.next_position, calls.take()) == (["p-1", "p-0"], None, {"Query": 1})


def test_a_status_filter_fills_pages_across_query_pages(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    calls: Calls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DynamoDB counts ``Limit`` before the filter: a page keeps querying until it has enough
    matches, cuts at the last payment it returns, and resumes right after it."""
    monkeypatch.setattr(payment_state_reader, "MERCHANT_FILTERED_QUERY_ITEMS", 3)
    payments = [(f"p-{n:02}", "m-1") for n in range(12)]
    _project_payments(service, clock, projection, payments)
    approved = ["p-01", "p-04", "p-05", "p-09", "p-10"]
    for payment_id in approved:
        run(service, clock, [AssessRisk(payment_id, "approve", "0.1", "ok")])
        projection.apply(service.load(payment_id))
    newest_first = approved[::-1]
    calls.take()

    first = reader.list_merchant_payments("m-1", 2, status="approved")
    assert _ids(first) == newest_first[:2]
    assert calls.take() == {"Query": 1}  # 3 evaluated, 3 matched: two kept, one looked ahead
    second = reader.list_merchant_payments("m-1", 2, status="approved", after=first.next_position)
    assert _ids(second) == newest_first[2:4]
    third = reader.list_merchant_payments("m-1", 2, status="approved", after=second.next_position)
    assert (_ids(third), third.next_position) == (newest_first[4:], None)
    calls.take()
    initiated = reader.list_merchant_payments("m-1", 7, status="initiated")
    assert _ids(initiated) == [
        payment_id for payment_id, _ in reversed(payments) if payment_id not in approved
    ]
    assert (initiated.next_position, calls.take()) == (None, {"Query": 4})


def test_a_filtered_page_stops_after_its_query_pages_with_a_position(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
    calls: Calls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(payment_state_reader, "MERCHANT_FILTERED_QUERY_ITEMS", 2)
    _project_payments(service, clock, projection, [("p-00", "m-1")])
    run(service, clock, [AssessRisk("p-00", "decline", "0.9", "fraud")])
    projection.apply(service.load("p-00"))
    # Twelve newer payments: the pages' Query pages evaluate ten of them and match none.
    _project_payments(service, clock, projection, [(f"p-{n:02}", "m-1") for n in range(1, 13)])
    calls.take()

    page = reader.list_merchant_payments("m-1", 5, status="declined")
    assert calls.take() == {"Query": payment_state_reader.MERCHANT_QUERY_PAGES_MAX}
    assert _ids(page) == []
    assert page.next_position is not None  # not the end: the next page resumes after the ten
    rest = reader.list_merchant_payments("m-1", 5, status="declined", after=page.next_position)
    assert (_ids(rest), rest.next_position, calls.take()) == (["p-00"], None, {"Query": 2})


def test_reading_a_payment_not_projected_yet_or_malformed(reader: PaymentStateReader) -> None:
    assert reader.read_payment("p-unknown") is None
    with pytest.raises(ValidationError):
        reader.read_payment("not an id")


# ── Property: projection == fold, however the stream delivers ────────────────────────────────

_ACTIONS = (
    "approve",
    "review",
    "decline",
    "authorize",
    "fail",
    "capture",
    "capture_final",
    "void",
    "expire",
    "settle",
    "refund",
)


def _command(action: str, payment_id: str, cents: int, clock: FakeClock) -> Command:
    amount = f"{cents // 100}.{cents % 100:02d}"
    commands: dict[str, Callable[[], Command]] = {
        "approve": lambda: AssessRisk(payment_id, "approve", "0.2", "ok"),
        "review": lambda: AssessRisk(payment_id, "review", "0.5", "unsure"),
        "decline": lambda: AssessRisk(payment_id, "decline", "0.9", "fraud"),
        "authorize": lambda: AuthorizePayment(payment_id, processor="acme"),
        "fail": lambda: FailPayment(payment_id, "card declined"),
        "capture": lambda: CapturePayment(payment_id, amount),
        "capture_final": lambda: CapturePayment(payment_id, amount, final=True),
        "void": lambda: VoidPayment(payment_id, "customer cancelled"),
        "expire": lambda: ExpirePayment(payment_id),
        "settle": lambda: SettlePayment(payment_id),
        "refund": lambda: RefundPayment(payment_id, amount),
    }
    if action == "expire":
        clock.advance(timedelta(days=8))
    return commands[action]()


@st.composite
def _plans(draw: st.DrawFn) -> list[tuple[str, int]]:
    """Mostly plausible lifecycles (so every status is reached) with a few random commands
    mixed in, which the rules may refuse."""
    amounts = st.integers(min_value=1, max_value=800)
    risk = draw(st.sampled_from(["approve", "approve", "review approve", "review decline"]))
    plan = [(action, 0) for action in risk.split()]
    plan.append((draw(st.sampled_from(["authorize", "authorize", "authorize", "fail"])), 0))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        plan.append((draw(st.sampled_from(["capture", "capture", "capture_final"])), draw(amounts)))
    ending = draw(st.sampled_from(["void", "expire", "settle", "settle", "none"]))
    if ending != "none":
        plan.append((ending, 0))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        plan.append(("refund", draw(amounts)))
    if ending != "settle" and draw(st.booleans()):
        plan.append(("settle", 0))
    for action in draw(st.lists(st.tuples(st.sampled_from(_ACTIONS), amounts), max_size=3)):
        plan.insert(draw(st.integers(min_value=0, max_value=len(plan))), action)
    return plan


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    actions=_plans(),
    amount_cents=st.integers(min_value=500, max_value=3_000),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_the_read_model_equals_the_fold_of_random_histories(
    reader: PaymentStateReader,
    dynamodb_client: Any,
    state_table: str,
    actions: list[tuple[str, int]],
    amount_cents: int,
    seed: int,
) -> None:
    clock = FakeClock()
    memory = MemoryEventStore()
    service = PaymentService(memory, clock=clock, sleep=lambda _: None)
    payment_id = f"p-{uuid.uuid4().hex[:12]}"  # 12 characters: never 13 digits, never a PAN
    amount = f"{amount_cents // 100}.{amount_cents % 100:02d}"
    run(service, clock, [InitiatePayment(payment_id, amount, "EUR", "m-1", "c-1")])
    for action, cents in actions:
        # A command the rules refuse adds no event: the history stays valid.
        with contextlib.suppress(LedgerError):
            run(service, clock, [_command(action, payment_id, cents, clock)])
    events = service.load(payment_id)
    final = fold(events)
    assert final is not None
    hypothesis.event(f"status {final.state.status}, {len(events) // 4 * 4}+ events")
    projection = projection_on(dynamodb_client, state_table, memory)
    rng = random.Random(seed)
    position = 0
    while position < len(events):
        start = rng.randint(0, position)  # redeliver from an earlier checkpoint, or skip ahead
        end = min(len(events), position + rng.randint(1, 4))
        if rng.random() < 0.2:
            start = end - 1  # a gap: the events table fills it
        assert projection.apply(events[start:end]).failures == {}
        position = end

    assert reader.read_payment(payment_id) == expected(events)


# ── Through the Lambda handler ───────────────────────────────────────────────────────────────


def test_the_handler_projects_a_stream_batch_and_holds_only_the_poisoned_stream(
    reader: PaymentStateReader,
    service: PaymentService,
    clock: FakeClock,
    projection: PaymentStateProjection,
) -> None:
    good, bad = lifecycle(service, clock, "p-good"), lifecycle(service, clock, "p-bad")
    shard = Shard()
    records = []
    for event in interleave([good, bad], seed=3):
        if (event.stream_id, event.version) == (payment_stream_id("p-bad"), 4):
            event = replace(event, event_type="PaymentTeleported")
        records.append(insert_record(event, shard))

    response = project.process(stream_event(records), [projection])

    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    assert len(failed) == len(bad) - 3
    assert reader.read_payment("p-good") == expected(good)
    assert reader.read_payment("p-bad") == expected(bad[:3])

    redelivered = project.process(insert_event(bad[3:]), [projection])  # the writer's real events

    assert redelivered == {"batchItemFailures": []}
    assert reader.read_payment("p-bad") == expected(bad)
