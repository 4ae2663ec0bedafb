"""The local gateway's parts that need no server: the proxy event and its identity as AWS builds
them for an assumed role, route matching, SigV4 refusals, and the throttle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.gateway import (
    ApiDefinition,
    Refused,
    Route,
    SignedRequest,
    TokenBucket,
    authenticate,
    identity_of,
    proxy_event,
)

ACCOUNT = "123456789012"
KEY, SECRET, TOKEN = "ASIAEXAMPLE", "secret", "token"
ASSUMED_ROLE: dict[str, Any] = {
    "kind": "assumed-role",
    "account_id": ACCOUNT,
    "secret_access_key": SECRET,
    "session_token": TOKEN,
    "status": "Active",
    "expiration": "2999-01-01T00:00:00Z",
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/risk-agent/risk-agent",
    "caller_id": "AROAEXAMPLEROLEID:risk-agent",
    "policies": [],
}


def test_the_event_of_an_assumed_role_carries_its_identity_as_aws_fills_it() -> None:
    event = proxy_event(
        "POST",
        "/payments/p-1/captures",
        body='{"amount": "1.00"}',
        headers={"Idempotency-Key": "k-1"},
        identity=identity_of(ASSUMED_ROLE, access_key=KEY, user_agent="agent/1.0"),
        resource="/payments/{id}/captures",
        path_parameters={"id": "p-1"},
        api_id="abc123",
    )
    APIGatewayProxyEventModel.model_validate(event)
    assert event["resource"] == event["requestContext"]["resourcePath"]
    assert event["pathParameters"] == {"id": "p-1"}
    assert event["requestContext"]["path"] == "/local/payments/p-1/captures"
    assert (event["requestContext"]["apiId"], event["requestContext"]["stage"]) == (
        "abc123",
        "local",
    )
    assert event["requestContext"]["identity"] == {
        "cognitoIdentityPoolId": None,
        "accountId": ACCOUNT,
        "cognitoIdentityId": None,
        "caller": "AROAEXAMPLEROLEID:risk-agent",
        "sourceIp": "127.0.0.1",
        "principalOrgId": None,
        "accessKey": KEY,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": f"arn:aws:sts::{ACCOUNT}:assumed-role/risk-agent/risk-agent",
        "userAgent": "agent/1.0",
        "user": "AROAEXAMPLEROLEID:risk-agent",
        "apiKey": None,
        "apiKeyId": None,
    }


def test_the_default_event_is_the_proxy_resource() -> None:
    event = proxy_event("GET", "/payments/p-1", query={"version": "2"})
    assert event["pathParameters"] == {"proxy": "payments/p-1"}
    assert event["multiValueQueryStringParameters"] == {"version": ["2"]}


def definition() -> ApiDefinition:
    return ApiDefinition(
        api_id="abc123",
        stage="local",
        region="us-east-1",
        account_id=ACCOUNT,
        function="api",
        routes=[
            Route("/payments", {"POST": ["Idempotency-Key"]}),
            Route("/payments/{id}/captures", {"POST": ["Idempotency-Key"]}),
            Route("/{proxy+}", {"ANY": []}),
        ],
        gateway_responses={},
        rate_limit=1,
        burst_limit=1,
    )


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/payments/p-1/captures", ("/payments/{id}/captures", {"id": "p-1"})),
        ("GET", "/payments/p-1/captures/x", ("/{proxy+}", {"proxy": "payments/p-1/captures/x"})),
        ("GET", "/payments/p-1", ("/{proxy+}", {"proxy": "payments/p-1"})),
        ("GET", "/payments", None),  # the resource exists without GET: no fallback
        ("GET", "/", None),
    ],
)
def test_the_most_specific_resource_answers(
    method: str, path: str, expected: tuple[str, dict[str, str]] | None
) -> None:
    found = definition().route(method, path)
    assert (None if found is None else (found[0].resource, found[1])) == expected


def signed(secret: str = SECRET, *, body: bytes = b"{}") -> SignedRequest:
    request = AWSRequest("POST", "http://127.0.0.1:8080/local/payments", data=body)
    SigV4Auth(Credentials(KEY, secret, TOKEN), "execute-api", "us-east-1").add_auth(request)
    headers = {name.lower(): str(value) for name, value in request.headers.items()}
    return SignedRequest("POST", "/local/payments", "", {**headers, "host": "127.0.0.1:8080"}, body)


def lookup(key: str) -> dict[str, Any] | None:
    return ASSUMED_ROLE if key == KEY else None


def refusal(request: SignedRequest, **kwargs: Any) -> tuple[str | None, str]:
    with pytest.raises(Refused) as refused:
        authenticate(request, lookup, region="us-east-1", **kwargs)
    return refused.value.error_type, refused.value.body["message"]


def test_a_correctly_signed_request_authenticates() -> None:
    authorization, principal = authenticate(signed(), lookup, region="us-east-1")
    assert (authorization.access_key_id, principal["arn"]) == (KEY, ASSUMED_ROLE["arn"])


def test_a_wrong_secret_is_refused() -> None:
    assert refusal(signed("not-the-secret"))[0] == "InvalidSignatureException"


def test_a_changed_body_breaks_the_signature() -> None:
    request = signed()
    tampered = SignedRequest(request.method, request.raw_path, "", request.headers, b"{ }")
    assert refusal(tampered)[0] == "InvalidSignatureException"


def test_an_expired_session_is_refused() -> None:
    later = datetime(3000, 1, 1, tzinfo=UTC)
    assert refusal(signed(), now=later) == (
        "ExpiredTokenException",
        "The security token included in the request is expired",
    )


def test_a_signature_older_than_five_minutes_is_refused() -> None:
    error_type, message = refusal(signed(), now=datetime.now(UTC) + timedelta(minutes=6))
    assert error_type == "InvalidSignatureException"
    assert message.startswith("Signature expired: ")


def test_the_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5
    assert [bucket.take(), bucket.take()] == [True, False]
