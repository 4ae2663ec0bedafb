"""``PayledgerClient``: one method per API route, named after its OpenAPI operation id.

Commands take the request body's fields as keyword arguments, verbatim, and ``CommandOptions``:
the idempotency key (a UUID4 per call when not given, reused by every retry of that call), the
correlation and causation ids and the acting agent (``X-Actor…`` headers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, TypedDict, Unpack, cast
from urllib.parse import quote

from botocore.credentials import Credentials

from payledger_client.errors import PayledgerError, error_from_response
from payledger_client.transport import HttpResponse, Transport
from payledger_client.types import CommandResult, Event, Page, Payment, RiskDecision, Status

LIMIT_MAX = 100
LIMIT_DEFAULT = 50

Amount = str | Decimal
"""Major units as a decimal string (``"12.34"``) or a ``Decimal``: never a float."""
Metadata = Mapping[str, str | int | bool | None]
Timestamp = str | datetime
"""ISO-8601 with its zone, or an aware ``datetime``."""


class CommandOptions(TypedDict, total=False):
    """Keyword arguments every command takes besides its body's fields."""

    idempotency_key: str
    correlation_id: str
    causation_id: str
    actor: str
    """``KIND:ID``, e.g. ``agent:fraud-screener`` (default: the signing principal)."""
    actor_model: str
    actor_version: str


_OPTION_HEADERS = {
    "correlation_id": "X-Correlation-Id",
    "causation_id": "X-Causation-Id",
    "actor": "X-Actor",
    "actor_model": "X-Actor-Model",
    "actor_version": "X-Actor-Version",
}


