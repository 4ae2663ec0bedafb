"""The on-ramp as an agent builder takes it, against one ``payledger local up`` stack: the client
alone, installed in a fresh virtual environment, pays over signed HTTP with credentials from
``payledger local credentials``; an unsigned request is refused; the README's and the client
guide's ``curl --aws-sigv4`` commands work as written; the MCP tools pay through the same
ledger; ``payledger smoke`` passes every check; and schemathesis, signing every request it
generates, finds no server error and no answer the OpenAPI document does not describe."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    missing_required_header,
    response_schema_conformance,
    status_code_conformance,
)

from payledger_client import PayledgerClient
from tests.e2e.test_local_stack import PAYLEDGER, REPO_ROOT, environment, payledger
from tests.integration.client.test_install import PAY, install_client, run

REGION = "us-east-1"
AGENT = "onramp-agent"
# A fixed key, so the documented ``$(uuidgen)`` runs on any machine and the run is repeatable.
UUIDGEN = "#!/bin/sh\necho 5f0c2d7e-aa41-4b6e-9c3d-e8b1f4a7c2d9\n"
EXAMPLES_PER_OPERATION = 25


@dataclass(frozen=True)
class LocalStack:
    directory: Path
    api_url: str
    credentials: dict[str, str]  # AWS's credential_process shape

    @property
    def aws(self) -> Credentials:
        c = self.credentials
        return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])

    def environment(self) -> dict[str, str]:
        """The caller's environment with the issued credentials, as ``eval "$(payledger local
        credentials NAME)"`` leaves it."""
        return {
            **environment(),
            "AWS_ACCESS_KEY_ID": self.credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": self.credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": self.credentials["SessionToken"],
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "API_URL": self.api_url,
        }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    directory = tmp_path_factory.mktemp("onramp")
    try:
        up = payledger(directory, "local", "up", "--json")
        assert up.returncode == 0, up.stderr
        issued = payledger(directory, "local", "credentials", AGENT, "--json")
        assert issued.returncode == 0, issued.stderr
        api_url = json.loads(up.stdout)["local"]["outputs"]["ApiUrl"]
        yield LocalStack(directory, api_url, json.loads(issued.stdout))
    finally:
        down = payledger(directory, "local", "down", "--json")
        assert down.returncode == 0, down.stderr


def test_the_client_alone_pays_over_signed_http(stack: LocalStack, tmp_path: Path) -> None:
    python = install_client(tmp_path)
    # The issued credentials and nothing of payledger's environment.
    env = {name: value for name, value in stack.environment().items() if name.startswith("AWS_")}
    env["PATH"] = os.environ["PATH"]
    # From an empty directory: only the virtual environment's packages are importable.
    script = PAY.replace("API_URL", repr(stack.api_url))
    payment = json.loads(run(python, "-c", script, cwd=tmp_path, env=env))
    assert (payment["payment_id"], payment["status"]) == ("pay-wheel", "captured")


def test_an_unsigned_request_is_refused(stack: LocalStack) -> None:
    refused = requests.post(
        f"{stack.api_url}/payments",
        json={"payment_id": "pay-unsigned"},
        headers={"Idempotency-Key": "k-unsigned"},
        timeout=10,
    )
    assert refused.status_code == 403
    assert refused.json() == {"message": "Missing Authentication Token"}
    assert refused.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"

    forged = Credentials(stack.aws.access_key, "not-the-secret", stack.aws.token)
    badly_signed = requests.get(
        f"{stack.api_url}/payments/pay-wheel", auth=SigV4RequestsAuth(forged), timeout=10
    )
    assert badly_signed.status_code == 403
    assert badly_signed.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def _documented(path: Path, start: str) -> str:
    """The first console block of ``path`` whose text contains ``start``."""
    for block in re.findall(r"```console\n(.*?)```", path.read_text(), flags=re.DOTALL):
        if start in block:
            return str(block)
    raise AssertionError(f"no console block with {start!r} in {path}")


