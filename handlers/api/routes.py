"""The API's routes: each command builds its domain command (which validates it) and runs it on
the injected ``PaymentService``; each query reads the read model or folds the events."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any, TypeVar, cast

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel

from handlers.api.cursors import CURSOR_CHARS_MAX, CURSOR_PATTERN, decode_cursor, encode_cursor
from handlers.api.dependencies import PaymentStates, Service
from handlers.api.errors import unsupported_media_type
from handlers.api.models import (
    AssessRiskBody,
    AuthorizePaymentBody,
    CapturePaymentBody,
    CommandHeaders,
    CommandResponse,
    ErrorResponse,
    ExpirePaymentBody,
    FailPaymentBody,
    Headers,
    HistoryResponse,
    InitiatePaymentBody,
    MerchantIdPath,
    MerchantPaymentsResponse,
    PaymentIdPath,
    PaymentQueryResponse,
    RefundPaymentBody,
    SettlePaymentBody,
    VoidPaymentBody,
)
from handlers.api.openapi import openapi_document
from handlers.api.resolver import (
    CORRELATION_HEADER,
    LOCATION_HEADER,
    REPLAYED_HEADER,
    app,
    count,
    json_response,
    logger,
    route,
    start,
)
from handlers.bootstrap import PAYMENT_STATE_TABLE_VARIABLE, ConfigurationError
from ledger.codec import event_document
from ledger.domain.errors import ValidationError
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    Command,
    ExpirePayment,
    FailPayment,
    InitiatePayment,
    RefundPayment,
    SettlePayment,
    Status,
    VoidPayment,
)
from ledger.domain.validation import check_id
from ledger.envelope import Actor, ActorKind
from ledger.service import CommandContext, CommandResult, PaymentService
from projections.payment_state_reader import MERCHANT_PAGE_LIMIT_MAX

MERCHANT_PAGE_LIMIT_DEFAULT = 50


def _documented(status: int, description: str, model: type[BaseModel]) -> dict[int, Any]:
    content = {content_types.APPLICATION_JSON: {"model": model}}
    return {status: {"description": description, "content": content}}


_COMMAND_RESPONSES = {
    **_documented(201, "Recorded: the payment after it and the new events", CommandResponse),
    **_documented(200, "Replayed: the original result of this key", CommandResponse),
    **_documented(400, "validation_error, pan_detected or limit_exceeded", ErrorResponse),
    **_documented(404, "not_found", ErrorResponse),
    **_documented(409, "idempotency_conflict, concurrency_conflict, already_exists", ErrorResponse),
    **_documented(415, "unsupported_media_type: send a JSON body", ErrorResponse),
    **_documented(422, "A payment rule forbids it (invalid_transition…)", ErrorResponse),
}
_QUERY_ERRORS = {
    **_documented(400, "validation_error", ErrorResponse),
    **_documented(404, "not_found", ErrorResponse),
}

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def _command(rule: str, operation_id: str) -> Callable[[_Handler], _Handler]:
    return route(
        "POST", rule, operation_id=operation_id, responses=_COMMAND_RESPONSES, tags=["commands"]
    )


# ── Commands ────────────────────────────────────────────────────────────────────────────────


@_command("/payments", "initiatePayment")
def initiate_payment(
    body: InitiatePaymentBody, headers: Headers, service: Service
) -> Response[Any]:
    """Initiate a payment (the client chooses its id)."""
    response = _execute(service, InitiatePayment, headers, body)
    response.headers[LOCATION_HEADER] = f"/payments/{body.payment_id}"
    return response


@_command("/payments/<payment_id>/risk-assessments", "assessRisk")
def assess_risk(
    payment_id: PaymentIdPath, body: AssessRiskBody, headers: Headers, service: Service
) -> Response[Any]:
    """Record a risk decision (approve, review or decline) with its score and reason."""
    return _execute(service, AssessRisk, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/authorization", "authorizePayment")
def authorize_payment(
    payment_id: PaymentIdPath,
    headers: Headers,
    service: Service,
    body: AuthorizePaymentBody | None = None,
) -> Response[Any]:
    """Authorize an approved payment: a hold on its amount until ``hold_until``."""
    return _execute(service, AuthorizePayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/failure", "failPayment")
def fail_payment(
    payment_id: PaymentIdPath, body: FailPaymentBody, headers: Headers, service: Service
) -> Response[Any]:
    """Record that the processor refused an approved payment."""
    return _execute(service, FailPayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/captures", "capturePayment")
def capture_payment(
    payment_id: PaymentIdPath, body: CapturePaymentBody, headers: Headers, service: Service
) -> Response[Any]:
    """Capture part or all of the authorized amount (several captures allowed)."""
    return _execute(service, CapturePayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/void", "voidPayment")
def void_payment(
    payment_id: PaymentIdPath,
    headers: Headers,
    service: Service,
    body: VoidPaymentBody | None = None,
) -> Response[Any]:
    """Release what remains of the authorization hold."""
    return _execute(service, VoidPayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/refunds", "refundPayment")
def refund_payment(
    payment_id: PaymentIdPath, body: RefundPaymentBody, headers: Headers, service: Service
) -> Response[Any]:
    """Refund part or all of the captured amount."""
    return _execute(service, RefundPayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/settlement", "settlePayment")
def settle_payment(
    payment_id: PaymentIdPath,
    headers: Headers,
    service: Service,
    body: SettlePaymentBody | None = None,
) -> Response[Any]:
    """Settle the net captured amount with the merchant."""
    return _execute(service, SettlePayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/expiry", "expirePayment")
def expire_payment(
    payment_id: PaymentIdPath,
    headers: Headers,
    service: Service,
    body: ExpirePaymentBody | None = None,
) -> Response[Any]:
    """Release the hold of an authorization whose ``hold_until`` has passed."""
    return _execute(service, ExpirePayment, headers, body, payment_id=payment_id)


def _execute(
    service: PaymentService,
    command_type: type[Command],
    headers: CommandHeaders,
    body: BaseModel | None,
    **path: str,
) -> Response[Any]:
    """Build the command (the domain validates it), run it, answer 201 or, replayed, 200."""
    name = command_type.__name__
    start("Command", name)
    if not _has_json_body_or_none():
        return unsupported_media_type(None)
    fields = {key: value for key, value in (body or ()) if value is not None}
    context = _command_context(headers)
    result = service.execute(command_type(**fields, **path), context)
    count("CommandReplayed" if result.replayed else "CommandSucceeded", command=name)
    logger.info(
        "command replayed" if result.replayed else "command recorded",
        extra={
            "command": name,
            "payment_id": result.payment.state.payment_id,
            "version": result.payment.version,
            "flow_correlation_id": result.events[0].correlation_id,
        },
    )
    return _command_response(result)


def _has_json_body_or_none() -> bool:
    # Powertools also reads form and multipart bodies into the model; this API takes JSON only.
    event = app.current_event
    content_type = event.headers.get("content-type") or content_types.APPLICATION_JSON
    return not event.body or content_type.startswith(content_types.APPLICATION_JSON)


def _command_context(headers: CommandHeaders) -> CommandContext:
    if headers.x_actor is None:
        identity = app.current_event.request_context.identity
        kind, actor_id = "api", identity.api_key_id or identity.caller or "anonymous"
    else:
        kind, separator, actor_id = headers.x_actor.partition(":")
        if not separator:
            raise ValidationError("X-Actor must be KIND:ID, e.g. agent:fraud-screener")
    actor = Actor(
        kind=cast(ActorKind, kind),  # CommandContext checks it is one of ACTOR_KINDS
        id=actor_id,
        model=headers.x_actor_model,
        version=headers.x_actor_version,
    )
    return CommandContext(
        idempotency_key=headers.idempotency_key,
        actor=actor,
        correlation_id=headers.x_correlation_id,
        causation_id=headers.x_causation_id,
    )


def _command_response(result: CommandResult) -> Response[Any]:
    headers = {CORRELATION_HEADER: result.events[0].correlation_id}
    if result.replayed:
        headers[REPLAYED_HEADER] = "true"
    body = {
        "payment": result.payment.to_dict(),
        "events": [event_document(event) for event in result.events],
    }
    status = HTTPStatus.OK if result.replayed else HTTPStatus.CREATED
    return json_response(status, body, headers)


# ── Queries ─────────────────────────────────────────────────────────────────────────────────


@route(
    "GET",
    "/payments/<payment_id>",
    operation_id="getPayment",
    responses={**_documented(200, "The payment", PaymentQueryResponse), **_QUERY_ERRORS},
    tags=["queries"],
)
def get_payment(
    payment_id: PaymentIdPath,
    service: Service,
    payment_states: PaymentStates,
    version: Annotated[int | None, Query(description="The payment after this version")] = None,
    as_of: Annotated[str | None, Query(description="As recorded at this ISO-8601 time")] = None,
    consistent: Annotated[
        bool, Query(description="Fold the events instead of reading the read model")
    ] = False,
    min_version: Annotated[
        int | None,
        Query(description="Read-your-writes: fold the events if the read model is behind this"),
    ] = None,
) -> Response[Any]:
    """The payment now, after a given version, or as recorded at a given time.

    The current payment comes from the payment-state read model (one GetItem) unless it lags:
    not projected yet, or older than ``min_version``. Then, and with ``consistent=true``,
    ``version`` or ``as_of``, the events are folded (one strongly consistent Query).
    """
    start("Query", "GetPayment")
    current = version is None and as_of is None and not consistent
    if current and payment_states is not None:
        projected = payment_states.read_payment(payment_id, consistent=False)
        if projected is not None and projected["version"] >= (min_version or 0):
            count("QuerySucceeded", query="GetPayment")
            return json_response(HTTPStatus.OK, {"payment": projected, "source": "read_model"})
    snapshot = service.get(payment_id, version_max=version, as_of=as_of)
    count("QuerySucceeded", query="GetPayment")
    return json_response(HTTPStatus.OK, {"payment": snapshot.to_dict(), "source": "events"})


@route(
    "GET",
    "/payments/<payment_id>/events",
    operation_id="getPaymentEvents",
    responses={**_documented(200, "Every event, oldest first", HistoryResponse), **_QUERY_ERRORS},
    tags=["queries"],
)
def get_payment_events(payment_id: PaymentIdPath, service: Service) -> Response[Any]:
    """The payment's whole history: every event with its envelope and hash chain."""
    start("Query", "GetPaymentEvents")
    events = service.load(payment_id)
    count("QuerySucceeded", query="GetPaymentEvents")
    return json_response(HTTPStatus.OK, {"events": [event_document(event) for event in events]})


