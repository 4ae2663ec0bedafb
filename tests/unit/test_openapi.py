"""The API's OpenAPI document (``payledger api openapi``): valid OpenAPI 3.1, usable by client
generators (SigV4, stable operation ids, the domain's constraints, response headers), and true
to what the API answers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from typer.testing import CliRunner

from cli import app as cli_app
from handlers.api.cursors import CURSOR_CHARS_MAX
from handlers.api.routes import MERCHANT_PAGE_LIMIT_DEFAULT
from ledger.domain.limits import (
    ID_CHARS_MAX,
    IDEMPOTENCY_KEY_CHARS_MAX,
    METADATA_KEYS_MAX,
    TEXT_CHARS_MAX,
)
from ledger.domain.money import AMOUNT_PATTERN, CURRENCY_EXPONENTS
from ledger.domain.payment import STATUSES
from ledger.domain.validation import ID_PATTERN, SCORE_PATTERN
from ledger.service import PaymentService
from projections.payment_state_reader import MERCHANT_PAGE_LIMIT_MAX, PaymentStateReader
from tests.unit.test_api import (
    Client,
    MerchantPayments,
    Reply,
    use_payment_states,
    use_service,
)

OPERATION_IDS = {
    ("POST", "/payments"): "initiatePayment",
    ("POST", "/payments/{payment_id}/risk-assessments"): "assessRisk",
    ("POST", "/payments/{payment_id}/authorization"): "authorizePayment",
    ("POST", "/payments/{payment_id}/failure"): "failPayment",
    ("POST", "/payments/{payment_id}/captures"): "capturePayment",
    ("POST", "/payments/{payment_id}/void"): "voidPayment",
    ("POST", "/payments/{payment_id}/refunds"): "refundPayment",
    ("POST", "/payments/{payment_id}/settlement"): "settlePayment",
    ("POST", "/payments/{payment_id}/expiry"): "expirePayment",
    ("GET", "/payments/{payment_id}"): "getPayment",
    ("GET", "/payments/{payment_id}/events"): "getPaymentEvents",
    ("GET", "/merchants/{merchant_id}/payments"): "listMerchantPayments",
}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The document as ``payledger api openapi`` writes it, with no AWS configuration at all."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "cli", "api", "openapi"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    written: dict[str, Any] = json.loads(completed.stdout)
    return written


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [p for p in operation["parameters"] if p["name"] == name]
    return found


def string_branch(schema: dict[str, Any]) -> dict[str, Any]:
    """The string schema of an optional field (``anyOf: [string, null]``) or the schema itself."""
    return next((s for s in schema.get("anyOf", ()) if s.get("type") == "string"), schema)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_operation_has_its_stable_id(document: dict[str, Any]) -> None:
    assert {key: op["operationId"] for key, op in operations(document).items()} == OPERATION_IDS


def test_requests_are_signed_with_sigv4(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "sigv4": {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "description": "AWS Signature Version 4 for execute-api",
            "x-amazon-apigateway-authtype": "awsSigv4",
        }
    }
    assert document["security"] == [{"sigv4": []}]


def test_the_server_is_the_deployed_url_unless_given(
    document: dict[str, Any], tmp_path: Path
) -> None:
    [server] = document["servers"]
    assert server["url"] == "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}"
    assert set(server["variables"]) == {"api_id", "region", "stage"}
    output = tmp_path / "openapi.json"
    url = "http://127.0.0.1:4566/local"
    result = CliRunner().invoke(cli_app, ["api", "openapi", "--server", url, "-o", str(output)])
    assert (result.exit_code, result.output) == (0, "")
    written = json.loads(output.read_text())
    assert written["servers"] == [{"url": url}]
    assert written["paths"] == document["paths"]


def test_constraints_are_the_domains_own(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    initiate = schemas["InitiatePaymentBody"]["properties"]
    for field in ("payment_id", "merchant_id", "customer_id"):
        assert (initiate[field]["pattern"], initiate[field]["maxLength"]) == (
            ID_PATTERN,
            ID_CHARS_MAX,
        )
    assert initiate["amount"]["pattern"] == AMOUNT_PATTERN
    assert initiate["currency"]["enum"] == sorted(CURRENCY_EXPONENTS)
    assert string_branch(initiate["description"])["maxLength"] == TEXT_CHARS_MAX
    assert initiate["metadata"]["maxProperties"] == METADATA_KEYS_MAX
    capture = schemas["CapturePaymentBody"]["properties"]
    assert string_branch(capture["currency"])["enum"] == sorted(CURRENCY_EXPONENTS)
    assert schemas["AssessRiskBody"]["properties"]["score"]["pattern"] == SCORE_PATTERN
    assert schemas["AssessRiskBody"]["properties"]["decision"]["enum"] == [
        "approve",
        "review",
        "decline",
    ]
    assert schemas["PaymentView"]["properties"]["status"]["enum"] == list(STATUSES)
    for (method, path), operation in operations(document).items():
        for name in ("payment_id", "merchant_id"):
            if "{" + name + "}" in path:
                schema = parameter(operation, name)["schema"]
                assert (schema["pattern"], schema["maxLength"]) == (ID_PATTERN, ID_CHARS_MAX)
        if method == "POST":
            key = parameter(operation, "idempotency-key")
            assert key["required"] is True
            assert key["schema"]["maxLength"] == IDEMPOTENCY_KEY_CHARS_MAX
            assert re.fullmatch(key["schema"]["pattern"], "3b0c1f9e-uuid-like:key")
    listing = operations(document)[("GET", "/merchants/{merchant_id}/payments")]
    assert string_branch(parameter(listing, "status")["schema"])["enum"] == list(STATUSES)
    limit = parameter(listing, "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (
        1,
        MERCHANT_PAGE_LIMIT_MAX,
        MERCHANT_PAGE_LIMIT_DEFAULT,
    )
    assert string_branch(parameter(listing, "cursor")["schema"])["maxLength"] == CURSOR_CHARS_MAX


def test_every_operation_documents_gateway_refusals_and_its_headers(
    document: dict[str, Any],
) -> None:
    for (method, _), operation in operations(document).items():
        responses = operation["responses"]
        assert {"403", "429", "500"} <= set(responses)
        assert responses["403"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/GatewayError"
        }
        for status, response in responses.items():
            headers = response.get("headers", {})
            assert ("X-Correlation-Id" in headers) == (status not in ("403", "429")), status
        if method == "POST":
            assert responses["200"]["headers"]["Idempotent-Replayed"]["required"] is True
            assert "Idempotent-Replayed" not in responses["201"]["headers"]
    created = operations(document)[("POST", "/payments")]["responses"]["201"]
    assert created["headers"]["Location"]["required"] is True
    gateway = document["components"]["schemas"]["GatewayError"]["properties"]
    assert {"message", "Message"} <= set(gateway)


# ── What the API answers conforms to the document ───────────────────────────────────────────


def conforms(document: dict[str, Any], method: str, path: str, reply: Reply) -> None:
    """``reply`` is a documented answer of the operation at ``path``: status, body and headers."""
    operation = operations(document)[(method, path)]
    response = operation["responses"][str(reply.status)]
    schema = response["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": document["components"]})
    validator.validate(reply.body)
    for name, header in response.get("headers", {}).items():
        value = reply.headers.get(name.lower())
        if header.get("required"):
            assert value is not None, name
        if value is not None:
            Draft202012Validator(header["schema"]).validate(value)


def test_what_the_api_answers_conforms_to_the_document(
    document: dict[str, Any], service: PaymentService, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_service(monkeypatch, service)
    states = MerchantPayments(service)
    states.payment_ids.append("pay-doc")
    use_payment_states(monkeypatch, cast(PaymentStateReader, states))
    client = Client()
    created = client.initiate("pay-doc")
    text = {"raw": "a=1", "headers": {"Content-Type": "text/plain"}}
    answers = [
        ("POST", "/payments", 201, lambda: created),
        ("POST", "/payments", 200, lambda: client.post("/payments", _PAY_DOC, key="key-1")),
        ("POST", "/payments", 400, lambda: client.post("/payments", {"amount": 1})),
        ("POST", "/payments", 409, lambda: client.post("/payments", _PAY_DOC)),
        ("POST", _CAPTURES, 422, lambda: client.post("/payments/pay-doc/captures", _ONE)),
        ("POST", _CAPTURES, 404, lambda: client.post("/payments/nobody/captures", _ONE)),
        ("POST", _CAPTURES, 415, lambda: client.post("/payments/pay-doc/captures", **text)),
        ("GET", "/payments/{payment_id}", 200, lambda: client.get("/payments/pay-doc")),
        ("GET", "/payments/{payment_id}", 400, lambda: client.get("/payments/pay-doc", _BAD)),
        (
            "GET",
            "/payments/{payment_id}/events",
            200,
            lambda: client.get("/payments/pay-doc/events"),
        ),
        ("GET", _LISTING, 200, lambda: client.get("/merchants/m-1/payments", {"limit": "1"})),
        ("GET", _LISTING, 400, lambda: client.get("/merchants/m-1/payments", {"cursor": "e30"})),
    ]
    for method, path, status, call in answers:
        reply = call()
        assert reply.status == status, (method, path, reply.body)
        conforms(document, method, path, reply)
    unrouted = client.get("/payments/pay-doc/captures")
    assert unrouted.status == 405
    error = {"$ref": "#/components/schemas/ErrorResponse", "components": document["components"]}
    Draft202012Validator(error).validate(unrouted.body)


_PAY_DOC = {
    "payment_id": "pay-doc",
    "amount": "10.00",
    "currency": "EUR",
    "merchant_id": "m-1",
    "customer_id": "c-1",
}
_ONE = {"amount": "1.00"}
_BAD = {"version": "x"}
_CAPTURES = "/payments/{payment_id}/captures"
_LISTING = "/merchants/{merchant_id}/payments"