def _documents(text: str) -> list[dict[str, Any]]:
    """The JSON documents curl printed one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        document, at = decoder.raw_decode(text, at)
        found.append(document)
        while at < len(text) and text[at].isspace():
            at += 1
    return found


def test_curl_signs_as_the_docs_show(stack: LocalStack, tmp_path: Path) -> None:
    bin_directory = tmp_path / "bin"
    bin_directory.mkdir()
    (bin_directory / "uuidgen").write_text(UUIDGEN)
    (bin_directory / "uuidgen").chmod(stat.S_IRWXU)
    env = {**stack.environment(), "PATH": f"{bin_directory}:{os.environ['PATH']}"}

    readme = _documented(REPO_ROOT / "README.md", "curl --aws-sigv4")
    created = _documents(run("bash", "-c", readme, cwd=tmp_path, env=env))
    assert [(d["payment"]["payment_id"], d["payment"]["status"]) for d in created] == [
        ("pay-3", "initiated")
    ]

    guide = _documented(REPO_ROOT / "docs" / "client.md", "--aws-sigv4").replace(
        "http://127.0.0.1:8321/local", stack.api_url
    )
    initiated, read = _documents(run("bash", "-c", guide, cwd=tmp_path, env=env))
    assert initiated["payment"]["payment_id"] == "order-1043"
    assert (read["payment"]["payment_id"], read["payment"]["status"]) == ("order-1043", "initiated")


def test_the_mcp_tools_pay_through_the_same_ledger(stack: LocalStack) -> None:
    parameters = StdioServerParameters(
        command=PAYLEDGER[0],
        args=[*PAYLEDGER[1:], "mcp", "--api-url", stack.api_url],
        env=stack.environment(),
        cwd=stack.directory,
    )
    calls: list[tuple[str, dict[str, Any]]] = [
        (
            "initiate_payment",
            {
                "body": {
                    "payment_id": "pay-mcp",
                    "amount": "25.00",
                    "currency": "EUR",
                    "merchant_id": "m-mcp",
                    "customer_id": "c-mcp",
                }
            },
        ),
        (
            "assess_risk",
            {
                "payment_id": "pay-mcp",
                "body": {"decision": "approve", "score": "0.05", "reason": "ok"},
            },
        ),
        ("authorize_payment", {"payment_id": "pay-mcp", "body": {"processor": "acme"}}),
        ("capture_payment", {"payment_id": "pay-mcp", "body": {"amount": "25.00", "final": True}}),
    ]

    async def scenario() -> list[Any]:
        async with Client(parameters) as session:
            return [await session.call_tool(name, arguments) for name, arguments in calls]

    results = asyncio.run(scenario())
    assert [result.is_error for result in results] == [False] * len(calls)
    assert (results[-1].structured_content or {})["payment"]["status"] == "captured"

    with PayledgerClient(stack.api_url, credentials=stack.aws, region=REGION) as client:
        payment = client.get_payment("pay-mcp", consistent=True)
    assert (payment["status"], payment["amount_captured_minor"]) == ("captured", 2500)
    history = payledger(stack.directory, "history", "pay-mcp", "--json")
    assert history.returncode == 0, history.stderr
    assert [event["event_type"] for event in json.loads(history.stdout)["events"]] == [
        "PaymentInitiated",
        "RiskAssessed",
        "PaymentAuthorized",
        "PaymentCaptured",
    ]


def test_smoke_passes_every_check_on_the_local_stack(stack: LocalStack) -> None:
    done = run(
        *PAYLEDGER,
        *("smoke", "--json", "--timeout", "90"),
        cwd=stack.directory,
        env=stack.environment(),
    )
    checks = {check["name"]: check for check in json.loads(done)["checks"]}
    assert set(checks) == {
        "payment over the API",
        "read your writes",
        "read model",
        "views",
        "archive",
        "proof",
    }
    assert {name: check["passed"] for name, check in checks.items()} == dict.fromkeys(checks, True)


# ── schemathesis ─────────────────────────────────────────────────────────────────────────────


class SigV4RequestsAuth(requests.auth.AuthBase):
    """Signs each request schemathesis sends as an agent's SDK would (service execute-api)."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        signed = AWSRequest(
            method=request.method,
            url=request.url,
            headers={
                name: value
                for name, value in request.headers.items()
                if name.lower() not in ("connection", "accept-encoding", "user-agent")
            },
            data=body or b"",
        )
        SigV4Auth(self._credentials, "execute-api", REGION).add_auth(signed)
        request.headers.update(dict(signed.headers.items()))
        return request


@pytest.fixture(scope="module")
def api_schema(stack: LocalStack) -> Any:
    written = payledger(stack.directory, "api", "openapi", "--server", stack.api_url)
    assert written.returncode == 0, written.stderr
    schema = schemathesis.openapi.from_dict(json.loads(written.stdout))
    schema.config.update(base_url=stack.api_url)
    schema.auth.set_from_requests(SigV4RequestsAuth(stack.aws))
    return schema


@pytest.fixture(scope="module")
def payments(stack: LocalStack) -> list[str]:
    """Payments in several states, so generated commands and reads also meet existing ones."""
    with PayledgerClient(stack.api_url, credentials=stack.aws, region=REGION) as client:
        for payment_id, steps in (("st-initiated", 0), ("st-authorized", 2), ("st-captured", 3)):
            client.initiate_payment(
                payment_id=payment_id,
                amount="10.00",
                currency="EUR",
                merchant_id="st-merchant",
                customer_id="st-customer",
            )
            if steps >= 1:
                client.assess_risk(payment_id, decision="approve", score="0.1", reason="ok")
            if steps >= 2:
                client.authorize_payment(payment_id)
            if steps >= 3:
                client.capture_payment(payment_id, amount="10.00")
    return ["st-initiated", "st-authorized", "st-captured"]


def _on_existing(operation: Any, payment_ids: list[str]) -> st.SearchStrategy[Any]:
    """The operation's generated cases, half of them aimed at an existing payment."""
    if "payment_id" not in {parameter.name for parameter in operation.path_parameters}:
        return operation.as_strategy()

    def aimed(pair: tuple[Any, str | None]) -> Any:
        case, payment_id = pair
        if payment_id is not None:
            case.path_parameters = {**(case.path_parameters or {}), "payment_id": payment_id}
        return case

    targets = st.one_of(st.none(), st.sampled_from(payment_ids))
    return st.tuples(operation.as_strategy(), targets).map(aimed)


def test_the_api_answers_as_its_openapi_document_says(api_schema: Any, payments: list[str]) -> None:
    failures: dict[str, str] = {}
    answered: Counter[int] = Counter()
    for operation in (result.ok() for result in api_schema.get_all_operations()):

        @given(case=_on_existing(operation, payments))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: Any) -> None:
            response = case.call_and_validate(
                checks=[not_a_server_error, response_schema_conformance, status_code_conformance],
                excluded_checks=[missing_required_header],  # expects 401; API Gateway says 403
            )
            answered[response.status_code] += 1

        try:
            conforms()
        except Exception as failure:  # noqa: BLE001 - every operation's failure, reported at once
            failures[operation.label] = str(failure)
    print(f"schemathesis: {sum(answered.values())} signed requests, statuses {dict(answered)}")
    assert failures == {}
