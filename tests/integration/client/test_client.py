"""The client against the API over HTTP: every request signed (the server verifies it), typed
results and errors, idempotent retries, the replay flag and reading one's own writes."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import urllib3
from botocore.credentials import Credentials

from payledger_client import (
    AlreadyExistsError,
    CommandResult,
    ConnectionFailedError,
    ForbiddenError,
    IdempotencyConflictError,
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    PanDetectedError,
    PayledgerClient,
    PayledgerError,
    Payment,
    RuleViolationError,
    ThrottledError,
    ValidationError,
)
from tests.integration.client.conftest import ApiServer, serve_read_model


class LaggingReadModel:
    """A read model that has projected only the first event of every payment."""

    def __init__(self, first: Payment) -> None:
        self._first = first

    def read_payment(self, payment_id: str, *, consistent: bool = True) -> dict[str, Any]:
        return dict(self._first)


def initiate(client: PayledgerClient, payment_id: str, **options: str) -> CommandResult:
    return client.initiate_payment(
        payment_id=payment_id,
        amount="12.34",
        currency="EUR",
        merchant_id="m-client",
        customer_id="c-1",
        **options,  # type: ignore[arg-type]
    )


def test_a_payment_goes_through_its_whole_life(client: PayledgerClient) -> None:
    created = initiate(client, "pay-life")
    assert (created.payment["status"], created.payment["amount"]) == ("initiated", "12.34")
    assert created.replayed is False
    assert created.correlation_id == created.events[0]["correlation_id"]
    assert created.events[0]["idempotency_key"] == created.idempotency_key

    client.assess_risk("pay-life", decision="approve", score=Decimal("0.12"), reason="low risk")
    client.authorize_payment("pay-life", processor="acme")
    captured = client.capture_payment("pay-life", amount=Decimal("12.34"), final=True)
    assert captured.payment["status"] == "captured"
    assert captured.payment["amount_captured_minor"] == 1234
    settled = client.settle_payment("pay-life", reference="batch-1")

    assert client.get_payment("pay-life") == settled.payment
    events = client.get_payment_events("pay-life")
    assert [event["version"] for event in events] == list(range(1, len(events) + 1))
    assert events[-1] == settled.events[-1]


def test_commands_carry_their_options_as_headers(client: PayledgerClient, api: ApiServer) -> None:
    result = initiate(
        client,
        "pay-headers",
        idempotency_key="key-chosen",
        correlation_id="flow-1",
        actor="agent:checkout",
        actor_model="model-x",
    )
    event = result.events[0]
    assert (result.idempotency_key, event["idempotency_key"]) == ("key-chosen", "key-chosen")
    assert (result.correlation_id, event["correlation_id"]) == ("flow-1", "flow-1")
    assert event["actor"] == {"kind": "agent", "id": "checkout", "model": "model-x"}
    assert api.received[-1]["x-actor"] == "agent:checkout"


def test_each_call_gets_its_own_uuid4_key_and_the_signer_is_the_default_actor(
    client: PayledgerClient, api: ApiServer
) -> None:
    first, second = initiate(client, "pay-k1"), initiate(client, "pay-k2")
    assert first.idempotency_key != second.idempotency_key
    assert [len(first.idempotency_key), first.idempotency_key[14]] == [36, "4"]
    assert first.events[0]["actor"]["kind"] == "api"
    assert first.events[0]["actor"]["id"] == api.credentials.access_key


def test_the_same_key_replays_and_a_different_request_under_it_conflicts(
    client: PayledgerClient,
) -> None:
    first = initiate(client, "pay-replay", idempotency_key="k-1")
    again = initiate(client, "pay-replay", idempotency_key="k-1")
    assert again.replayed is True
    assert (again.payment, again.events) == (first.payment, first.events)
    with pytest.raises(IdempotencyConflictError) as conflict:
        client.capture_payment("pay-replay", amount="1.00", idempotency_key="k-1")
    assert (conflict.value.code, conflict.value.status) == ("idempotency_conflict", 409)


def test_a_lost_answer_is_retried_with_the_same_key_and_reported_replayed(
    client: PayledgerClient, api: ApiServer
) -> None:
    api.faults.append("drop")
    result = initiate(client, "pay-lost")
    assert result.replayed is True
    keys = [headers["idempotency-key"] for headers in api.received]
    assert keys == [result.idempotency_key] * 2
    assert len(api.service.load("pay-lost")) == 1


def test_throttling_and_unavailability_are_retried_then_succeed(
    client: PayledgerClient, api: ApiServer
) -> None:
    api.faults.extend(["throttle", "unavailable"])
    result = initiate(client, "pay-busy")
    assert result.replayed is False
    assert [headers["idempotency-key"] for headers in api.received] == [result.idempotency_key] * 3
    signatures = [headers["authorization"] for headers in api.received]
    assert all(
        signed.startswith("AWS4-HMAC-SHA256 Credential=AKIACLIENTTESTS/") for signed in signatures
    )


def test_retries_are_bounded(api: ApiServer) -> None:
    api.faults.extend(["throttle"] * 3)
    client = PayledgerClient(api.url, credentials=api.credentials, retries_max=2)
    with pytest.raises(ThrottledError) as throttled:
        initiate(client, "pay-throttled")
    assert (throttled.value.code, throttled.value.status) == ("throttled", 429)
    assert len(api.received) == 3


def test_errors_are_typed_by_their_code(client: PayledgerClient) -> None:
    initiate(client, "pay-err")
    with pytest.raises(InvalidTransitionError) as rule:
        client.capture_payment("pay-err", amount="1.00")
    assert isinstance(rule.value, RuleViolationError)
    assert (rule.value.code, rule.value.status) == ("invalid_transition", 422)
    assert rule.value.body["error"]["code"] == "invalid_transition"
    with pytest.raises(AlreadyExistsError):
        client.initiate_payment(
            payment_id="pay-err", amount="9.99", currency="EUR", merchant_id="m", customer_id="c"
        )
    with pytest.raises(NotFoundError):
        client.get_payment("pay-nowhere")
    with pytest.raises(ValidationError) as invalid:
        client.initiate_payment(
            payment_id="pay-bad", amount="12.34", currency="euro", merchant_id="m", customer_id="c"
        )
    assert isinstance(invalid.value, InvalidInputError)
    with pytest.raises(PanDetectedError) as pan:
        client.initiate_payment(
            payment_id="pay-pan",
            amount="1.00",
            currency="EUR",
            merchant_id="m",
            customer_id="c",
            description="card 4111111111111111",
        )
    assert "4111111111111111" not in str(pan.value)


def test_reads_follow_versions_and_times(client: PayledgerClient) -> None:
    created = initiate(client, "pay-read")
    client.assess_risk("pay-read", decision="review", score="0.5", reason="new customer")
    assert client.get_payment("pay-read", version=1) == created.payment
    assert client.get_payment("pay-read", as_of=created.payment["created_at"])["version"] == 1
    assert client.get_payment("pay-read", consistent=True)["status"] == "in_review"


def test_min_version_reads_your_write_when_the_read_model_lags(
    client: PayledgerClient, api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = initiate(client, "pay-ryw")
    written = client.assess_risk("pay-ryw", decision="approve", score="0.1", reason="ok")
    serve_read_model(monkeypatch, LaggingReadModel(created.payment))
    assert client.get_payment("pay-ryw")["version"] == 1
    fresh = client.get_payment("pay-ryw", min_version=written.payment["version"])
    assert fresh == written.payment


def test_a_wrong_secret_is_refused_by_the_gateway(api: ApiServer) -> None:
    forged = Credentials(api.credentials.access_key, "not-the-secret")
    client = PayledgerClient(api.url, credentials=forged)
    with pytest.raises(ForbiddenError) as refused:
        client.get_payment("pay-any")
    assert (refused.value.code, refused.value.status) == ("forbidden", 403)
    assert "InvalidSignatureException" in refused.value.message
    assert api.received == []


def test_an_unsigned_request_is_refused(api: ApiServer) -> None:
    response = urllib3.request("GET", f"{api.url}/payments/pay-any", retries=False)
    assert response.status == 403
    assert response.json() == {"message": "Missing Authentication Token"}


def test_the_default_credential_chain_signs(api: ApiServer) -> None:
    with PayledgerClient(api.url) as client:
        assert client.region == "us-east-1"
        initiate(client, "pay-chain")
    assert api.received[-1]["x-amz-security-token"] == "testing"


def test_no_answer_at_all_fails_after_bounded_retries(api: ApiServer) -> None:
    api.faults.extend(["drop"] * 2)
    client = PayledgerClient(api.url, credentials=api.credentials, retries_max=1)
    with pytest.raises(ConnectionFailedError) as failed:
        initiate(client, "pay-gone")
    assert (failed.value.code, failed.value.status) == ("connection_error", None)
    assert isinstance(failed.value, PayledgerError)


def test_a_merchants_payments_are_paged_with_a_cursor(
    client: PayledgerClient, api: ApiServer, monkeypatch: pytest.MonkeyPatch, dynamodb_client: Any
) -> None:
    from devstack.template import create_table
    from ledger.envelope import payment_stream_id
    from projections.payment_state import PaymentStateProjection
    from projections.payment_state_reader import PaymentStateReader

    for number in range(5):
        initiate(client, f"pay-page-{number}")
    client.assess_risk("pay-page-0", decision="decline", score="0.99", reason="fraud")
    # The listing reads the payment-state read model: project the payments into one.
    create_table(dynamodb_client, "PaymentStateTable", "payment-state-client")
    projection = PaymentStateProjection(dynamodb_client, "payment-state-client", api.service.store)
    for number in range(5):
        projection.apply(api.service.store.load(payment_stream_id(f"pay-page-{number}")))
    serve_read_model(monkeypatch, PaymentStateReader(dynamodb_client, "payment-state-client"))
    pages = [client.list_merchant_payments("m-client", limit=2)]
    while pages[-1].next_cursor is not None:
        pages.append(
            client.list_merchant_payments("m-client", limit=2, cursor=pages[-1].next_cursor)
        )
    assert [len(page.payments) for page in pages] == [2, 2, 1]
    listed = [payment["payment_id"] for page in pages for payment in page.payments]
    assert sorted(listed) == [f"pay-page-{number}" for number in range(5)]
    assert [
        p["payment_id"] for p in client.iter_merchant_payments("m-client", page_size=3)
    ] == listed
    declined = client.list_merchant_payments("m-client", status="declined")
    assert [payment["payment_id"] for payment in declined.payments] == ["pay-page-0"]
    with pytest.raises(ValidationError):
        client.list_merchant_payments("m-other", cursor=pages[0].next_cursor)


CURL = shutil.which("curl")


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_signs_as_docs_client_md_shows(api: ApiServer) -> None:
    """The `curl --aws-sigv4` of docs/client.md: any language's HTTP client can sign."""
    assert CURL is not None
    body = json.dumps(
        {
            "payment_id": "pay-curl",
            "amount": "12.34",
            "currency": "EUR",
            "merchant_id": "m-1",
            "customer_id": "c-1",
        }
    )
    signed = [CURL, "-sS", "--fail-with-body", "--aws-sigv4", "aws:amz:us-east-1:execute-api"]
    signed += ["--user", "testing:testing", "-H", "X-Amz-Security-Token: testing"]
    headers = ["-H", "Content-Type: application/json", "-H", f"Idempotency-Key: {uuid.uuid4()}"]
    posted = subprocess.run(
        [*signed, *headers, "-d", body, f"{api.url}/payments"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(posted.stdout)["payment"]["status"] == "initiated"
    read = subprocess.run(
        [*signed, f"{api.url}/payments/pay-curl?consistent=true"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(read.stdout)["payment"]["amount"] == "12.34"


def test_the_python_example_of_docs_client_md_runs(
    api: ApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    document = (Path(__file__).resolve().parents[3] / "docs" / "client.md").read_text()
    example = document.split("```python\n", 1)[1].split("```", 1)[0]
    assert "http://127.0.0.1:8321/local" in example
    exec(example.replace("http://127.0.0.1:8321/local", api.url), {})  # noqa: S102
    # The API in this process logs to stdout too; the example prints last.
    assert capsys.readouterr().out.splitlines()[-1].startswith("invalid_transition 422 ")