@route(
    "GET",
    "/merchants/<merchant_id>/payments",
    operation_id="listMerchantPayments",
    responses={
        **_documented(200, "A page of the merchant's payments", MerchantPaymentsResponse),
        **_documented(
            400, "validation_error (a cursor for another merchant or filter…)", ErrorResponse
        ),
    },
    tags=["queries"],
)
def list_merchant_payments(
    merchant_id: MerchantIdPath,
    payment_states: PaymentStates,
    status: Annotated[Status | None, Query(description="Only payments in this status")] = None,
    limit: Annotated[
        int, Query(ge=1, le=MERCHANT_PAGE_LIMIT_MAX, description="At most this many payments")
    ] = MERCHANT_PAGE_LIMIT_DEFAULT,
    cursor: Annotated[
        str | None,
        Query(
            max_length=CURSOR_CHARS_MAX,
            pattern=CURSOR_PATTERN,
            description="The previous page's next_cursor, with the same status",
        ),
    ] = None,
) -> Response[Any]:
    """A merchant's payments, most recently updated first, a page at a time.

    From the payment-state read model's ``by-merchant`` index (eventually consistent): one Query
    for a page without a filter; with ``status``, at most ``MERCHANT_QUERY_PAGES_MAX`` Query pages
    of ``MERCHANT_FILTERED_QUERY_ITEMS`` items each (``projections.payment_state_reader``).
    """
    start("Query", "ListMerchantPayments")
    if payment_states is None:
        raise ConfigurationError(f"this API has no read model: set {PAYMENT_STATE_TABLE_VARIABLE}")
    check_id(merchant_id, "merchant_id")
    after = None if cursor is None else decode_cursor(cursor, merchant_id, status)
    page = payment_states.list_merchant_payments(merchant_id, limit, status=status, after=after)
    next_cursor = (
        None
        if page.next_position is None
        else encode_cursor(page.next_position, merchant_id, status)
    )
    count("QuerySucceeded", query="ListMerchantPayments")
    return json_response(HTTPStatus.OK, {"payments": page.payments, "next_cursor": next_cursor})


@route("GET", "/openapi.json", include_in_schema=False)
def get_openapi() -> Response[Any]:
    """This API's OpenAPI 3.1 document."""
    start("Query", "GetOpenApi")
    count("QuerySucceeded", query="GetOpenApi")
    return json_response(HTTPStatus.OK, openapi_document())
