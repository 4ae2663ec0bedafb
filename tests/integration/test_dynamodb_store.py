"""``DynamoDBEventStore`` on moto's server: the shared contract, plus the item format and the exact
DynamoDB requests (counted with a botocore ``before-call`` hook on the real client)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ledger.codec import verify_chain
from ledger.domain.errors import ConcurrencyError, LedgerError, LimitExceededError
from ledger.dynamodb import DynamoDBEventStore, event_to_item, item_to_event
from ledger.store import EventStore
from tests.integration.store_contract import (
    AGENT,
    API_CLIENT,
    OPERATOR_WITH_VERSION_ONLY,
    EventStoreContract,
    chain,
    new_stream_id,
    next_event,
)

EVENT_ATTRIBUTES = {
    "pk",
    "sk",
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "actor",
    "correlation_id",
    "causation_id",
    "idempotency_key",
    "request_digest",
    "payload",
    "prev_hash",
    "hash",
}


class Calls(list[tuple[str, dict[str, Any]]]):
    """The DynamoDB calls a client makes, in order: (operation, request parameters)."""

    @property
    def operations(self) -> list[str]:
        return [operation for operation, _ in self]


def record_calls(client: Any) -> Calls:
    """Record every DynamoDB call ``client`` makes from now on (one ``before-call`` per request)."""
    calls = Calls()

    def before_call(**kwargs: Any) -> None:
        calls.append((kwargs["model"].name, json.loads(kwargs["params"]["body"])))

    client.meta.events.register("before-call.dynamodb.*", before_call)
    return calls


def stored_item(
    client: Any, table_name: str, stream_id: str, version: int
) -> dict[str, Any] | None:
    response = client.get_item(
        TableName=table_name,
        Key={"pk": {"S": stream_id}, "sk": {"N": str(version)}},
        ConsistentRead=True,
    )
    item: dict[str, Any] | None = response.get("Item")
    return item


class TestDynamoDBEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _table(self, dynamodb_client: Any, events_table: str) -> None:
        self.client = dynamodb_client
        self.table_name = events_table

    def make_store(self) -> EventStore:
        return DynamoDBEventStore(self.client, self.table_name)

    def test_items_on_the_table_have_the_contract_format(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        first = next_event(stream_id, None, actor=AGENT, causation_id=None)
        second = next_event(stream_id, first, actor=API_CLIENT, causation_id=first.event_id)
        store.append([first, second])

        item = stored_item(self.client, self.table_name, stream_id, 1)
        assert item is not None
        assert set(item) == EVENT_ATTRIBUTES - {"causation_id"}
        assert item == event_to_item(first)
        assert item["pk"] == {"S": stream_id}
        assert item["sk"] == {"N": "1"}
        assert item["schema_version"] == {"N": "1"}
        assert item["payload"] == {"S": first.payload}
        assert item["actor"] == {
            "M": {
                "kind": {"S": "agent"},
                "id": {"S": "fraud-agent-7"},
                "model": {"S": "risk-model"},
                "version": {"S": "2026.11"},
            }
        }
        assert item_to_event(item) == first

        item = stored_item(self.client, self.table_name, stream_id, 2)
        assert item is not None
        assert set(item) == EVENT_ATTRIBUTES
        assert item["causation_id"] == {"S": first.event_id}
        assert item["actor"] == {"M": {"kind": {"S": "api"}, "id": {"S": "merchant-key-42"}}}
        assert item_to_event(item) == second

    def test_one_event_is_one_put_item_and_a_load_is_one_query(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        calls = record_calls(self.client)
        [event] = chain(stream_id, 1)
        store.append([event])
        assert calls.operations == ["PutItem"]
        put = calls[0][1]
        assert put["Item"] == event_to_item(event)
        assert put["ConditionExpression"] == "attribute_not_exists(pk)"
        assert put["ReturnValuesOnConditionCheckFailure"] == "NONE"
        assert store.load(stream_id, version_max=1) == [event]
        assert calls.operations == ["PutItem", "Query"]
        query = calls[1][1]
        assert query["ConsistentRead"] is True
        assert query["KeyConditionExpression"] == "pk = :pk AND sk <= :version_max"
        assert query["ExpressionAttributeValues"][":version_max"] == {"N": "1"}

    def test_several_events_are_one_transact_write_items(self, store: EventStore) -> None:
        calls = record_calls(self.client)
        events = chain(new_stream_id(), 3)
        store.append(events)
        assert calls.operations == ["TransactWriteItems"]
        puts = [item["Put"] for item in calls[0][1]["TransactItems"]]
        assert [put["Item"] for put in puts] == [event_to_item(event) for event in events]
        assert {put["ConditionExpression"] for put in puts} == {"attribute_not_exists(pk)"}
        assert {put["TableName"] for put in puts} == {self.table_name}

    def test_conflicts_are_chained_to_the_dynamodb_error(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        events = chain(stream_id, 2)
        store.append(events)
        calls = record_calls(self.client)
        with pytest.raises(ConcurrencyError) as single:
            store.append(chain(stream_id, 1, writer="late"))
        with pytest.raises(ConcurrencyError) as several:
            store.append(chain(stream_id, 2, writer="late"))
        assert calls.operations == ["PutItem", "TransactWriteItems"]
        assert isinstance(single.value.__cause__, ClientError)
        assert single.value.__cause__.response["Error"]["Code"] == "ConditionalCheckFailedException"
        assert isinstance(several.value.__cause__, ClientError)
        assert several.value.__cause__.response["Error"]["Code"] == "TransactionCanceledException"

    def test_batch_whose_second_item_conflicts_writes_nothing(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        base = chain(stream_id, 1)
        store.append(base)
        batch = chain(stream_id, 2, after=base, writer="loser")  # versions 2 and 3
        # Another writer's version 3 is already stored (planted directly: the port makes no gaps).
        planted = event_to_item(chain(stream_id, 2, after=base, writer="other")[1])
        self.client.put_item(TableName=self.table_name, Item=planted)
        with pytest.raises(ConcurrencyError) as conflict:
            store.append(batch)
        reasons = conflict.value.__cause__.response["CancellationReasons"]  # type: ignore[union-attr]
        assert [reason["Code"] for reason in reasons] == ["None", "ConditionalCheckFailed"]
        assert stored_item(self.client, self.table_name, stream_id, 2) is None
        assert stored_item(self.client, self.table_name, stream_id, 3) == planted

    def test_load_follows_pages_past_one_megabyte(self, store: EventStore) -> None:
        stream_id = new_stream_id()
        head = None
        events = []
        for _ in range(40):  # 40 × ~30 KB: DynamoDB (and moto) cut a Query page at 1 MB
            head = next_event(stream_id, head, payload={"note": "x" * 30_000})
            events.append(head)
        store.append(events)
        calls = record_calls(self.client)
        loaded = store.load(stream_id)
        assert calls.operations == ["Query", "Query"]
        assert "ExclusiveStartKey" in calls[1][1]
        assert loaded == events
        verify_chain(loaded)
        with pytest.raises(LimitExceededError):
            store.load(stream_id, limit=39)

    def test_a_missing_table_is_a_configuration_error_not_a_ledger_error(
        self, dynamodb_client: Any
    ) -> None:
        store = DynamoDBEventStore(dynamodb_client, "no-such-table")
        for operation in (
            lambda: store.load(new_stream_id()),
            lambda: store.append(chain(new_stream_id(), 1)),
            lambda: store.append(chain(new_stream_id(), 2)),
        ):
            with pytest.raises(ClientError) as error:
                operation()
            assert not isinstance(error.value, LedgerError)
            assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
            assert "'no-such-table' does not exist" in " ".join(error.value.__notes__)


@pytest.mark.parametrize(
    ("actor", "causation_id"),
    [(AGENT, None), (API_CLIENT, "cause-1"), (OPERATOR_WITH_VERSION_ONLY, "")],
)
def test_item_round_trip(actor: Any, causation_id: str | None) -> None:
    event = next_event(new_stream_id(), None, actor=actor, causation_id=causation_id)
    item = event_to_item(event)
    assert item_to_event(item) == event
    assert set(item) == EVENT_ATTRIBUTES - ({"causation_id"} if causation_id is None else set())
    assert set(item["actor"]["M"]) == set(actor.to_dict())
    assert all(set(value) == {"S"} for value in item["actor"]["M"].values())
    scalar_types = {name: next(iter(value)) for name, value in item.items() if name != "actor"}
    assert scalar_types == {
        name: "N" if name in {"sk", "schema_version"} else "S"
        for name in EVENT_ATTRIBUTES - {"actor"}
        if name in item
    }
