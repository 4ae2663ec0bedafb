"""The payments API (handlers/api/) end to end through its Lambda handler, on the memory store.

Events are API Gateway REST proxy events, checked against Powertools' own parser model so their
shape is real; every call goes through ``handler`` (logger, tracer, metrics and resolver).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from devstack.gateway import proxy_event
from handlers.api import handler
from handlers.api.dependencies import payment_service, payment_state_reader
from handlers.api.models import (
    AssessRiskBody,
    AuthorizePaymentBody,
    CapturePaymentBody,
    CommandResponse,
    EventView,
    ExpirePaymentBody,
    FailPaymentBody,
    InitiatePaymentBody,
    PaymentView,
    RefundPaymentBody,
    SettlePaymentBody,
    VoidPaymentBody,
)
from handlers.api.resolver import app, logger
from ledger.codec import event_document, verify_chain
from ledger.domain.errors import ConcurrencyError
from ledger.domain.limits import AMOUNT_MINOR_MAX, METADATA_KEYS_MAX
from ledger.domain.pan import contains_pan
from ledger.domain.timestamps import format_timestamp
from ledger.envelope import RecordedEvent, payment_stream_id
from ledger.memory import MemoryEventStore
from ledger.service import PaymentService
from projections.payment_state_reader import (
    MerchantPaymentsPage,
    MerchantPosition,
    PaymentStateReader,
)
from tests.lambda_context import FakeLambdaContext
from tests.unit.conftest import START, FakeClock

PAN = "4111111111111111"
API_KEY_ID = "key-abc123"
COMMAND_PATHS = {
    "InitiatePayment": "/payments",
    "AssessRisk": "/payments/{id}/risk-assessments",
    "AuthorizePayment": "/payments/{id}/authorization",
    "FailPayment": "/payments/{id}/failure",
    "CapturePayment": "/payments/{id}/captures",
    "VoidPayment": "/payments/{id}/void",
    "RefundPayment": "/payments/{id}/refunds",
    "SettlePayment": "/payments/{id}/settlement",
    "ExpirePayment": "/payments/{id}/expiry",
}
QUERY_PATHS = ("/payments/{id}", "/payments/{id}/events")
LISTING_PATH = "/merchants/{merchant_id}/payments"


# ── API Gateway events and a small client ────────────────────────────────────────────────────


def rest_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    identity: Mapping[str, str | None] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """The local stack's API Gateway event (``devstack.gateway``), called with an API key,
    checked against Powertools' model of a REST API proxy-integration event."""
    event = proxy_event(
        method,
        path,
        body=body,
        headers=headers,
        query=query,
        identity={"apiKeyId": API_KEY_ID, **(identity or {})},
        base64_encoded=base64_encoded,
    )
    APIGatewayProxyEventModel.model_validate(event)
    return event


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def error_code(self) -> str:
        return str(self.body["error"]["code"])


def use_service(patch: pytest.MonkeyPatch, service: PaymentService) -> None:
    """The routes run on ``service``, with no read model (queries fold the events) unless
    ``use_payment_states`` gives one, until ``patch`` is undone (Powertools' overrides)."""
    patch.setitem(app.dependency_overrides, payment_service, lambda: service)
    patch.setitem(app.dependency_overrides, payment_state_reader, lambda: None)


def use_payment_states(patch: pytest.MonkeyPatch, states: PaymentStateReader) -> None:
    """The routes read current payments from ``states`` until ``patch`` is undone."""
    patch.setitem(app.dependency_overrides, payment_state_reader, lambda: states)


def invoke(event: dict[str, Any]) -> Reply:
    response = handler(event, FakeLambdaContext("payledger-api"))
    headers = {name.lower(): values[-1] for name, values in response["multiValueHeaders"].items()}
    assert headers["content-type"] == "application/json"
    return Reply(response["statusCode"], headers, json.loads(response["body"]))


class Client:
    def __init__(self) -> None:
        self._keys = 0

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        key: str | None = "auto",
        headers: Mapping[str, str] | None = None,
        raw: str | None = None,
    ) -> Reply:
        all_headers = {"Content-Type": "application/json"}
        if key == "auto":
            self._keys += 1
            key = f"key-{self._keys}"
        if key is not None:
            all_headers["Idempotency-Key"] = key
        all_headers.update(headers or {})
        text = raw if raw is not None else (None if body is None else json.dumps(body))
        return invoke(rest_event("POST", path, body=text, headers=all_headers))

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Reply:
        return invoke(rest_event("GET", path, query=query))

    # The lifecycle in a few words, for tests that need a payment in some state.
    def initiate(self, payment_id: str, amount: str = "10.00", **extra: Any) -> Reply:
        body = {
            "payment_id": payment_id,
            "amount": amount,
            "currency": "EUR",
            "merchant_id": "m-1",
            "customer_id": "c-1",
            **extra,
        }
        return self.post("/payments", body)

    def approved(self, payment_id: str) -> Reply:
        self.initiate(payment_id)
        return self.post(
            f"/payments/{payment_id}/risk-assessments",
            {"decision": "approve", "score": "0.1", "reason": "low risk"},
        )

    def authorized(self, payment_id: str, **authorization: Any) -> Reply:
        self.approved(payment_id)
        return self.post(f"/payments/{payment_id}/authorization", authorization)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, service: PaymentService) -> Client:
    """The API on the memory store and the fake clock of tests/unit/conftest.py."""
    use_service(monkeypatch, service)
    return Client()


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[dict[str, Any]]]:
    """What the API's logger writes (its handler was bound to stdout at import)."""
    buffer = io.StringIO()
    for log_handler in logging.getLogger(logger.service).handlers:
        monkeypatch.setattr(log_handler, "stream", buffer)
    return lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]


def assert_error(reply: Reply, status: int, code: str) -> None:
    assert (reply.status, reply.error_code) == (status, code), reply.body
    assert set(reply.body) == {"error"}
    assert set(reply.body["error"]) == {"code", "message"}
    assert reply.body["error"]["message"]