class PayledgerClient:
    """The payledger API over HTTPS, signed with SigV4 (service ``execute-api``).

    ``api_url`` includes the stage (``https://ID.execute-api.REGION.amazonaws.com/Prod``, or the
    local gateway's ``http://127.0.0.1:PORT/local``). ``region`` defaults to the URL's, else
    botocore's configuration, else us-east-1; ``credentials`` to botocore's default chain. Each
    attempt waits at most ``timeout_s`` to connect and as long for the answer; connection
    failures, 429 and 5xx are retried ``retries_max`` times. Errors raise a ``PayledgerError``
    subclass named after the API's error code. Thread-safe; ``close()`` (or ``with``) releases
    its connections.
    """

    def __init__(
        self,
        api_url: str,
        *,
        region: str | None = None,
        credentials: Credentials | None = None,
        timeout_s: float = 10.0,
        retries_max: int = 3,
    ) -> None:
        self._transport = Transport(
            api_url,
            region=region,
            credentials=credentials,
            timeout_s=timeout_s,
            retries_max=retries_max,
        )

    @property
    def api_url(self) -> str:
        return self._transport.base_url

    @property
    def region(self) -> str:
        return self._transport.region

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> PayledgerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ── Commands ────────────────────────────────────────────────────────────────────────────

    def initiate_payment(
        self,
        *,
        payment_id: str,
        amount: Amount,
        currency: str,
        merchant_id: str,
        customer_id: str,
        description: str | None = None,
        metadata: Metadata | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Initiate a payment whose id you choose (so a retried create is safe)."""
        body = {
            "payment_id": payment_id,
            "amount": _amount(amount),
            "currency": currency,
            "merchant_id": merchant_id,
            "customer_id": customer_id,
            "description": description,
            "metadata": None if metadata is None else dict(metadata),
        }
        return self._command("/payments", body, options)

    def assess_risk(
        self,
        payment_id: str,
        *,
        decision: RiskDecision,
        score: str | Decimal,
        reason: str,
        metadata: Metadata | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record a risk decision (approve, review or decline) with its score (0 to 1)."""
        body = {
            "decision": decision,
            "score": _amount(score),
            "reason": reason,
            "metadata": None if metadata is None else dict(metadata),
        }
        return self._command(_payment_path(payment_id, "risk-assessments"), body, options)

    def authorize_payment(
        self,
        payment_id: str,
        *,
        processor: str | None = None,
        reference: str | None = None,
        hold_until: Timestamp | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Authorize an approved payment: a hold on its amount until ``hold_until``."""
        body = {
            "processor": processor,
            "reference": reference,
            "hold_until": _timestamp(hold_until),
        }
        return self._command(_payment_path(payment_id, "authorization"), body, options)

    def fail_payment(
        self,
        payment_id: str,
        *,
        reason: str,
        processor: str | None = None,
        processor_code: str | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Record that the processor refused an approved payment."""
        body = {"reason": reason, "processor": processor, "processor_code": processor_code}
        return self._command(_payment_path(payment_id, "failure"), body, options)

    def capture_payment(
        self,
        payment_id: str,
        *,
        amount: Amount,
        currency: str | None = None,
        final: bool = False,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Capture part or all of the authorized amount; ``final`` releases the rest."""
        body = {"amount": _amount(amount), "currency": currency, "final": final or None}
        return self._command(_payment_path(payment_id, "captures"), body, options)

    def void_payment(
        self, payment_id: str, *, reason: str | None = None, **options: Unpack[CommandOptions]
    ) -> CommandResult:
        """Release what remains of the authorization hold."""
        return self._command(_payment_path(payment_id, "void"), {"reason": reason}, options)

    def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Amount,
        currency: str | None = None,
        reason: str | None = None,
        **options: Unpack[CommandOptions],
    ) -> CommandResult:
        """Refund part or all of the captured amount."""
        body = {"amount": _amount(amount), "currency": currency, "reason": reason}
        return self._command(_payment_path(payment_id, "refunds"), body, options)

    def settle_payment(
        self, payment_id: str, *, reference: str | None = None, **options: Unpack[CommandOptions]
    ) -> CommandResult:
        """Settle the net captured amount with the merchant."""
        path = _payment_path(payment_id, "settlement")
        return self._command(path, {"reference": reference}, options)

    def expire_payment(self, payment_id: str, **options: Unpack[CommandOptions]) -> CommandResult:
        """Release the hold of an authorization whose ``hold_until`` has passed."""
        return self._command(_payment_path(payment_id, "expiry"), {}, options)

    # ── Queries ─────────────────────────────────────────────────────────────────────────────

    def get_payment(
        self,
        payment_id: str,
        *,
        min_version: int | None = None,
        version: int | None = None,
        as_of: Timestamp | None = None,
        consistent: bool = False,
    ) -> Payment:
        """The payment now; after ``version``; or as recorded at ``as_of``.

        Read your own writes with ``min_version=result.payment["version"]``: if the read model
        has not caught up with that version yet, the API folds the events instead.
        """
        query = {
            "min_version": None if min_version is None else str(min_version),
            "version": None if version is None else str(version),
            "as_of": _timestamp(as_of),
            "consistent": "true" if consistent else None,
        }
        body = self._query(_payment_path(payment_id), query)
        return cast(Payment, body["payment"])

    def get_payment_events(self, payment_id: str) -> list[Event]:
        """The payment's whole history, oldest first, each event hash-chained to the previous."""
        body = self._query(_payment_path(payment_id, "events"), {})
        return cast(list[Event], body["events"])

    def list_merchant_payments(
        self,
        merchant_id: str,
        *,
        status: Status | None = None,
        limit: int = LIMIT_DEFAULT,
        cursor: str | None = None,
    ) -> Page:
        """One page of a merchant's payments, most recently updated first; pass the page's
        ``next_cursor`` as ``cursor`` for the next one."""
        if not 1 <= limit <= LIMIT_MAX:
            raise ValueError(f"limit must be 1 to {LIMIT_MAX}, got {limit}")
        path = f"/merchants/{_segment(merchant_id)}/payments"
        query = {"status": status, "limit": str(limit), "cursor": cursor}
        body = self._query(path, query)
        return Page(cast(list[Payment], body["payments"]), body.get("next_cursor"))

    def iter_merchant_payments(
        self, merchant_id: str, *, status: Status | None = None, page_size: int = LIMIT_DEFAULT
    ) -> Iterator[Payment]:
        """Every payment of a merchant (most recently updated first), fetched page by page."""
        cursor: str | None = None
        while True:
            page = self.list_merchant_payments(
                merchant_id, status=status, limit=page_size, cursor=cursor
            )
            yield from page.payments
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # ── HTTP ────────────────────────────────────────────────────────────────────────────────

    def _command(
        self, path: str, body: Mapping[str, Any], options: CommandOptions
    ) -> CommandResult:
        key = options.get("idempotency_key") or str(uuid.uuid4())
        headers = {"Idempotency-Key": key}
        for option, header in _OPTION_HEADERS.items():
            value = options.get(option)
            if value is not None:
                headers[header] = str(value)
        fields = {name: value for name, value in body.items() if value is not None}
        response = self._transport.request("POST", path, body=fields, headers=headers)
        document = _document(response)
        return CommandResult(
            payment=cast(Payment, document["payment"]),
            events=cast(list[Event], document["events"]),
            replayed=response.headers.get("idempotent-replayed", "").lower() == "true",
            correlation_id=response.headers.get("x-correlation-id"),
            idempotency_key=key,
        )

    def _query(self, path: str, query: Mapping[str, str | None]) -> dict[str, Any]:
        present = {name: value for name, value in query.items() if value is not None}
        return _document(self._transport.request("GET", path, query=present))


def _document(response: HttpResponse) -> dict[str, Any]:
    if response.status >= 300:
        raise error_from_response(
            response.status, response.body, response.headers.get("x-amzn-errortype")
        )
    try:
        return cast(dict[str, Any], response.json())
    except ValueError as exc:
        message = f"HTTP {response.status} with a body that is not JSON"
        raise PayledgerError("unexpected_response", message, response.status) from exc


def _payment_path(payment_id: str, action: str | None = None) -> str:
    path = f"/payments/{_segment(payment_id)}"
    return path if action is None else f"{path}/{action}"


def _segment(value: str) -> str:
    if not value:
        raise ValueError("an id must not be empty")
    return quote(value, safe="")


def _amount(value: Amount) -> str:
    # The API takes decimal strings; a float would already have lost the exact amount.
    if isinstance(value, Decimal):
        return format(value, "f")
    if not isinstance(value, str):
        raise TypeError(f"amounts are decimal strings or Decimals, got {type(value).__name__}")
    return value


def _timestamp(value: Timestamp | None) -> str | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a datetime must carry its zone (tzinfo)")
        return value.isoformat()
    return value
