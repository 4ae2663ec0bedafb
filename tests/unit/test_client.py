"""The client's own checks, no server: its limits, region resolution, amounts and how error
responses map to typed exceptions (the HTTP behaviour is in tests/integration/client/)."""

from __future__ import annotations

import json

import pytest
from botocore.credentials import Credentials

from payledger_client import (
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    IdempotencyConflictError,
    InternalError,
    PayledgerClient,
    PayledgerError,
    ThrottledError,
    error_class,
)
from payledger_client.errors import error_from_response

CREDENTIALS = Credentials("AKIAUNIT", "secret")
URL = "http://127.0.0.1:9/local"


def test_the_region_is_the_urls_else_the_configured_one() -> None:
    deployed = "https://a1b2c3.execute-api.eu-west-3.amazonaws.com/Prod"
    assert PayledgerClient(deployed, credentials=CREDENTIALS).region == "eu-west-3"
    assert PayledgerClient(URL, credentials=CREDENTIALS).region == "us-east-1"
    assert PayledgerClient(deployed, region="ap-south-1", credentials=CREDENTIALS).region == (
        "ap-south-1"
    )


@pytest.mark.parametrize(
    "options",
    [{"retries_max": -1}, {"retries_max": 11}, {"timeout_s": 0}, {"timeout_s": 301}],
)
def test_its_own_settings_are_bounded(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        PayledgerClient(URL, credentials=CREDENTIALS, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["127.0.0.1:8080/local", "ftp://example.com/x", ""])
def test_the_api_url_must_be_http(url: str) -> None:
    with pytest.raises(ConfigurationError):
        PayledgerClient(url, credentials=CREDENTIALS)


def test_no_credentials_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigurationError) as missing:
        PayledgerClient(URL)
    assert missing.value.code == "configuration_error"


@pytest.mark.parametrize("limit", [0, 101])
def test_a_page_holds_1_to_100(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        PayledgerClient(URL, credentials=CREDENTIALS).list_merchant_payments("m", limit=limit)


def test_amounts_are_strings_or_decimals_never_floats() -> None:
    client = PayledgerClient(URL, credentials=CREDENTIALS)
    with pytest.raises(TypeError, match="decimal strings"):
        client.capture_payment("pay-1", amount=12.34)  # type: ignore[arg-type]


def test_api_errors_map_to_their_class_by_code() -> None:
    body = {"error": {"code": "idempotency_conflict", "message": "key reused"}}
    error = error_from_response(409, json.dumps(body).encode(), None)
    assert isinstance(error, IdempotencyConflictError)
    assert isinstance(error, ConflictError)
    assert (error.code, error.message, error.status, dict(error.body)) == (
        "idempotency_conflict",
        "key reused",
        409,
        body,
    )
    assert str(error) == "idempotency_conflict (HTTP 409): key reused"


def test_every_code_the_api_answers_has_its_own_class() -> None:
    from ledger.domain.errors import ALL_ERRORS

    for server_error in ALL_ERRORS:
        client_error = error_class(server_error.code)
        assert client_error is not PayledgerError, server_error.code
        assert client_error.code_default == server_error.code


def test_an_unknown_code_raises_the_root_with_that_code() -> None:
    body = {"error": {"code": "brand_new_code", "message": "new"}}
    error = error_from_response(400, json.dumps(body).encode(), None)
    assert type(error) is PayledgerError
    assert error.code == "brand_new_code"
    assert error_class("brand_new_code") is PayledgerError


def test_gateway_refusals_map_by_status() -> None:
    denied = b'{"Message":"User: arn:aws:sts::1:assumed-role/r/s is not authorized"}'
    forbidden = error_from_response(403, denied, "AccessDeniedException")
    assert isinstance(forbidden, ForbiddenError)
    assert forbidden.message.startswith("AccessDeniedException: User: arn:aws:sts")
    assert isinstance(
        error_from_response(429, b'{"message":"Too Many Requests"}', None), ThrottledError
    )
    failed = error_from_response(502, b'{"message": "Internal server error"}', None)
    assert isinstance(failed, InternalError)
    assert error_from_response(418, b"<html>teapot</html>", None).message == "<html>teapot</html>"


def test_the_clients_types_are_the_apis_shapes() -> None:
    """The client stands alone, so it restates the API's shapes; this keeps the two equal."""
    from typing import get_args

    from handlers.api.models import ActorView, EventView, PaymentView
    from ledger.domain.events import RiskDecision as ServerRiskDecision
    from ledger.domain.payment import STATUSES
    from ledger.envelope import ACTOR_KINDS
    from payledger_client import types

    assert set(types.Payment.__annotations__) == set(PaymentView.model_fields)
    assert set(types.Event.__annotations__) == set(EventView.model_fields)
    assert set(types.Actor.__annotations__) == set(ActorView.model_fields)
    assert get_args(types.Status) == tuple(STATUSES)
    assert get_args(types.ActorKind) == tuple(ACTOR_KINDS)
    assert get_args(types.RiskDecision) == get_args(ServerRiskDecision)