def test_importing_the_handler_needs_no_credentials_and_no_data_libraries() -> None:
    """In Lambda, importing wires the service and the reader (clients, no call) with nothing but
    what Lambda sets; elsewhere importing builds nothing."""
    code = (
        "import sys, handlers.api\n"
        "from handlers.api.dependencies import payment_service, payment_state_reader\n"
        "loaded = {'pyarrow', 'pandas', 'duckdb', 'awswrangler'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
        "wired = [provider.cache_info().currsize for provider in (payment_service,\n"
        "                                                         payment_state_reader)]\n"
        "assert wired == [1, 1], wired\n"
    )
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "eu-west-1",  # Lambda sets both
        "AWS_DEFAULT_REGION": "eu-west-1",
        "EVENTS_TABLE": "events",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "payledger-api",
    }
    root = Path(__file__).resolve().parents[2]
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=environment, capture_output=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr.decode()


# ── Happy paths over every route ─────────────────────────────────────────────────────────────


def test_lifecycle_over_every_route(
    client: Client, store: MemoryEventStore, clock: FakeClock
) -> None:
    created = client.initiate("pay-1", description="two books", metadata={"order": "o-7"})
    assert created.status == 201
    assert created.headers["location"] == "/payments/pay-1"
    assert created.body["payment"]["status"] == "initiated"
    assert created.body["payment"]["amount"] == "10.00"
    assert [event["event_type"] for event in created.body["events"]] == ["PaymentInitiated"]

    clock.advance(timedelta(minutes=1))
    assessed = client.post(
        "/payments/pay-1/risk-assessments",
        {"decision": "approve", "score": "0.12", "reason": "known customer", "metadata": {"m": 1}},
        headers={"X-Actor": "agent:fraud-screener", "X-Actor-Model": "gbm", "X-Actor-Version": "7"},
    )
    assert assessed.status == 201
    assert assessed.body["payment"]["risk_decision"] == "approve"
    assert assessed.body["events"][0]["actor"] == {
        "kind": "agent",
        "id": "fraud-screener",
        "model": "gbm",
        "version": "7",
    }

    authorized = client.post("/payments/pay-1/authorization", {"processor": "acme"})
    assert authorized.body["payment"]["status"] == "authorized"
    assert authorized.body["payment"]["processor"] == "acme"

    captured = client.post("/payments/pay-1/captures", {"amount": "4.00", "currency": "EUR"})
    assert captured.body["payment"]["amount_captured_minor"] == 400
    final = client.post("/payments/pay-1/captures", {"amount": "2.50", "final": True})
    assert [event["event_type"] for event in final.body["events"]] == [
        "PaymentCaptured",
        "PaymentHoldReleased",
    ]
    refunded = client.post("/payments/pay-1/refunds", {"amount": "1.00", "reason": "one returned"})
    assert refunded.body["payment"]["status"] == "refunded"
    settled = client.post("/payments/pay-1/settlement", {"reference": "batch-9"})
    assert settled.status == 201
    assert settled.body["payment"]["status"] == "settled"
    assert settled.body["payment"]["amount_settled_minor"] == 550

    now = client.get("/payments/pay-1")
    assert now.status == 200
    assert now.body == {"payment": settled.body["payment"], "source": "events"}
    first = client.get("/payments/pay-1", {"version": "1"})
    assert first.body["payment"] == created.body["payment"]
    at_start = client.get("/payments/pay-1", {"as_of": format_timestamp(START)})
    assert at_start.body["payment"]["status"] == "initiated"

    history = client.get("/payments/pay-1/events")
    stored = store.load(payment_stream_id("pay-1"))
    assert history.body == {"events": [event_document(event) for event in stored]}
    assert [event["version"] for event in history.body["events"]] == list(range(1, 9))
    verify_chain(stored)


def test_failure_void_and_expiry_routes(client: Client, clock: FakeClock) -> None:
    client.approved("pay-f")
    failed = client.post(
        "/payments/pay-f/failure", {"reason": "insufficient funds", "processor_code": "51"}
    )
    assert (failed.status, failed.body["payment"]["status"]) == (201, "failed")
    assert failed.body["payment"]["failure_reason"] == "insufficient funds"

    client.authorized("pay-v")
    voided = client.post("/payments/pay-v/void", {"reason": "customer cancelled"})
    assert (voided.status, voided.body["payment"]["status"]) == (201, "voided")
    client.authorized("pay-v2")
    assert client.post("/payments/pay-v2/void").body["payment"]["status"] == "voided"

    client.authorized("pay-e", hold_until=format_timestamp(START + timedelta(hours=1)))
    clock.advance(timedelta(hours=2))
    expired = client.post("/payments/pay-e/expiry")
    assert (expired.status, expired.body["payment"]["status"]) == (201, "expired")
    client.authorized("pay-e2", hold_until=format_timestamp(clock.now + timedelta(hours=1)))
    clock.advance(timedelta(hours=2))
    assert client.post("/payments/pay-e2/expiry", {}).body["payment"]["status"] == "expired"


def test_authorization_and_settlement_take_no_body(client: Client) -> None:
    client.approved("pay-n")
    assert client.post("/payments/pay-n/authorization").status == 201
    assert client.post("/payments/pay-n/captures", {"amount": "10.00"}).status == 201
    assert client.post("/payments/pay-n/settlement").body["payment"]["status"] == "settled"


