"""The MCP server of ``payledger mcp``: the API's payment commands and reads as tools for LLM
agents, each named after the client method (and API operation) it calls.

A command tool takes the API's request body (``handlers.api.models``) as ``body``, and optionally
the ``idempotency_key`` to retry a call whose answer was lost (the ledger then replays it rather
than recording it twice) and the ``correlation_id`` of the flow. Every call goes over HTTP through
``payledger_client``, signed with the credentials the server was started with. A refused call is
an error result whose structured content is the API's ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from handlers.api.models import (
    AssessRiskBody,
    AuthorizePaymentBody,
    CapturePaymentBody,
    FailPaymentBody,
    InitiatePaymentBody,
    RefundPaymentBody,
    SettlePaymentBody,
    VoidPaymentBody,
)
from payledger_client import CommandResult, PayledgerClient, PayledgerError, Status
from payledger_client.client import LIMIT_DEFAULT, LIMIT_MAX

INSTRUCTIONS = """\
payledger records payments as an append-only, hash-chained ledger. A payment goes
initiate_payment -> assess_risk (approve|review|decline) -> authorize_payment -> capture_payment
(one or more) -> settle_payment, with refund_payment after a capture and void_payment,
expire_payment or fail_payment ending an authorization. Amounts are decimal strings in major
units ("12.34"), never numbers. If a command's answer is lost, call it again with the
idempotency_key it was given (or that you chose): the ledger replays the first result instead of
recording the command twice. Errors carry the API's code, e.g. invalid_transition or not_found."""

PaymentId = Annotated[str, Field(description="The payment's id (letters, digits, _ . : -)")]
IdempotencyKey = Annotated[
    str | None,
    Field(
        description="Retry a call whose answer was lost with its key: the ledger replays it. "
        "Default: a new UUID."
    ),
]
CorrelationId = Annotated[str | None, Field(description="The id of the flow this call is part of")]

_READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)


def build_server(client: PayledgerClient) -> MCPServer:
    """An MCP server whose tools call the API through ``client``."""
    server = MCPServer(name="payledger", instructions=INSTRUCTIONS)
    tools = PaymentTools(client)
    for command in (
        tools.initiate_payment,
        tools.assess_risk,
        tools.authorize_payment,
        tools.fail_payment,
        tools.capture_payment,
        tools.void_payment,
        tools.refund_payment,
        tools.settle_payment,
        tools.expire_payment,
    ):
        server.add_tool(command, name=command.__name__, annotations=_WRITE)
    for query in (tools.get_payment, tools.get_payment_events, tools.list_merchant_payments):
        server.add_tool(query, name=query.__name__, annotations=_READ_ONLY)
    return server


