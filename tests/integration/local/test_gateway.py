"""The local HTTP gateway of a whole local stack (``devstack.local.up``), over real HTTP: signed
requests pay and read through the API function's runtime, and what API Gateway refuses (no or a
bad signature, an unknown key, a principal without the permission, a missing Idempotency-Key,
too many requests) is refused with API Gateway's answers."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from devstack import local
from devstack.gateway import GatewayServer, gateway_for
from devstack.principals import issue_credentials

REGION = "us-east-1"


def idempotency_key() -> str:
    """A random key with no long digit run: a UUID's digits can pass for a card number, which
    the ledger refuses anywhere in a command (``ledger.domain.pan``)."""
    return "k-" + base64.b32encode(os.urandom(15)).decode().lower()


CURL = shutil.which("curl")
Triple = tuple[str, str, str]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: dict[str, Any]


def call(
    method: str,
    url: str,
    credentials: Triple | None,
    *,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One request, SigV4-signed for execute-api when ``credentials`` are given."""
    data = None if body is None else json.dumps(body).encode()
    request = AWSRequest(method, url, data=data, headers=dict(headers or {}))
    if data is not None:
        request.headers["Content-Type"] = "application/json"
    if credentials is not None:
        SigV4Auth(Credentials(*credentials), "execute-api", REGION).add_auth(request)
    sent = urllib.request.Request(  # noqa: S310 - the gateway on loopback
        url, data=data, headers=dict(request.headers), method=method
    )
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:  # noqa: S310 - loopback
            status, answer_headers, text = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, text = error.code, dict(error.headers), error.read()
    return Answer(status, answer_headers, json.loads(text) if text else {})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.LocalState]:
    home = tmp_path_factory.mktemp("gateway") / ".payledger"
    state = local.up(home)
    try:
        yield state
    finally:
        local.down(home)


@pytest.fixture(scope="module")
def agent(stack: local.LocalState) -> Triple:
    return issue_credentials(stack, "checkout-agent")


def payment(payment_id: str) -> dict[str, Any]:
    return {
        "payment_id": payment_id,
        "amount": "12.34",
        "currency": "EUR",
        "merchant_id": "m-1",
        "customer_id": "c-1",
    }


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key()}


def test_the_url_is_the_stacks_api_url(stack: local.LocalState) -> None:
    assert stack.api_url.startswith("http://127.0.0.1:")
    assert stack.api_url.endswith("/local")
    assert local.status(Path(stack.home)).to_dict()["state"]["outputs"]["ApiUrl"] == stack.api_url


def test_a_signed_request_creates_and_reads_a_payment(
    stack: local.LocalState, agent: Triple
) -> None:
    created = call(
        "POST", f"{stack.api_url}/payments", agent, body=payment("gw-1"), headers=new_key()
    )
    assert created.status == 201, created.body
    assert created.headers["Location"] == "/payments/gw-1"
    # The caller is the assumed role's ROLEID:SESSION, as API Gateway passes it.
    caller = created.body["events"][0]["actor"]["id"]
    assert caller.startswith("AROA")
    assert caller.endswith(":checkout-agent")
    read = call("GET", f"{stack.api_url}/payments/gw-1", agent)
    assert read.status == 200
    assert read.body["payment"]["status"] == "initiated"


def test_an_unsigned_request_is_missing_its_token(stack: local.LocalState) -> None:
    answer = call("GET", f"{stack.api_url}/payments/gw-1", None)
    assert (answer.status, answer.body) == (403, {"message": "Missing Authentication Token"})
    assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_a_path_without_a_resource_is_missing_its_token(
    stack: local.LocalState, agent: Triple
) -> None:
    assert call("GET", f"{stack.api_url}/payments", agent).status == 403
    assert call("GET", stack.api_url.removesuffix("/local") + "/other/x", agent).status == 403


def test_a_wrong_secret_is_an_invalid_signature(stack: local.LocalState, agent: Triple) -> None:
    key, _, token = agent
    answer = call("GET", f"{stack.api_url}/payments/gw-1", (key, "wrong-secret", token))
    assert answer.status == 403
    assert answer.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert answer.body["message"].startswith("The request signature we calculated does not match")


def test_an_unknown_key_is_unrecognized(stack: local.LocalState) -> None:
    answer = call("GET", f"{stack.api_url}/payments/gw-1", ("ASIANOTISSUED", "s", "t"))
    assert answer.status == 403
    assert answer.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    assert answer.body == {"message": "The security token included in the request is invalid."}


def test_a_principal_without_invoke_is_denied(stack: local.LocalState) -> None:
    options: dict[str, Any] = {
        "endpoint_url": stack.endpoint_url,
        "region_name": REGION,
        "config": Config(account_id_endpoint_mode="disabled"),
    }
    iam, sts = boto3.client("iam", **options), boto3.client("sts", **options)
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(RoleName="no-invoke", AssumeRolePolicyDocument=json.dumps(trust))
    issued = sts.assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="no-invoke")[
        "Credentials"
    ]
    triple = (issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])
    answer = call("GET", f"{stack.api_url}/payments/gw-1", triple)
    assert answer.status == 403
    assert answer.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert "is not authorized to perform: execute-api:Invoke" in answer.body["Message"]


def test_a_command_without_idempotency_key_is_refused_by_the_validator(
    stack: local.LocalState, agent: Triple
) -> None:
    answer = call("POST", f"{stack.api_url}/payments", agent, body=payment("gw-2"))
    assert answer.status == 400
    assert answer.body == {
        "error": {
            "code": "validation_error",
            "message": "Missing required request parameters: [Idempotency-Key]",
        }
    }


def test_too_many_requests_are_throttled_with_the_templates_answer(
    stack: local.LocalState, agent: Triple
) -> None:
    gateway, pool = gateway_for(Path(stack.home), rate_limit=0.01, burst_limit=2)
    server = GatewayServer(gateway).start()
    try:
        statuses = [call("GET", f"{server.url}/payments/no-such", agent) for _ in range(3)]
    finally:
        server.stop()
        pool.stop()
    assert [answer.status for answer in statuses] == [404, 404, 429], [
        (answer.status, answer.body) for answer in statuses
    ]
    assert statuses[2].body["error"]["code"] == "throttled"


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_signs_as_the_documentation_shows(stack: local.LocalState, agent: Triple) -> None:
    key, secret, token = agent
    signing = [
        *("--aws-sigv4", f"aws:amz:{REGION}:execute-api", "--user", f"{key}:{secret}"),
        *("-H", f"x-amz-security-token: {token}", "--silent", "--write-out", "\n%{http_code}"),
    ]
    created = subprocess.run(
        [
            str(CURL),
            *signing,
            *(
                "-H",
                "Content-Type: application/json",
                "-H",
                f"Idempotency-Key: {idempotency_key()}",
            ),
            *("-d", json.dumps(payment("gw-curl")), f"{stack.api_url}/payments"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert created.stdout.rsplit("\n", 1)[1] == "201", created.stdout
    read = subprocess.run(
        [str(CURL), *signing, f"{stack.api_url}/payments/gw-curl"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    body, status = read.stdout.rsplit("\n", 1)
    assert status == "200"
    assert json.loads(body)["payment"]["payment_id"] == "gw-curl"