def test_actor_defaults_to_the_api_key_then_the_caller_then_anonymous(client: Client) -> None:
    body = {
        "payment_id": "pay-a",
        "amount": "1.00",
        "currency": "EUR",
        "merchant_id": "m",
        "customer_id": "c",
    }
    cases: list[tuple[dict[str, str | None], dict[str, str]]] = [
        ({}, {"kind": "api", "id": API_KEY_ID}),
        ({"apiKeyId": None, "caller": "AIDAEXAMPLE"}, {"kind": "api", "id": "AIDAEXAMPLE"}),
        ({"apiKeyId": None}, {"kind": "api", "id": "anonymous"}),
    ]
    for index, (identity, actor) in enumerate(cases):
        body["payment_id"] = f"pay-a{index}"
        event = rest_event(
            "POST",
            "/payments",
            body=json.dumps(body),
            headers={"Idempotency-Key": "k", "Content-Type": "application/json"},
            identity=identity,
        )
        assert invoke(event).body["events"][0]["actor"] == actor


def test_correlation_and_causation_ids(client: Client) -> None:
    created = client.initiate("pay-c")
    flow = created.body["events"][0]["correlation_id"]
    assert created.headers["x-correlation-id"] == flow
    later = client.post(
        "/payments/pay-c/risk-assessments",
        {"decision": "review", "score": "0.5", "reason": "new device"},
        headers={"X-Causation-Id": created.body["events"][0]["event_id"]},
    )
    assert later.body["events"][0]["correlation_id"] == flow  # the flow continues
    assert later.body["events"][0]["causation_id"] == created.body["events"][0]["event_id"]
    chosen = client.post(
        "/payments",
        _initiate_body("pay-c2"),
        headers={"x-correlation-id": "flow-42"},  # header names are case-insensitive
    )
    assert chosen.body["events"][0]["correlation_id"] == "flow-42"
    assert chosen.headers["x-correlation-id"] == "flow-42"
    # Reads and errors answer with the client's id, or else API Gateway's request id.
    read = invoke(rest_event("GET", "/payments/pay-c", headers={"X-Correlation-Id": "flow-43"}))
    assert read.headers["x-correlation-id"] == "flow-43"
    event = rest_event("GET", "/payments/missing")
    assert invoke(event).headers["x-correlation-id"] == event["requestContext"]["requestId"]


# ── Idempotency ──────────────────────────────────────────────────────────────────────────────


def test_a_retried_command_replays_the_original_body_with_200(
    client: Client, store: MemoryEventStore
) -> None:
    client.authorized("pay-r")
    first = client.post("/payments/pay-r/captures", {"amount": "3.00"}, key="capture-1")
    client.post("/payments/pay-r/captures", {"amount": "1.00"}, key="capture-2")
    again = client.post("/payments/pay-r/captures", {"amount": "3.00"}, key="capture-1")
    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["x-correlation-id"] == first.headers["x-correlation-id"]
    captures = [
        e for e in store.load(payment_stream_id("pay-r")) if e.event_type == "PaymentCaptured"
    ]
    assert len(captures) == 2

    created = client.initiate("pay-r2")
    replayed_create = client.post("/payments", _initiate_body("pay-r2"), key=_key_of(created))
    assert (replayed_create.status, replayed_create.body) == (200, created.body)


def _initiate_body(payment_id: str) -> dict[str, Any]:
    return {
        "payment_id": payment_id,
        "amount": "10.00",
        "currency": "EUR",
        "merchant_id": "m-1",
        "customer_id": "c-1",
    }


def _key_of(reply: Reply) -> str:
    return str(reply.body["events"][0]["idempotency_key"])


# ── Every error code the API can answer ──────────────────────────────────────────────────────


def test_missing_idempotency_key_is_a_validation_error(client: Client) -> None:
    client.authorized("pay-k")
    reply = client.post("/payments/pay-k/captures", {"amount": "1.00"}, key=None)
    assert_error(reply, 400, "validation_error")
    assert "idempotency-key" in reply.body["error"]["message"].lower()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"amount": 12.5}, "body amount"),  # a JSON number is never an amount
        ({"amount": 1250}, "body amount"),
        ({"amount": "1.00", "final": "yes"}, "body final"),
        ({"amount": "1.00", "surprise": 1}, "body surprise"),
        ({}, "body amount"),
        ([], "body"),
        ("1.00", "body"),
        (None, "body"),
    ],
)
def test_bodies_of_the_wrong_shape_are_validation_errors(
    client: Client, body: Any, where: str
) -> None:
    client.authorized("pay-s")
    reply = client.post("/payments/pay-s/captures", body)
    assert_error(reply, 400, "validation_error")
    assert where in reply.body["error"]["message"]


def test_validation_messages_name_fields_but_never_echo_values(client: Client) -> None:
    reply = client.post(
        "/payments",
        {
            "payment_id": "p",
            "amount": int(PAN),
            "currency": PAN,
            "merchant_id": [PAN],
            "customer_id": "c",
            PAN: PAN,
        },
    )
    assert_error(reply, 400, "validation_error")
    message = reply.body["error"]["message"]
    assert "body amount" in message
    assert "body merchant_id" in message
    assert "4111" not in message


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        '{"amount": "1.00",}',
        '{"amount": NaN}',
        '{"amount": Infinity}',
        '{"amount": "1.00", "amount": "2.00"}',  # a repeated key is ambiguous, so refused
        "1" * 5000,  # beyond Python's int digits limit
        "[" * 100_000 + "]" * 100_000,
        "   ",
    ],
)
def test_malformed_json_is_a_validation_error(client: Client, raw: str) -> None:
    client.authorized("pay-j")
    reply = client.post("/payments/pay-j/captures", raw=raw)
    assert_error(reply, 400, "validation_error")