class PaymentTools:
    """The tools, one per API operation; each answers a ``CallToolResult`` (data or error)."""

    def __init__(self, client: PayledgerClient) -> None:
        self._client = client

    def initiate_payment(
        self,
        body: InitiatePaymentBody,
        idempotency_key: IdempotencyKey = None,
        correlation_id: CorrelationId = None,
    ) -> CallToolResult:
        """Initiate a payment whose id you choose (so retrying the same request is safe)."""
        return _command(self._client.initiate_payment, body, idempotency_key, correlation_id)

    def assess_risk(
        self,
        payment_id: PaymentId,
        body: AssessRiskBody,
        idempotency_key: IdempotencyKey = None,
        correlation_id: CorrelationId = None,
    ) -> CallToolResult:
        """Record a risk decision (approve, review or decline) with its score and reason."""
        return _command(self._client.assess_risk, body, idempotency_key, correlation_id, payment_id)

    def authorize_payment(
        self,
        payment_id: PaymentId,
        body: AuthorizePaymentBody | None = None,
        idempotency_key: IdempotencyKey = None,
        correlation_id: CorrelationId = None,
    ) -> CallToolResult:
        """Authorize an approved payment: a hold on its amount until hold_until (default 7 days)."""
        return _command(
            self._client.authorize_payment, body, idempotency_key, correlation_id, payment_id
        )

    def fail_payment(
        self,
        payment_id: PaymentId,
        body: FailPaymentBody,
        idempotency_key: IdempotencyKey = None,
        correlation_id: CorrelationId = None,
    ) -> CallToolResult:
        """Record that the processor refused an approved payment."""
        return _command(
            self._client.fail_payment, body, idempotency_key, correlation_id, payment_id
        )

    def capture_payment(
        self,
        payment_id: PaymentId,
        body: CapturePaymentBody,
        idempotency_key: IdempotencyKey = None,
        correlation_id: CorrelationId = None,
    ) -> CallToolResult:
        """Capture part or all of the authorized amount (final=true releases the rest)."""
        return _command(
            self._client.capture_payment, body, idempotency_key, correlation_id, payment_id
        )

    def void_payment(
        self,
        payment_id: PaymentId,
        body: VoidPaymentBody | None = None,
        idempotency_key: IdempotencyKey = None,
        correlation_id: CorrelationId = None,
    ) -> CallToolResult:
        """Release what remains of the authorization hold."""
        return _command(
            self._client.void_payment, body, idempotency_key, correlation_id, payment_id
        )

    def refund_payment(
        self,
        payment_id: PaymentId,
        body: RefundPaymentBody,
        idempotency_key: IdempotencyKey = None,
        correlation_id: CorrelationId = None,
    ) -> CallToolResult:
        """Refund part or all of the captured amount."""
        return _command(
            self._client.refund_payment, body, idempotency_key, correlation_id, payment_id
        )

    def settle_payment(
        self,
        payment_id: PaymentId,
        body: SettlePaymentBody | None = None,
        idempotency_key: IdempotencyKey = None,
        correlation_id: CorrelationId = None,
    ) -> CallToolResult:
        """Settle the net captured amount with the merchant."""
        return _command(
            self._client.settle_payment, body, idempotency_key, correlation_id, payment_id
        )

    def expire_payment(
        self,
        payment_id: PaymentId,
        idempotency_key: IdempotencyKey = None,
        correlation_id: CorrelationId = None,
    ) -> CallToolResult:
        """Release the hold of an authorization whose hold_until has passed."""
        return _command(
            self._client.expire_payment, None, idempotency_key, correlation_id, payment_id
        )

    def get_payment(
        self,
        payment_id: PaymentId,
        min_version: Annotated[
            int | None, Field(description="Read your write: at least this version")
        ] = None,
        version: Annotated[int | None, Field(description="The payment after this version")] = None,
        as_of: Annotated[str | None, Field(description="As recorded at this ISO-8601 time")] = None,
        consistent: Annotated[
            bool, Field(description="Fold the events instead of reading the read model")
        ] = False,
    ) -> CallToolResult:
        """The payment now (at least min_version, e.g. the version a command returned), after a
        given version, or as recorded at a given time."""
        return _answer(
            lambda: {
                "payment": self._client.get_payment(
                    payment_id,
                    min_version=min_version,
                    version=version,
                    as_of=as_of,
                    consistent=consistent,
                )
            }
        )

    def get_payment_events(self, payment_id: PaymentId) -> CallToolResult:
        """The payment's whole history: every event, oldest first, hash-chained."""
        return _answer(lambda: {"events": self._client.get_payment_events(payment_id)})

    def list_merchant_payments(
        self,
        merchant_id: Annotated[str, Field(description="The merchant's id")],
        status: Annotated[Status | None, Field(description="Only payments in this status")] = None,
        limit: Annotated[int, Field(ge=1, le=LIMIT_MAX)] = LIMIT_DEFAULT,
        cursor: Annotated[str | None, Field(description="The previous page's next_cursor")] = None,
    ) -> CallToolResult:
        """A merchant's payments, most recently updated first, one page at a time."""

        def page() -> dict[str, Any]:
            found = self._client.list_merchant_payments(
                merchant_id, status=status, limit=limit, cursor=cursor
            )
            return {"payments": found.payments, "next_cursor": found.next_cursor}

        return _answer(page)


def _command(
    method: Callable[..., CommandResult],
    body: BaseModel | None,
    idempotency_key: str | None,
    correlation_id: str | None,
    *path: str,
) -> CallToolResult:
    """Run a client command with the body's fields and the call's options; answer its result."""
    fields = {} if body is None else body.model_dump(exclude_none=True)
    options = {"idempotency_key": idempotency_key, "correlation_id": correlation_id}
    fields.update({name: value for name, value in options.items() if value is not None})

    def document() -> dict[str, Any]:
        result = method(*path, **fields)
        return {
            "payment": result.payment,
            "events": result.events,
            "replayed": result.replayed,
            "correlation_id": result.correlation_id,
            "idempotency_key": result.idempotency_key,
        }

    return _answer(document)


def _answer(call: Callable[[], dict[str, Any]]) -> CallToolResult:
    """The call's document as the tool's result, or the API's error as an error result."""
    try:
        document = call()
    except PayledgerError as error:
        failure = {"error": {"code": error.code, "message": error.message}}
        return CallToolResult(content=[_text(failure)], structured_content=failure, is_error=True)
    return CallToolResult(content=[_text(document)], structured_content=document)


def _text(document: dict[str, Any]) -> TextContent:
    return TextContent(type="text", text=json.dumps(document, ensure_ascii=False))
