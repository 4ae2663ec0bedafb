"""The API Lambda handler on ``DynamoDBEventStore``, on moto's server (table from template.yaml)."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.codec import event_document, verify_chain
from ledger.dynamodb import DynamoDBEventStore
from ledger.envelope import payment_stream_id
from ledger.service import PaymentService
from tests.unit.test_api import Client, Reply, use_payment_states, use_service


@pytest.fixture
def store(dynamodb_client: Any, events_table: str) -> DynamoDBEventStore:
    return DynamoDBEventStore(dynamodb_client, events_table)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, store: DynamoDBEventStore) -> Client:
    use_service(monkeypatch, PaymentService(store))
    return Client()


def items_with_key(dynamodb_client: Any, table: str, idempotency_key: str) -> list[dict[str, Any]]:
    pages = dynamodb_client.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="idempotency_key = :key",
        ExpressionAttributeValues={":key": {"S": idempotency_key}},
        ConsistentRead=True,
    )
    return [item for page in pages for item in page["Items"]]


def test_a_payment_flow_through_the_handler(client: Client, store: DynamoDBEventStore) -> None:
    created = client.initiate("pay-ddb-1", metadata={"order": "o-1"})
    assert created.status == 201
    assert (
        client.post(
            "/payments/pay-ddb-1/risk-assessments",
            {"decision": "approve", "score": "0.05", "reason": "known customer"},
            headers={"X-Actor": "agent:fraud-screener", "X-Actor-Model": "gbm"},
        ).status
        == 201
    )
    assert client.post("/payments/pay-ddb-1/authorization", {"processor": "acme"}).status == 201
    # One capture with "final" writes two events in one TransactWriteItems.
    final = client.post("/payments/pay-ddb-1/captures", {"amount": "7.50", "final": True})
    assert [event["event_type"] for event in final.body["events"]] == [
        "PaymentCaptured",
        "PaymentHoldReleased",
    ]
    settled = client.post("/payments/pay-ddb-1/settlement")
    assert settled.body["payment"]["status"] == "settled"

    expected = {"payment": settled.body["payment"], "source": "events"}
    assert client.get("/payments/pay-ddb-1").body == expected
    assert (
        client.get("/payments/pay-ddb-1", {"version": "1"}).body["payment"]["status"] == "initiated"
    )
    history = client.get("/payments/pay-ddb-1/events").body["events"]
    stored = store.load(payment_stream_id("pay-ddb-1"))
    assert history == [event_document(event) for event in stored]
    assert [event["event_type"] for event in history] == [
        "PaymentInitiated",
        "RiskAssessed",
        "PaymentAuthorized",
        "PaymentCaptured",
        "PaymentHoldReleased",
        "PaymentSettled",
    ]
    assert history[1]["actor"] == {"kind": "agent", "id": "fraud-screener", "model": "gbm"}
    verify_chain(stored)


def test_a_retried_post_stores_exactly_one_event(
    client: Client, dynamodb_client: Any, events_table: str
) -> None:
    client.approved("pay-ddb-2")
    body = {"hold_until": "2099-01-01T00:00:00Z"}  # past the 31-day maximum: refused, no event
    assert client.post("/payments/pay-ddb-2/authorization", body).error_code == "validation_error"

    replies: list[Reply] = [
        client.post("/payments/pay-ddb-2/authorization", {"processor": "acme"}, key="auth-1")
        for _ in range(3)
    ]
    assert [reply.status for reply in replies] == [201, 200, 200]
    assert replies[1].body == replies[2].body == replies[0].body
    assert replies[1].headers["idempotent-replayed"] == "true"
    (item,) = items_with_key(dynamodb_client, events_table, "auth-1")
    assert item["event_type"] == {"S": "PaymentAuthorized"}

    create = {
        "payment_id": "pay-ddb-3",
        "amount": "100",
        "currency": "JPY",
        "merchant_id": "m",
        "customer_id": "c",
    }
    first = client.post("/payments", create, key="create-3")
    again = client.post("/payments", create, key="create-3")
    assert (first.status, again.status) == (201, 200)
    assert len(items_with_key(dynamodb_client, events_table, "create-3")) == 1
    conflicting = client.post("/payments", {**create, "amount": "200"}, key="create-3")
    assert conflicting.error_code == "idempotency_conflict"
    assert len(items_with_key(dynamodb_client, events_table, "create-3")) == 1


def test_reads_and_their_errors(client: Client) -> None:
    created = client.initiate("pay-ddb-4")
    assert client.get("/payments/nobody").error_code == "not_found"
    assert client.get("/payments/nobody/events").error_code == "not_found"
    at_head = client.get("/payments/pay-ddb-4", {"version": "1"})
    assert at_head.body == {"payment": created.body["payment"], "source": "events"}
    beyond_head = client.get("/payments/pay-ddb-4", {"version": "50"})
    assert beyond_head.status == 404
    assert beyond_head.body["error"] == {
        "code": "not_found",
        "message": "payment pay-ddb-4 has no version 50 (its last is 1)",
    }
    before = client.get("/payments/pay-ddb-4", {"as_of": "2000-01-01T00:00:00Z"})
    assert before.error_code == "not_found"
    assert client.post("/payments/pay-ddb-4/expiry").error_code == "invalid_transition"


def test_current_payment_comes_from_the_read_model_unless_it_lags(
    monkeypatch: pytest.MonkeyPatch, client: Client, store: DynamoDBEventStore, dynamodb_client: Any
) -> None:
    from devstack.template import create_table
    from projections.payment_state import PaymentStateProjection
    from projections.payment_state_reader import PaymentStateReader

    create_table(dynamodb_client, "PaymentStateTable", "payment-state-api")
    states = PaymentStateProjection(dynamodb_client, "payment-state-api", store)
    use_payment_states(monkeypatch, PaymentStateReader(dynamodb_client, "payment-state-api"))

    created = client.initiate("pay-rm-1")
    not_projected = client.get("/payments/pay-rm-1")
    assert not_projected.body["source"] == "events"

    states.apply(store.load(payment_stream_id("pay-rm-1")))
    projected = client.get("/payments/pay-rm-1")
    assert projected.body == {"payment": created.body["payment"], "source": "read_model"}

    approved = client.post(
        "/payments/pay-rm-1/risk-assessments",
        {"decision": "approve", "score": "0.1", "reason": "ok"},
    )
    lagging = client.get("/payments/pay-rm-1")
    assert lagging.body["payment"]["version"] == 1  # the read model has not seen version 2 yet
    fresh = client.get("/payments/pay-rm-1", {"min_version": "2"})
    assert fresh.body == {"payment": approved.body["payment"], "source": "events"}
    folded = client.get("/payments/pay-rm-1", {"consistent": "true"})
    assert folded.body["source"] == "events"
    assert client.get("/payments/nope").status == 404


def test_listing_pages_through_the_merchant_index(
    monkeypatch: pytest.MonkeyPatch, client: Client, store: DynamoDBEventStore, dynamodb_client: Any
) -> None:
    from devstack.template import create_table
    from projections.payment_state import PaymentStateProjection
    from projections.payment_state_reader import PaymentStateReader

    create_table(dynamodb_client, "PaymentStateTable", "payment-state-listing")
    states = PaymentStateProjection(dynamodb_client, "payment-state-listing", store)
    use_payment_states(monkeypatch, PaymentStateReader(dynamodb_client, "payment-state-listing"))
    for index in range(3):
        client.initiate(f"pay-list-{index}")
    client.post(
        "/payments/pay-list-1/risk-assessments",
        {"decision": "decline", "score": "0.9", "reason": "fraud"},
    )
    for index in range(3):
        states.apply(store.load(payment_stream_id(f"pay-list-{index}")))

    def ids(reply: Reply) -> list[str]:
        assert reply.status == 200, reply.body
        return [payment["payment_id"] for payment in reply.body["payments"]]

    first = client.get("/merchants/m-1/payments", {"limit": "2"})
    assert ids(first) == ["pay-list-1", "pay-list-2"]
    rest = client.get(
        "/merchants/m-1/payments", {"limit": "2", "cursor": first.body["next_cursor"]}
    )
    assert (ids(rest), rest.body["next_cursor"]) == (["pay-list-0"], None)
    declined = client.get("/merchants/m-1/payments", {"status": "declined", "limit": "1"})
    assert (ids(declined), declined.body["next_cursor"]) == (["pay-list-1"], None)
    assert declined.body["payments"][0] == client.get("/payments/pay-list-1").body["payment"]
    elsewhere = client.get("/merchants/m-2/payments", {"cursor": first.body["next_cursor"]})
    assert (elsewhere.status, elsewhere.error_code) == (400, "validation_error")
