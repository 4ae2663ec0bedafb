"""``payledger mcp`` with the MCP SDK's own client: its tools pay through the API over HTTP
(the in-test gateway verifies every signature), and refusals come back as the API's codes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from cli.mcp_server import build_server
from payledger_client import PayledgerClient
from tests.integration.client.conftest import ApiServer

ROOT = Path(__file__).resolve().parents[3]
TOOLS = {
    "initiate_payment",
    "assess_risk",
    "authorize_payment",
    "fail_payment",
    "capture_payment",
    "void_payment",
    "refund_payment",
    "settle_payment",
    "expire_payment",
    "get_payment",
    "get_payment_events",
    "list_merchant_payments",
}
INITIATE = {
    "body": {
        "payment_id": "pay-mcp",
        "amount": "25.00",
        "currency": "EUR",
        "merchant_id": "m-mcp",
        "customer_id": "c-mcp",
    }
}


async def _pay(session: Client) -> list[CallToolResult]:
    """initiate → assess_risk → authorize → capture, then read the payment back."""
    calls: list[tuple[str, dict[str, Any]]] = [
        ("initiate_payment", INITIATE),
        (
            "assess_risk",
            {
                "payment_id": "pay-mcp",
                "body": {"decision": "approve", "score": "0.05", "reason": "known customer"},
            },
        ),
        ("authorize_payment", {"payment_id": "pay-mcp", "body": {"processor": "acme"}}),
        ("capture_payment", {"payment_id": "pay-mcp", "body": {"amount": "25.00", "final": True}}),
        ("get_payment", {"payment_id": "pay-mcp", "min_version": 4}),
    ]
    return [await session.call_tool(name, arguments) for name, arguments in calls]


def test_the_tools_pay_through_the_api(client: PayledgerClient) -> None:
    async def scenario() -> tuple[set[str], list[CallToolResult], CallToolResult, CallToolResult]:
        async with Client(build_server(client)) as session:
            listed = {tool.name for tool in (await session.list_tools()).tools}
            results = await _pay(session)
            replayed = await session.call_tool(
                "initiate_payment",
                {**INITIATE, "idempotency_key": results[0].structured_content["idempotency_key"]},
            )
            events = await session.call_tool("get_payment_events", {"payment_id": "pay-mcp"})
            return listed, results, replayed, events

    listed, results, replayed, events = asyncio.run(scenario())
    assert listed == TOOLS
    assert not any(result.is_error for result in results)
    documents = [result.structured_content or {} for result in results]
    assert [document["payment"]["status"] for document in documents] == [
        "initiated",
        "approved",
        "authorized",
        "captured",
        "captured",
    ]
    assert documents[-1]["payment"]["amount_captured_minor"] == 2500
    assert (replayed.structured_content or {})["replayed"] is True
    assert len((events.structured_content or {})["events"]) == 4


def test_a_refusal_is_an_error_result_with_the_api_code(client: PayledgerClient) -> None:
    async def scenario() -> tuple[CallToolResult, CallToolResult]:
        async with Client(build_server(client)) as session:
            missing = await session.call_tool("get_payment", {"payment_id": "pay-nowhere"})
            await session.call_tool("initiate_payment", INITIATE)
            early = await session.call_tool(
                "capture_payment", {"payment_id": "pay-mcp", "body": {"amount": "1.00"}}
            )
            return missing, early

    missing, early = asyncio.run(scenario())
    assert missing.is_error
    assert early.is_error
    assert (missing.structured_content or {})["error"]["code"] == "not_found"
    assert (early.structured_content or {})["error"]["code"] == "invalid_transition"
    assert '"invalid_transition"' in early.content[0].text  # type: ignore[union-attr]


def test_payledger_mcp_serves_over_stdio_with_its_process_credentials(api: ApiServer) -> None:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cli", "mcp", "--api-url", api.url],
        env={
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PAYLEDGER_HOME": os.environ["PAYLEDGER_HOME"],
        },
        cwd=ROOT,
    )

    async def scenario() -> tuple[set[str], list[CallToolResult]]:
        async with Client(parameters) as session:
            listed = {tool.name for tool in (await session.list_tools()).tools}
            return listed, await _pay(session)

    listed, results = asyncio.run(scenario())
    assert listed == TOOLS
    assert (results[-1].structured_content or {})["payment"]["status"] == "captured"
    assert {headers["x-amz-security-token"] for headers in api.received} == {"testing"}


def test_the_tool_models_import_without_an_api_environment() -> None:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("EVENTS_TABLE", "AWS_DEFAULT_REGION", "AWS_REGION")
    }
    imported = subprocess.run(
        [sys.executable, "-c", "import cli.mcp_server"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr[-500:]
