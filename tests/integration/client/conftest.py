"""The payments API over real HTTP for the client's and the MCP server's tests.

``api`` serves ``handlers.api`` on a loopback port, as API Gateway would for stage ``local``:
it refuses a request whose SigV4 signature (service ``execute-api``) does not verify, with API
Gateway's 403 answers, and hands the rest to the API's Lambda handler as proxy events, the routes
running on a memory-store ``PaymentService``. Tests may queue ``faults``: answers given instead
of the API's (429, 503) or a connection closed after the API has answered (the answer is lost).
Only ``url`` and ``credentials`` are what a real gateway also has.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from devstack.gateway import proxy_event
from ledger.memory import MemoryEventStore
from ledger.service import PaymentService
from payledger_client import PayledgerClient
from tests.lambda_context import FakeLambdaContext

with pytest.MonkeyPatch.context() as _patch:
    # The API wires its DynamoDB service at import (a client, no call); the tests inject theirs.
    _patch.setenv("EVENTS_TABLE", "payledger-client-tests-never-called")
    from handlers.api import handler
    from handlers.api.dependencies import payment_service, payment_state_reader
    from handlers.api.resolver import app

STAGE = "local"
REGION = "us-east-1"
ACCOUNT = "123456789012"
# Principals the gateway knows: the tests' own, and the process's (tests/conftest.py sets the
# default chain's environment to testing/testing/testing).
PRINCIPALS = {
    "AKIACLIENTTESTS": ("client-tests-secret", None),
    "testing": ("testing", "testing"),
}
CLOCK_SKEW = timedelta(minutes=5)

Fault = Literal["throttle", "unavailable", "drop"]


@dataclass
class ApiServer:
    url: str
    credentials: Credentials
    service: PaymentService
    received: list[dict[str, str]] = field(default_factory=list)
    """The headers (lower-cased names) of every signed request, in order."""
    faults: deque[Fault] = field(default_factory=deque)
    """What to do instead of answering the next requests: ``throttle`` (429), ``unavailable``
    (503), or ``drop`` (the API records the request, the connection closes unanswered)."""


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    service = PaymentService(MemoryEventStore(), sleep=lambda _: None)
    monkeypatch.setitem(app.dependency_overrides, payment_service, lambda: service)
    monkeypatch.setitem(app.dependency_overrides, payment_state_reader, lambda: None)
    akid = "AKIACLIENTTESTS"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    state = ApiServer(
        url=f"http://127.0.0.1:{server.server_address[1]}/{STAGE}",
        credentials=Credentials(akid, PRINCIPALS[akid][0]),
        service=service,
    )
    server.api = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def client(api: ApiServer) -> Iterator[PayledgerClient]:
    with PayledgerClient(api.url, credentials=api.credentials, timeout_s=5) as payledger:
        yield payledger


def serve_read_model(monkeypatch: pytest.MonkeyPatch, read_model: object) -> None:
    """The API reads current payments from ``read_model`` (a ``PaymentStateReader``'s
    methods) until ``monkeypatch`` is undone; by default it has none and folds the events."""
    monkeypatch.setitem(app.dependency_overrides, payment_state_reader, lambda: read_model)


class _Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows the failing test's own output."""

    def _serve(self) -> None:
        api: ApiServer = self.server.api  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        refusal = _refusal(self.command, self.path, dict(self.headers.items()), body)
        if refusal is not None:
            self._answer(403, {"x-amzn-ErrorType": refusal[0]}, json.dumps({"message": refusal[1]}))
            return
        api.received.append({name.lower(): value for name, value in self.headers.items()})
        fault = api.faults.popleft() if api.faults else None
        if fault == "throttle":
            self._answer(429, {}, json.dumps({"message": "Too Many Requests"}))
            return
        if fault == "unavailable":
            self._answer(503, {}, json.dumps({"message": "Service Unavailable"}))
            return
        status, headers, text = _invoke(self.command, self.path, dict(self.headers.items()), body)
        if fault == "drop":
            self.close_connection = True
            return
        self._answer(status, headers, text)

    def _answer(self, status: int, headers: dict[str, str], text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            if name.lower() not in ("content-type", "content-length"):
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _invoke(method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, str]:
    """The API's answer to the request, through its Lambda handler, as API Gateway calls it."""
    parts = urlsplit(target)
    path = unquote(parts.path).removeprefix(f"/{STAGE}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    akid = _authorization(headers["Authorization"])["Credential"].split("/")[0]
    event = proxy_event(
        method,
        path,
        body=body.decode() if body else None,
        headers=headers,
        query=query or None,
        identity={
            "caller": akid,
            "accessKey": akid,
            "userArn": f"arn:aws:iam::{ACCOUNT}:user/{akid}",
        },
    )
    response = handler(event, FakeLambdaContext("payledger-api"))
    answered = {name: values[-1] for name, values in response["multiValueHeaders"].items()}
    return response["statusCode"], answered, response["body"]


# ── SigV4, verified as API Gateway does ───────────────────────────────────────────────────────


def _refusal(
    method: str, target: str, headers: dict[str, str], body: bytes
) -> tuple[str, str] | None:
    """API Gateway's (error type, message) for a request it refuses, None for a valid one."""
    lower = {name.lower(): value for name, value in headers.items()}
    if "authorization" not in lower:
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    fields = _authorization(lower["authorization"])
    akid, _, region, service, _ = fields["Credential"].split("/")
    principal = PRINCIPALS.get(akid)
    token = lower.get("x-amz-security-token")
    if principal is None or token != principal[1]:
        return (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    timestamp = lower.get("x-amz-date", "")
    signed_at = datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if abs(datetime.now(UTC) - signed_at) > CLOCK_SKEW or (region, service) != (
        REGION,
        "execute-api",
    ):
        return "InvalidSignatureException", "Signature expired or for another region or service"
    parts = urlsplit(target)
    request = AWSRequest(
        method,
        f"http://{lower['host']}{parts.path}",
        headers={name: lower[name] for name in fields["SignedHeaders"].split(";")},
        params=parse_qsl(parts.query, keep_blank_values=True),
    )
    request.context["timestamp"] = timestamp
    verifier = _Verifier(Credentials(akid, principal[0], token), fields["SignedHeaders"].split(";"))
    verifier.body_hash = hashlib.sha256(body).hexdigest()
    expected = verifier.signature(
        verifier.string_to_sign(request, verifier.canonical_request(request)), request
    )
    if not hmac.compare_digest(expected, fields["Signature"]):
        return (
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return None


def _authorization(value: str) -> dict[str, str]:
    _, _, rest = value.partition(" ")
    return dict(part.strip().split("=", 1) for part in rest.split(","))


class _Verifier(SigV4Auth):
    """botocore's signer on a received request: exactly its signed headers, its body's hash."""

    body_hash = ""

    def __init__(self, credentials: Credentials, signed_headers: list[str]) -> None:
        super().__init__(credentials, "execute-api", REGION)
        self._signed_headers = signed_headers

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        signed = HTTPHeaders()
        for name in self._signed_headers:
            signed[name] = request.headers[name]
        return signed

    def payload(self, request: AWSRequest) -> str:
        return self.body_hash