def test_domain_validation_errors(client: Client) -> None:
    assert_error(client.initiate("pay d"), 400, "validation_error")  # id format
    assert_error(client.initiate("pay-d", currency="EURO"), 400, "validation_error")
    assert_error(client.initiate("pay-d", amount="10.001"), 400, "validation_error")
    assert_error(client.initiate("pay-d", metadata={"nested": {"a": 1}}), 400, "validation_error")
    assert_error(client.initiate("pay-d", metadata={"ratio": 0.5}), 400, "validation_error")
    assert_error(client.initiate("pay-d", headers_are_not_fields=1), 400, "validation_error")
    bad_actor = client.post("/payments", _initiate_body("pay-d"), headers={"X-Actor": "robot"})
    assert_error(bad_actor, 400, "validation_error")
    assert_error(
        client.post("/payments", _initiate_body("pay-d"), headers={"X-Actor": "robot:r2"}),
        400,
        "validation_error",
    )
    assert_error(client.post("/payments", _initiate_body("pay-d"), key=""), 400, "validation_error")
    assert_error(
        client.post("/payments", _initiate_body("pay-d"), key="a key"), 400, "validation_error"
    )
    client.approved("pay-h")
    past = client.post("/payments/pay-h/authorization", {"hold_until": "2020-01-01T00:00:00Z"})
    assert_error(past, 400, "validation_error")
    assert_error(client.get("/payments/pay-h", {"version": "0"}), 400, "validation_error")
    assert_error(client.get("/payments/pay-h", {"version": "two"}), 400, "validation_error")
    assert_error(client.get("/payments/pay-h", {"as_of": "yesterday"}), 400, "validation_error")


@pytest.mark.parametrize(
    "timestamp",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"],  # outside datetime's range in UTC
)
def test_timestamps_at_the_edge_of_time_are_validation_errors(
    client: Client, timestamp: str
) -> None:
    client.approved("pay-t")
    assert_error(client.get("/payments/pay-t", {"as_of": timestamp}), 400, "validation_error")
    reply = client.post("/payments/pay-t/authorization", {"hold_until": timestamp})
    assert_error(reply, 400, "validation_error")


def test_card_numbers_are_refused_and_never_echoed(client: Client) -> None:
    in_metadata = client.initiate("pay-p", metadata={"note": f"card {PAN}"})
    in_description = client.initiate("pay-p", description="card 4111 1111 1111 1111")
    client.initiate("pay-p2")
    in_assessment = client.post(
        "/payments/pay-p2/risk-assessments",
        {"decision": "approve", "score": "0.1", "reason": "ok", "metadata": {"pan": int(PAN)}},
    )
    for reply in (in_metadata, in_description, in_assessment):
        assert_error(reply, 400, "pan_detected")
        assert "4111" not in json.dumps(reply.body)


def test_limits(client: Client) -> None:
    one_over = f"{(AMOUNT_MINOR_MAX + 1) // 100}.{(AMOUNT_MINOR_MAX + 1) % 100:02d}"
    assert_error(client.initiate("pay-l", amount=one_over), 400, "limit_exceeded")
    at_limit = f"{AMOUNT_MINOR_MAX // 100}.{AMOUNT_MINOR_MAX % 100:02d}"
    assert client.initiate("pay-l", amount=at_limit).status == 201
    too_many = {f"k{index}": index for index in range(METADATA_KEYS_MAX + 1)}
    assert_error(client.initiate("pay-l2", metadata=too_many), 400, "limit_exceeded")
    assert_error(client.initiate("pay-" + "x" * 64), 400, "limit_exceeded")


def test_not_found(client: Client) -> None:
    assert_error(client.get("/payments/nobody"), 404, "not_found")
    assert_error(client.get("/payments/nobody/events"), 404, "not_found")
    assert_error(client.post("/payments/nobody/captures", {"amount": "1.00"}), 404, "not_found")
    assert_error(client.get("/refunds"), 404, "not_found")
    assert_error(client.get("/payments/a/b/c"), 404, "not_found")
    client.initiate("pay-nf")
    assert_error(
        client.get("/payments/pay-nf", {"as_of": "2020-01-01T00:00:00Z"}), 404, "not_found"
    )


