"""Local HTTP gateway benchmark: requests/s through ``devstack.gateway`` against the API function
invoked directly.

Brings a local stack up in a temporary directory (``devstack.local.up``), issues a local
principal's credentials, and prints requests/s for SigV4-signed GETs of one payment and POSTs
creating new payments, sent one at a time and from ``THREADS`` threads, over HTTP through the
gateway (route, SigV4 verification, authorisation, validator, throttle, proxy integration). The
baseline in the same run is the same events invoked directly on the API function's runtime
processes (``devstack.gateway.function_pool``), without HTTP or the gateway's checks: the
difference is what the gateway costs per request.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _archive_path  # noqa: F401 - before devstack: bench/archive.py shadows the package
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack import local
from devstack.gateway import WorkerPool, function_pool, proxy_event, read_definition
from devstack.runtime import load_config

REQUESTS = 200
THREADS = 4
REGION = "us-east-1"


def idempotency_key() -> str:
    """A random key with no long digit run: a UUID's digits can pass for a card number, which
    the ledger refuses anywhere in a command (``ledger.domain.pan``)."""
    return "k-" + base64.b32encode(os.urandom(15)).decode().lower()


def body(payment_id: str) -> dict[str, Any]:
    return {
        "payment_id": payment_id,
        "amount": "12.34",
        "currency": "EUR",
        "merchant_id": f"m-{payment_id}",
        "customer_id": f"c-{payment_id}",
    }


def signed_call(api_url: str, credentials: Credentials) -> Callable[[str, str, Any], int]:
    def call(method: str, path: str, document: Any) -> int:
        data = None if document is None else json.dumps(document).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        if method == "POST":
            headers["Idempotency-Key"] = idempotency_key()
        request = AWSRequest(method, f"{api_url}{path}", data=data, headers=headers)
        SigV4Auth(credentials, "execute-api", REGION).add_auth(request)
        sent = urllib.request.Request(  # noqa: S310 - the gateway on loopback
            f"{api_url}{path}", data=data, headers=dict(request.headers), method=method
        )
        try:
            with urllib.request.urlopen(sent, timeout=30) as answer:  # noqa: S310
                answer.read()
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    return call


def direct_call(pool: WorkerPool) -> Callable[[str, str, Any], int]:
    def call(method: str, path: str, document: Any) -> int:
        headers = {"Content-Type": "application/json"}
        if method == "POST":
            headers["Idempotency-Key"] = idempotency_key()
        event = proxy_event(
            method, path, body=None if document is None else json.dumps(document), headers=headers
        )
        return int(pool.invoke(event).result["statusCode"])

    return call


def rate(call: Callable[[str, str, Any], int], method: str, threads: int) -> float:
    """Requests/s of ``REQUESTS`` requests from ``threads`` threads (every answer checked)."""
    prefix = idempotency_key()[2:10]

    def one(index: int) -> int:
        if method == "GET":
            return call("GET", "/payments/bench-read", None)
        return call("POST", "/payments", body(f"bench-{prefix}-{index}"))

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        statuses = list(executor.map(one, range(REQUESTS)))
    elapsed = time.perf_counter() - start
    expected = 200 if method == "GET" else 201
    assert set(statuses) == {expected}, sorted(set(statuses))  # every answer the expected one
    return REQUESTS / elapsed


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory) / ".payledger"
        state = local.up(home)
        try:
            figures = measure(home, state)
        finally:
            local.down(home)
    print(f"bench/gateway.py — requests/s, {REQUESTS} requests each")
    print("  request        threads  gateway (HTTP)  direct invoke  gateway / direct")
    for (method, threads), (through, direct) in figures.items():
        print(
            f"  signed {method:<7} {threads:7}  {through:14.0f}  {direct:13.0f}"
            f"  {through / direct:15.2f}"
        )
    return 0


def measure(home: Path, state: local.LocalState) -> dict[tuple[str, int], tuple[float, float]]:
    from devstack.principals import issue_credentials

    credentials = Credentials(*issue_credentials(state, "bench-agent"))
    through = signed_call(state.api_url, credentials)
    config, definition = load_config(home), read_definition(home)
    pool = function_pool(
        config.function(definition.function),
        endpoint_url=config.endpoint_url,
        region=config.region,
        database_url=config.database_url,
    ).start()
    try:
        direct = direct_call(pool)
        assert through("POST", "/payments", body("bench-read")) == 201
        for call in (through, direct):  # warm every sandbox
            rate(call, "GET", THREADS)
        return {
            (method, threads): (rate(through, method, threads), rate(direct, method, threads))
            for method in ("GET", "POST")
            for threads in (1, THREADS)
        }
    finally:
        pool.stop()


if __name__ == "__main__":
    sys.exit(main())