def test_wrong_method(client: Client) -> None:
    reply = client.get("/payments")
    assert_error(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == "POST"
    for method in ("DELETE", "PUT", "PATCH"):
        reply = invoke(rest_event(method, "/payments/pay-1"))
        assert_error(reply, 405, "method_not_allowed")
        assert reply.headers["allow"] == "GET"
    assert_error(client.get("/payments/pay-1/captures"), 405, "method_not_allowed")
    assert_error(client.post("/payments/pay-1/events", {}), 405, "method_not_allowed")


def test_rule_violations(client: Client, clock: FakeClock) -> None:
    client.initiate("pay-i")
    assert_error(
        client.post("/payments/pay-i/captures", {"amount": "1.00"}), 422, "invalid_transition"
    )
    client.authorized("pay-x")
    assert_error(
        client.post("/payments/pay-x/captures", {"amount": "10.01"}),
        422,
        "capture_exceeds_authorized",
    )
    assert_error(
        client.post("/payments/pay-x/captures", {"amount": "1.00", "currency": "USD"}),
        422,
        "currency_mismatch",
    )
    client.post("/payments/pay-x/captures", {"amount": "5.00"})
    assert_error(
        client.post("/payments/pay-x/refunds", {"amount": "5.01"}), 422, "refund_exceeds_captured"
    )
    assert_error(
        client.post("/payments/pay-x/refunds", {"amount": "1.00", "currency": "GBP"}),
        422,
        "currency_mismatch",
    )
    assert_error(client.post("/payments/pay-x/expiry"), 422, "hold_not_expired")

    client.authorized("pay-z", hold_until=format_timestamp(clock.now + timedelta(hours=1)))
    clock.advance(timedelta(hours=1))
    assert_error(client.post("/payments/pay-z/captures", {"amount": "1.00"}), 422, "hold_expired")


def test_conflicts(client: Client) -> None:
    client.initiate("pay-q")
    assert_error(client.initiate("pay-q"), 409, "already_exists")  # a new key, same id
    client.post("/payments", _initiate_body("pay-q2"), key="same-key")
    different = client.post(
        "/payments", {**_initiate_body("pay-q2"), "amount": "11.00"}, key="same-key"
    )
    assert_error(different, 409, "idempotency_conflict")


class AlwaysConflictingStore(MemoryEventStore):
    """Another writer always wins the race: every append finds its version taken."""

    def append(self, events: Any) -> None:
        raise ConcurrencyError(f"stream {events[0].stream_id} moved on")


def test_concurrency_conflict_after_bounded_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    use_service(monkeypatch, PaymentService(AlwaysConflictingStore(), sleep=lambda _: None))
    assert_error(Client().initiate("pay-cc"), 409, "concurrency_conflict")


def test_only_json_bodies_are_accepted(client: Client) -> None:
    client.authorized("pay-m")
    for content_type in ("text/plain", "application/xml"):
        reply = client.post(
            "/payments/pay-m/captures", {"amount": "1.00"}, headers={"Content-Type": content_type}
        )
        assert_error(reply, 415, "unsupported_media_type")
    form = client.post(
        "/payments/pay-m/void",
        raw="reason=because",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status in (400, 415)
    assert client.get("/payments/pay-m").body["payment"]["status"] == "authorized"


@pytest.mark.filterwarnings("ignore:Received multipart/form-data without base64 encoding")
def test_undecodable_bodies_are_validation_errors(client: Client) -> None:
    client.authorized("pay-u")
    no_boundary = client.post(
        "/payments/pay-u/void", raw="--x--", headers={"Content-Type": "multipart/form-data"}
    )
    assert_error(no_boundary, 400, "validation_error")
    boundary = "b0undary"
    multipart = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="reason"\r\n\r\n'
        f"because\r\n--{boundary}--\r\n"
    )
    parsed = client.post(
        "/payments/pay-u/void",
        raw=multipart,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(parsed, 415, "unsupported_media_type")  # Powertools reads it; the API refuses it
    for body in ("not base64!", base64.b64encode(b"\xff\xfe").decode()):
        event = rest_event(
            "POST",
            "/payments/pay-u/void",
            body=body,
            headers={"Idempotency-Key": "b64", "Content-Type": "application/json"},
            base64_encoded=True,
        )
        assert_error(invoke(event), 400, "validation_error")
    assert client.get("/payments/pay-u").body["payment"]["status"] == "authorized"


class BrokenService(PaymentService):
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"bug with a secret detail and a card {PAN}")


def test_a_bug_is_a_generic_500_and_logged(
    monkeypatch: pytest.MonkeyPatch, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    use_service(monkeypatch, BrokenService(MemoryEventStore()))
    reply = Client().initiate("pay-b")
    assert_error(reply, 500, "internal_error")
    assert "secret" not in reply.body["error"]["message"]
    failure = next(line for line in log_lines() if line["message"] == "unexpected failure")
    assert failure["level"] == "ERROR"
    assert "RuntimeError: bug with a secret detail" in failure["exception"]
    assert PAN not in json.dumps(failure)
    assert "[PAN REDACTED]" in failure["exception"]


# ── Observability ────────────────────────────────────────────────────────────────────────────


def _emf_blobs(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def test_one_count_metric_per_request_with_low_cardinality_dimensions(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    client.initiate("pay-mx")
    client.initiate("pay-mx")
    client.get("/payments/pay-mx")
    client.get("/nowhere")
    blobs = _emf_blobs(capsys.readouterr().out)
    assert len(blobs) == 4
    succeeded, rejected, read, unrouted = blobs
    assert succeeded["CommandSucceeded"] == [1.0]
    assert succeeded["command"] == "InitiatePayment"
    assert rejected["CommandRejected"] == [1.0]
    assert rejected["code"] == "already_exists"
    assert read["QuerySucceeded"] == [1.0]
    assert read["query"] == "GetPayment"
    assert unrouted["RequestRejected"] == [1.0]
    assert unrouted["code"] == "not_found"
    assert succeeded["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "PayledgerTest"
    for blob in blobs:
        assert "pay-mx" not in json.dumps(blob["_aws"])  # no payment ids as dimensions


def test_log_lines_carry_the_request_id_as_correlation_id(
    client: Client, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    event = rest_event("GET", "/payments/nobody")
    invoke(event)
    lines = log_lines()
    assert [line["message"] for line in lines] == ["request rejected"]
    assert {line["correlation_id"] for line in lines} == {event["requestContext"]["requestId"]}
    assert lines[0]["code"] == "not_found"
    assert lines[0]["function_name"] == "payledger-api"


def test_card_numbers_in_rejected_requests_are_not_logged(
    client: Client, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    client.initiate("pay-log", description=f"card {PAN}")
    text = json.dumps(log_lines())
    assert "[PAN REDACTED]" in text or "pan_detected" in text
    assert PAN not in text


# ── Listing a merchant's payments ────────────────────────────────────────────────────────────


class MerchantPayments:
    """The read model's listing over the memory store's payments, as the ``by-merchant`` index
    orders them (the DynamoDB reader itself is tested in tests/integration/test_payment_state.py).
    """

    def __init__(self, service: PaymentService) -> None:
        self._service = service
        self.payment_ids: list[str] = []
        self.calls: list[tuple[str, int, str | None, MerchantPosition | None]] = []

    def read_payment(self, payment_id: str, *, consistent: bool = True) -> None:
        """Never projected: reads of one payment fold its events."""

    def list_merchant_payments(
        self,
        merchant_id: str,
        limit: int,
        *,
        status: str | None = None,
        after: MerchantPosition | None = None,
    ) -> MerchantPaymentsPage:
        self.calls.append((merchant_id, limit, status, after))
        payments = [self._service.get(payment_id).to_dict() for payment_id in self.payment_ids]
        payments.sort(key=lambda payment: (payment["updated_at"], payment["payment_id"]))
        keys = [(p["updated_at"], p["payment_id"]) for p in payments[::-1]]
        listed = [
            payment
            for payment, key in zip(payments[::-1], keys, strict=True)
            if payment["merchant_id"] == merchant_id
            and status in (None, payment["status"])
            and (after is None or key < (after.updated_at, after.payment_id))
        ]
        page = listed[:limit]
        more = len(listed) > limit
        last = MerchantPosition(page[-1]["updated_at"], page[-1]["payment_id"]) if more else None
        return MerchantPaymentsPage(page, last)


@pytest.fixture
def merchant_payments(
    client: Client, service: PaymentService, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> MerchantPayments:
    """Five payments of m-1 (pay-l0 oldest … pay-l4 newest; pay-l1 and pay-l3 approved) and one
    of m-2, listed by the API from a fake read model."""
    states = MerchantPayments(service)
    for index in range(5):
        clock.advance(timedelta(seconds=1))
        payment_id = f"pay-l{index}"
        (client.approved if index in (1, 3) else client.initiate)(payment_id)
        states.payment_ids.append(payment_id)
    client.post("/payments", {**_INITIATE, "payment_id": "pay-other", "merchant_id": "m-2"})
    states.payment_ids.append("pay-other")
    monkeypatch.setitem(app.dependency_overrides, payment_state_reader, lambda: states)
    return states


_INITIATE = {"amount": "1.00", "currency": "EUR", "customer_id": "c-1"}


def listed_ids(reply: Reply) -> list[str]:
    assert reply.status == 200, reply.body
    assert set(reply.body) == {"payments", "next_cursor"}
    return [payment["payment_id"] for payment in reply.body["payments"]]


def test_listing_pages_through_a_merchants_payments_newest_first(
    client: Client, merchant_payments: MerchantPayments, service: PaymentService
) -> None:
    first = client.get("/merchants/m-1/payments", {"limit": "2"})
    assert listed_ids(first) == ["pay-l4", "pay-l3"]
    assert first.body["payments"][1] == service.get("pay-l3").to_dict()
    PaymentView.model_validate(first.body["payments"][0])
    cursor = first.body["next_cursor"]
    assert isinstance(cursor, str)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    second = client.get("/merchants/m-1/payments", {"limit": "2", "cursor": cursor})
    assert listed_ids(second) == ["pay-l2", "pay-l1"]
    # The last page holds exactly ``limit`` payments: nothing follows it.
    last = client.get(
        "/merchants/m-1/payments", {"limit": "1", "cursor": second.body["next_cursor"]}
    )
    assert (listed_ids(last), last.body["next_cursor"]) == (["pay-l0"], None)
    everything = client.get("/merchants/m-1/payments")
    assert (len(listed_ids(everything)), everything.body["next_cursor"]) == (5, None)
    assert merchant_payments.calls[-1][1] == 50  # the default limit
    assert listed_ids(client.get("/merchants/m-9/payments")) == []


def test_listing_filters_by_status_and_keeps_the_filter_in_the_cursor(
    client: Client, merchant_payments: MerchantPayments
) -> None:
    first = client.get("/merchants/m-1/payments", {"status": "approved", "limit": "1"})
    assert listed_ids(first) == ["pay-l3"]
    cursor = first.body["next_cursor"]
    rest = client.get(
        "/merchants/m-1/payments", {"status": "approved", "limit": "1", "cursor": cursor}
    )
    assert (listed_ids(rest), rest.body["next_cursor"]) == (["pay-l1"], None)
    assert merchant_payments.calls[-1][2] == "approved"
    # The same cursor without its filter, or for another merchant, is refused.
    assert_error(client.get("/merchants/m-1/payments", {"cursor": cursor}), 400, "validation_error")
    other = client.get("/merchants/m-2/payments", {"status": "approved", "cursor": cursor})
    assert_error(other, 400, "validation_error")


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"status": "paid"},
        {"cursor": "not a cursor"},
        {"cursor": "x" * 513},
        {"cursor": "bm90IGpzb24"},  # base64url of "not json"
        {"cursor": base64.urlsafe_b64encode(b"[1, 2]").decode().rstrip("=")},
        {"cursor": base64.urlsafe_b64encode(b'{"m":"m-1","s":null}').decode().rstrip("=")},
        {
            "cursor": base64.urlsafe_b64encode(
                b'{"m":"m-1","s":null,"u":"yesterday","p":"pay-l1"}'
            ).decode()
        },
        {
            "cursor": base64.urlsafe_b64encode(
                b'{"m":"m-1","s":null,"u":"2026-11-21T12:00:00.000000Z","p":"a b"}'
            ).decode()
        },
    ],
)
def test_listing_refuses_a_bad_limit_status_or_cursor(
    client: Client, merchant_payments: MerchantPayments, query: dict[str, str]
) -> None:
    assert_error(client.get("/merchants/m-1/payments", query), 400, "validation_error")
    assert merchant_payments.calls == []


def test_listing_refuses_a_malformed_merchant_id(
    client: Client, merchant_payments: MerchantPayments
) -> None:
    reply = client.get(f"/merchants/{'m' * 65}/payments")
    assert_error(reply, 400, "limit_exceeded")


def test_listing_without_a_read_model_is_a_configuration_error(client: Client) -> None:
    assert_error(client.get("/merchants/m-1/payments"), 500, "configuration_error")


# ── OpenAPI ──────────────────────────────────────────────────────────────────────────────────


def test_openapi_lists_every_route(client: Client) -> None:
    reply = client.get("/openapi.json")
    assert reply.status == 200
    document = reply.body
    assert document["openapi"].startswith("3.")
    listed = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    expected = {("POST", path.replace("{id}", "{payment_id}")) for path in COMMAND_PATHS.values()}
    expected |= {("GET", path.replace("{id}", "{payment_id}")) for path in QUERY_PATHS}
    expected.add(("GET", LISTING_PATH))
    assert listed == expected
    capture = document["paths"]["/payments/{payment_id}/captures"]["post"]
    headers = {
        parameter["name"]: parameter["required"]
        for parameter in capture["parameters"]
        if parameter["in"] == "header"
    }
    assert headers["idempotency-key"] is True
    assert {
        "x-actor",
        "x-actor-model",
        "x-actor-version",
        "x-correlation-id",
        "x-causation-id",
    } <= set(headers)
    gateway = {"403", "429"}
    assert (
        set(capture["responses"])
        == {"200", "201", "400", "404", "409", "415", "422", "500"} | gateway
    )
    read = document["paths"]["/payments/{payment_id}"]["get"]
    assert set(read["responses"]) == {"200", "400", "404", "500"} | gateway  # no Powertools 422
    assert {parameter["name"] for parameter in read["parameters"]} == {
        "payment_id",
        "version",
        "as_of",
        "consistent",
        "min_version",
    }
    amount = document["components"]["schemas"]["CapturePaymentBody"]["properties"]["amount"]
    assert amount["type"] == "string"


def test_documented_response_models_match_what_the_api_returns(
    client: Client, store: MemoryEventStore
) -> None:
    client.authorized("pay-doc", processor="acme")
    payment = client.get("/payments/pay-doc").body["payment"]
    assert set(PaymentView.model_fields) == set(payment)
    PaymentView.model_validate(payment)
    events: list[RecordedEvent] = store.load(payment_stream_id("pay-doc"))
    assert set(EventView.model_fields) == set(event_document(events[-1]))
    CommandResponse.model_validate(client.post("/payments/pay-doc/void").body)


# ── No 5xx for any client input ──────────────────────────────────────────────────────────────
#
# A request is drawn clean (every part valid, so commands run against real payment states) or
# with each part (method, id, key, content type, actor headers, query, body, each body field)
# independently replaced, one time in four, by something odd: random text and JSON, card numbers,
# huge numbers, deep nesting, undecodable bytes, timestamps at the edge of time...

FUZZ_PAYMENT_IDS = tuple(f"pay-fuzz-{index}" for index in range(12))
ROUTES = [("POST", path) for path in COMMAND_PATHS.values()]
ROUTES += [("GET", path) for path in QUERY_PATHS]
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
WITH_PAN = (PAN, f"card {PAN}", f"{PAN}x", "4111 1111 1111 1111")
EDGE_TIMESTAMPS = (
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-11-21T12:00:00",
    "2026-13-01T00:00:00Z",
    "2020-01-01T00:00:00Z",
)
CONTENT_TYPES = (
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "",
)

text = st.text(max_size=40)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**18, max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
    | st.sampled_from(WITH_PAN)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
odd_texts = text | st.sampled_from(WITH_PAN) | json_values
odd_ids = st.sampled_from(["", "a b", "x" * 65, *WITH_PAN]) | text
odd_amounts = st.sampled_from(["10.001", "0", "-1", "1e3", "92233720368547758.08", " 1", *WITH_PAN])
odd_timestamps = st.sampled_from(EDGE_TIMESTAMPS + WITH_PAN) | st.from_regex(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", fullmatch=True
)
odd_bodies = st.one_of(
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),
    text,
    st.binary(max_size=40).map(lambda data: data.decode("latin-1")),
    st.integers(min_value=1, max_value=20_000).map(lambda digits: "7" * digits),
    st.integers(min_value=1, max_value=5_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(min_value=1, max_value=5_000).map(
        lambda depth: '{"a":' * depth + "1" + "}" * depth
    ),
)
# Per body field: (odd values, usual values).
FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "payment_id": (odd_ids, st.sampled_from(FUZZ_PAYMENT_IDS)),
    "merchant_id": (odd_ids, st.just("m-1")),
    "customer_id": (odd_ids, st.just("c-1")),
    "processor": (odd_ids, st.just("acme")),
    "amount": (odd_amounts | odd_texts, st.sampled_from(["0.01", "1.00", "2.50", "10.00"])),
    "currency": (st.sampled_from(["JPY", "XXX", "eur"]) | odd_texts, st.just("EUR")),
    "decision": (odd_texts, st.sampled_from(["approve", "review", "decline"])),
    "score": (st.sampled_from(["1.0000001", "-0"]) | odd_texts, st.just("0.5")),
    "final": (odd_texts, st.booleans()),
    "hold_until": (odd_timestamps | odd_texts, st.just("2026-11-22T12:00:00Z")),
    "metadata": (st.dictionaries(text, json_values, max_size=40) | odd_texts, st.just({"k": 1})),
    "description": (odd_texts, st.just("a description")),
    "reason": (odd_texts, st.just("a reason")),
    "reference": (odd_texts, st.just("ref-1")),
    "processor_code": (odd_texts, st.just("05")),
}
BODY_MODELS: dict[str, type[BaseModel]] = {
    "/payments": InitiatePaymentBody,
    "/payments/{id}/risk-assessments": AssessRiskBody,
    "/payments/{id}/authorization": AuthorizePaymentBody,
    "/payments/{id}/failure": FailPaymentBody,
    "/payments/{id}/captures": CapturePaymentBody,
    "/payments/{id}/void": VoidPaymentBody,
    "/payments/{id}/refunds": RefundPaymentBody,
    "/payments/{id}/settlement": SettlePaymentBody,
    "/payments/{id}/expiry": ExpirePaymentBody,
}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    clean = draw(st.integers(0, 2)) == 0

    def pick(odd: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> Any:
        return draw(usual) if clean or draw(st.integers(0, 3)) else draw(odd)

    route_method, template = draw(st.sampled_from(ROUTES))
    method = pick(st.sampled_from(METHODS), st.just(route_method))
    payment_id = pick(odd_ids, st.sampled_from(FUZZ_PAYMENT_IDS))
    headers: dict[str, str] = {}
    fresh_or_reused = st.uuids().map(str) | st.sampled_from(["k-1", "k-2"])
    key = pick(st.none() | header_text | st.sampled_from(WITH_PAN), fresh_or_reused)
    if key is not None:
        headers["Idempotency-Key"] = key
    content_type = pick(st.sampled_from(CONTENT_TYPES) | header_text, st.just("application/json"))
    if content_type:
        headers["Content-Type"] = content_type
    if draw(st.booleans()):
        headers["X-Actor"] = pick(header_text, st.sampled_from(["agent:a", "operator:o-1"]))
    for name in ("X-Actor-Model", "X-Actor-Version", "X-Correlation-Id", "X-Causation-Id"):
        if draw(st.integers(0, 3)) == 0:
            headers[name] = pick(header_text | st.sampled_from(WITH_PAN), st.just("v-1"))
    if not clean:
        headers.update(draw(st.dictionaries(header_text.filter(bool), header_text, max_size=2)))
    query: dict[str, str] = {}
    if template == "/payments/{id}" and draw(st.booleans()):
        name = draw(st.sampled_from(["version", "as_of", "consistent", "min_version"]))
        usual = st.just("1") if name == "version" else st.just("2026-11-21T12:00:00Z")
        query[name] = pick(odd_timestamps | header_text | st.integers().map(str), usual)
    fields = BODY_MODELS.get(template, ExpirePaymentBody).model_fields
    body: dict[str, Any] = {
        name: pick(*FIELDS[name])
        for name, field in fields.items()
        if field.is_required() or draw(st.booleans())
    }
    if not clean and draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(sorted(FIELDS)) | text)] = draw(json_values)
    raw = pick(st.none() | odd_bodies, st.just(json.dumps(body, allow_nan=True)))
    return rest_event(
        method,
        template.format(id=payment_id),
        body=raw,
        headers=headers,
        query=query,
        base64_encoded=raw is not None and not clean and draw(st.integers(0, 9)) == 0,
    )


@pytest.mark.filterwarnings("ignore:Received multipart/form-data without base64 encoding")
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests())
def test_no_client_input_causes_a_5xx(
    fuzz_service: PaymentService, request: dict[str, Any]
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        use_service(patch, fuzz_service)
        reply = invoke(request)
    event(
        f"{reply.status} {reply.body.get('error', {}).get('code', '')}"
    )  # --hypothesis-show-statistics
    assert reply.status < 500, reply.body
    if reply.status >= 400:
        assert set(reply.body) == {"error"}
        assert set(reply.body["error"]) == {"code", "message"}
    else:
        assert "payment" in reply.body or "events" in reply.body
    assert not contains_pan(json.dumps(reply.body.get("error", {})))


@pytest.fixture(scope="module")
def fuzz_service() -> PaymentService:
    """One service for the whole fuzz run, with payments in every open state (the last id is
    left for a create): initiated, approved, authorized and captured."""
    service = PaymentService(MemoryEventStore(), clock=FakeClock(), sleep=lambda _: None)
    client = Client()
    with pytest.MonkeyPatch.context() as patch:
        use_service(patch, service)
        for index, payment_id in enumerate(FUZZ_PAYMENT_IDS[:-1]):
            state = ("initiated", "approved", "authorized", "captured")[index % 4]
            if state == "initiated":
                client.initiate(payment_id)
            elif state == "approved":
                client.approved(payment_id)
            else:
                client.authorized(payment_id)
            if state == "captured":
                client.post(f"/payments/{payment_id}/captures", {"amount": "1.00"})
            assert client.get(f"/payments/{payment_id}").body["payment"]["status"] == state
    return service


cursor_documents = st.fixed_dictionaries(
    {},
    optional={"m": json_values, "s": json_values, "u": json_values, "p": json_values},
).map(lambda document: json.dumps(document, allow_nan=True).encode())
odd_cursors = st.one_of(
    text,
    st.binary(max_size=60).map(lambda data: base64.urlsafe_b64encode(data).decode()),
    cursor_documents.map(lambda data: base64.urlsafe_b64encode(data).decode().rstrip("=")),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    merchant_id=odd_ids,
    query=st.dictionaries(
        st.sampled_from(["status", "limit", "cursor"]),
        odd_cursors | st.integers(-5, 500).map(str) | st.sampled_from(["approved", *WITH_PAN]),
    ),
)
def test_no_listing_query_causes_a_5xx(merchant_id: str, query: dict[str, str]) -> None:
    service = PaymentService(MemoryEventStore(), clock=FakeClock(), sleep=lambda _: None)
    with pytest.MonkeyPatch.context() as patch:
        use_service(patch, service)
        patch.setitem(
            app.dependency_overrides, payment_state_reader, lambda: MerchantPayments(service)
        )
        reply = invoke(rest_event("GET", f"/merchants/{merchant_id}/payments", query=query))
    assert reply.status < 500, reply.body
    assert reply.status in (200, 400, 404), reply.body
    assert not contains_pan(json.dumps(reply.body.get("error", {})))


@pytest.fixture(autouse=True)
def _no_leaked_dependencies() -> Iterator[None]:
    yield
    assert not app.dependency_overrides


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/payments", '{"payment_id": "pay-s", "amount": "1.00", "currency": "EUR", "merchant_id": '
         '"m-1", "customer_id": "c-1", "description": "a\\ud800b"}'),
        ("/payments", '{"payment_id": "pay-s", "amount": "1.00", "currency": "EUR", "merchant_id": '
         '"m-1", "customer_id": "c-1", "metadata": {"note": "\\udfff"}}'),
        ("/payments/pay-1/risk-assessments",
         '{"decision": "approve", "score": "0.1", "reason": "lone \\ud83d half"}'),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_invalid_input_not_an_internal_error(
    client: Client, path: str, body: str
) -> None:
    client.initiate("pay-1")
    reply = client.post(path, raw=body)
    assert (reply.status, reply.body["error"]["code"]) == (400, "validation_error")
    assert "lone surrogate" in reply.body["error"]["message"]


def test_a_paired_surrogate_is_an_ordinary_character(client: Client) -> None:
    reply = client.initiate("pay-emoji", description="\U0001f600 thanks")
    assert reply.status == 201
    assert reply.body["payment"]["description"] == "\U0001f600 thanks"
