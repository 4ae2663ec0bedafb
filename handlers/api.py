"""The payments API: API Gateway (REST, proxy integration) → ``PaymentService``.

| route                                        | command / query           |
|----------------------------------------------|---------------------------|
| ``POST /payments``                           | ``InitiatePayment``       |
| ``POST /payments/{id}/risk-assessments``     | ``AssessRisk``            |
| ``POST /payments/{id}/authorization``        | ``AuthorizePayment``      |
| ``POST /payments/{id}/failure``              | ``FailPayment``           |
| ``POST /payments/{id}/captures``             | ``CapturePayment``        |
| ``POST /payments/{id}/void``                 | ``VoidPayment``           |
| ``POST /payments/{id}/refunds``              | ``RefundPayment``         |
| ``POST /payments/{id}/settlement``           | ``SettlePayment``         |
| ``POST /payments/{id}/expiry``               | ``ExpirePayment``         |
| ``GET /payments/{id}[?version=N&as_of=T]``   | the payment (as of then)  |
| ``GET /payments/{id}/events``                | its history               |
| ``GET /openapi.json``                        | this API's OpenAPI 3.1    |

Contract:
- Every POST needs an ``Idempotency-Key`` header. A new result is 201 ``{"payment", "events"}``;
  the same key and request again is 200 with the original body and ``Idempotent-Replayed: true``.
- Optional headers: ``X-Actor: KIND:ID`` (default ``api:<API key id or caller>``),
  ``X-Actor-Model``, ``X-Actor-Version``, ``X-Correlation-Id``, ``X-Causation-Id``. Every response
  carries ``X-Correlation-Id``: the payment flow's for a command, else the client's or API
  Gateway's request id (the ``correlation_id`` of this request's log lines).
- Errors are ``{"error": {"code", "message"}}``: a ledger error with its own status
  (``ledger.domain.errors``); a malformed request 400 ``validation_error`` (messages name the
  fields, never echo their values); 404 ``not_found``; 405 ``method_not_allowed``; 415
  ``unsupported_media_type``; a bug 500 ``internal_error``. Client input never causes a 5xx.
- The pydantic models check JSON types only (an amount is a string, never a number). Sizes,
  formats and card numbers are checked by the domain command built from them, so the API and
  the CLI share one validation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any, Literal, TypeVar, cast

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from handlers.bootstrap import (
    build_payment_service,
    build_payment_state_reader,
    settings_from_environment,
)
from handlers.observability import make_logger
from ledger.codec import event_document
from ledger.domain.errors import LedgerError, ValidationError
from ledger.domain.events import RiskDecision
from ledger.domain.pan import redact_pans
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
from projections.payment_state_reader import PaymentStateReader

CORRELATION_HEADER = "X-Correlation-Id"
REPLAYED_HEADER = "Idempotent-Replayed"
_VALIDATION_ERRORS_SHOWN_MAX = 5
_LOCATION_PART_CHARS_MAX = 64
_ROUTE_ENTERED = "route_entered"
_OPERATION = "operation"

logger = make_logger()
tracer = Tracer()
metrics = Metrics()  # namespace from POWERTOOLS_METRICS_NAMESPACE

settings = settings_from_environment()
service: PaymentService = build_payment_service(settings)
payment_states: PaymentStateReader | None = build_payment_state_reader(settings)


def _parse_json(text: str) -> Any:
    """``json.loads`` refusing NaN, Infinity and repeated keys, and reporting every failure as
    ``JSONDecodeError``, the one error Powertools turns into a validation error (a 50,000-digit
    number or a 10,000-deep array would otherwise escape as ``ValueError``/``RecursionError``).
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError:
        raise
    except _RefusedJsonError as error:
        raise json.JSONDecodeError(str(error), text, 0) from error
    except ValueError as error:  # int(): more than sys.get_int_max_str_digits() digits
        raise json.JSONDecodeError("a number has too many digits", text, 0) from error
    except RecursionError as error:
        raise json.JSONDecodeError("nested too deeply", text, 0) from error


class _RefusedJsonError(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _RefusedJsonError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _RefusedJsonError("an object repeats a key")
    return document


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_parse_json)


# ── Request and response models (types only: the domain commands validate values) ─────────


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


_SCALARS = ("string", "integer", "boolean", "null")


def _metadata() -> Any:
    return Field(
        default_factory=dict,
        description="Flat map to string, integer, boolean or null values (at most 32 keys)",
        json_schema_extra={"additionalProperties": {"anyOf": [{"type": t} for t in _SCALARS]}},
    )


def _amount() -> Any:
    return Field(description='Major units as a decimal string, e.g. "12.34"; never a number')


class InitiatePaymentBody(_Body):
    payment_id: str = Field(description="Chosen by the client, so a retried create is safe")
    amount: str = _amount()
    currency: str = Field(description="ISO 4217 code, e.g. EUR")
    merchant_id: str
    customer_id: str
    description: str | None = None
    metadata: dict[str, Any] = _metadata()


class AssessRiskBody(_Body):
    decision: RiskDecision
    score: str = Field(description='Decimal string from 0 to 1, e.g. "0.12"')
    reason: str
    metadata: dict[str, Any] = _metadata()


class AuthorizePaymentBody(_Body):
    processor: str | None = None
    reference: str | None = None
    hold_until: str | None = Field(default=None, description="ISO-8601 with zone; default 7 days")


class FailPaymentBody(_Body):
    reason: str
    processor: str | None = None
    processor_code: str | None = None


class CapturePaymentBody(_Body):
    amount: str = _amount()
    currency: str | None = Field(default=None, description="Must be the payment's currency")
    final: bool = Field(default=False, description="Release what remains of the hold")


class VoidPaymentBody(_Body):
    reason: str | None = None


class RefundPaymentBody(_Body):
    amount: str = _amount()
    currency: str | None = Field(default=None, description="Must be the payment's currency")
    reason: str | None = None


class SettlePaymentBody(_Body):
    reference: str | None = None


class ExpirePaymentBody(_Body):
    """No fields: send ``{}`` or no body."""


class CommandHeaders(BaseModel):
    """Headers of every command (Powertools maps ``x_actor`` to ``X-Actor``, case-insensitively)."""

    model_config = ConfigDict(strict=True)

    idempotency_key: str = Field(description="Required: the same key and request never repeat")
    x_actor: str | None = Field(default=None, description="KIND:ID, KIND agent|api|system|operator")
    x_actor_model: str | None = None
    x_actor_version: str | None = None
    x_correlation_id: str | None = None
    x_causation_id: str | None = None


Headers = Annotated[CommandHeaders, Header()]
_HEADERS_PARAMETER = "headers"  # the name every route gives its ``Headers`` parameter


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class PaymentView(BaseModel):
    """``PaymentSnapshot.to_dict()``"""

    payment_id: str
    status: Status
    merchant_id: str
    customer_id: str
    currency: str
    amount: str
    amount_minor: int
    amount_authorized_minor: int
    amount_captured_minor: int
    amount_released_minor: int
    amount_refunded_minor: int
    amount_settled_minor: int
    hold_remaining_minor: int
    hold_until: str | None
    processor: str | None
    risk_decision: RiskDecision | None
    risk_score: str | None
    failure_reason: str | None
    description: str | None
    version: int
    head_hash: str
    created_at: str
    updated_at: str


class ActorView(BaseModel):
    kind: ActorKind
    id: str
    model: str | None = None
    version: str | None = None


class EventView(BaseModel):
    """``ledger.codec.event_document()``: the stored event, hash-chained."""

    stream_id: str
    version: int
    event_id: str
    event_type: str
    schema_version: int
    occurred_at: str
    recorded_at: str
    actor: ActorView
    correlation_id: str
    causation_id: str | None
    idempotency_key: str
    request_digest: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class CommandResponse(BaseModel):
    payment: PaymentView
    events: list[EventView]


class PaymentResponse(BaseModel):
    payment: PaymentView


class PaymentQueryResponse(PaymentResponse):
    source: Literal["read_model", "events"]


class HistoryResponse(BaseModel):
    events: list[EventView]


def _documented(status: int, description: str, model: type[BaseModel]) -> dict[int, Any]:
    content = {content_types.APPLICATION_JSON: {"model": model}}
    return {status: {"description": description, "content": content}}


_COMMAND_RESPONSES = {
    **_documented(201, "Recorded: the payment after it and the new events", CommandResponse),
    **_documented(200, "Replayed: the original result of this key", CommandResponse),
    **_documented(400, "validation_error, pan_detected or limit_exceeded", ErrorResponse),
    **_documented(404, "not_found", ErrorResponse),
    **_documented(409, "idempotency_conflict, concurrency_conflict, already_exists", ErrorResponse),
    **_documented(422, "A payment rule forbids it (invalid_transition…)", ErrorResponse),
}
_QUERY_ERRORS = {
    **_documented(400, "validation_error", ErrorResponse),
    **_documented(404, "not_found", ErrorResponse),
}


# ── Routes ──────────────────────────────────────────────────────────────────────────────────

_Handler = TypeVar("_Handler", bound=Callable[..., Any])
_METHODS_BY_PATH_PATTERN: dict[str, set[str]] = {}


def _route(method: str, rule: str, **options: Any) -> Callable[[_Handler], _Handler]:
    """``app.route``, remembering the methods of each path so a wrong method gets a 405."""
    pattern = "^" + "[^/]+".join(map(re.escape, re.split(r"<\w+>", rule))) + "/*$"
    _METHODS_BY_PATH_PATTERN.setdefault(pattern, set()).add(method)
    return app.route(rule, method, **options)


def _command(rule: str) -> Callable[[_Handler], _Handler]:
    return _route("POST", rule, responses=_COMMAND_RESPONSES, tags=["commands"])


@_command("/payments")
def initiate_payment(body: InitiatePaymentBody, headers: Headers) -> Response[Any]:
    """Initiate a payment (the client chooses its id)."""
    response = _execute(InitiatePayment, headers, body)
    response.headers["Location"] = f"/payments/{body.payment_id}"
    return response


@_command("/payments/<payment_id>/risk-assessments")
def assess_risk(payment_id: str, body: AssessRiskBody, headers: Headers) -> Response[Any]:
    """Record a risk decision (approve, review or decline) with its score and reason."""
    return _execute(AssessRisk, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/authorization")
def authorize_payment(
    payment_id: str, headers: Headers, body: AuthorizePaymentBody | None = None
) -> Response[Any]:
    """Authorize an approved payment: a hold on its amount until ``hold_until``."""
    return _execute(AuthorizePayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/failure")
def fail_payment(payment_id: str, body: FailPaymentBody, headers: Headers) -> Response[Any]:
    """Record that the processor refused an approved payment."""
    return _execute(FailPayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/captures")
def capture_payment(payment_id: str, body: CapturePaymentBody, headers: Headers) -> Response[Any]:
    """Capture part or all of the authorized amount (several captures allowed)."""
    return _execute(CapturePayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/void")
def void_payment(
    payment_id: str, headers: Headers, body: VoidPaymentBody | None = None
) -> Response[Any]:
    """Release what remains of the authorization hold."""
    return _execute(VoidPayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/refunds")
def refund_payment(payment_id: str, body: RefundPaymentBody, headers: Headers) -> Response[Any]:
    """Refund part or all of the captured amount."""
    return _execute(RefundPayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/settlement")
def settle_payment(
    payment_id: str, headers: Headers, body: SettlePaymentBody | None = None
) -> Response[Any]:
    """Settle the net captured amount with the merchant."""
    return _execute(SettlePayment, headers, body, payment_id=payment_id)


@_command("/payments/<payment_id>/expiry")
def expire_payment(
    payment_id: str, headers: Headers, body: ExpirePaymentBody | None = None
) -> Response[Any]:
    """Release the hold of an authorization whose ``hold_until`` has passed."""
    return _execute(ExpirePayment, headers, body, payment_id=payment_id)


@_route(
    "GET",
    "/payments/<payment_id>",
    responses={**_documented(200, "The payment", PaymentQueryResponse), **_QUERY_ERRORS},
    tags=["queries"],
)
def get_payment(
    payment_id: str,
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
    _start("Query", "GetPayment")
    current = version is None and as_of is None and not consistent
    if current and payment_states is not None:
        projected = payment_states.read_payment(payment_id, consistent=False)
        if projected is not None and projected["version"] >= (min_version or 0):
            _count("QuerySucceeded", query="GetPayment")
            return _json_response(HTTPStatus.OK, {"payment": projected, "source": "read_model"})
    snapshot = service.get(payment_id, version_max=version, as_of=as_of)
    _count("QuerySucceeded", query="GetPayment")
    return _json_response(HTTPStatus.OK, {"payment": snapshot.to_dict(), "source": "events"})


@_route(
    "GET",
    "/payments/<payment_id>/events",
    responses={**_documented(200, "Every event, oldest first", HistoryResponse), **_QUERY_ERRORS},
    tags=["queries"],
)
def get_payment_events(payment_id: str) -> Response[Any]:
    """The payment's whole history: every event with its envelope and hash chain."""
    _start("Query", "GetPaymentEvents")
    events = service.load(payment_id)
    _count("QuerySucceeded", query="GetPaymentEvents")
    return _json_response(HTTPStatus.OK, {"events": [event_document(event) for event in events]})


@_route("GET", "/openapi.json", include_in_schema=False)
def get_openapi() -> Response[Any]:
    """This API's OpenAPI 3.1 document."""
    _start("Query", "GetOpenApi")
    _count("QuerySucceeded", query="GetOpenApi")
    return _json_response(HTTPStatus.OK, openapi_document())


_OPENAPI_DESCRIPTION = (
    "Event-sourced two-phase payments. Every POST appends events and needs an Idempotency-Key "
    'header; errors are {"error": {"code", "message"}}.'
)


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document. Powertools documents failed request validation as a 422
    ``HTTPValidationError``; this API answers it with a 400 ``validation_error``, so drop those."""
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="payledger payments API",
            version="1",
            description=_OPENAPI_DESCRIPTION,
        )
    )
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                del responses["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    return document


# ── Commands ────────────────────────────────────────────────────────────────────────────────


def _execute(
    command_type: type[Command], headers: CommandHeaders, body: BaseModel | None, **path: str
) -> Response[Any]:
    """Build the command (the domain validates it), run it, answer 201 or, replayed, 200."""
    name = command_type.__name__
    _start("Command", name)
    if not _has_json_body_or_none():
        return _unsupported_media_type(None)
    fields = {key: value for key, value in (body or ()) if value is not None}
    context = _command_context(headers)
    result = service.execute(command_type(**fields, **path), context)
    _count("CommandReplayed" if result.replayed else "CommandSucceeded", command=name)
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
    return _json_response(status, body, headers)


# ── Responses, errors, metrics ──────────────────────────────────────────────────────────────


def _json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[Any]:
    headers = dict(headers or {})
    if CORRELATION_HEADER not in headers:
        correlation_id = _request_correlation_id()
        if correlation_id is not None:
            headers[CORRELATION_HEADER] = correlation_id
    return Response(int(status), content_types.APPLICATION_JSON, body, headers)


def _request_correlation_id() -> str | None:
    """The client's ``X-Correlation-Id`` if it is a valid id, else API Gateway's request id."""
    event = app.current_event
    candidates = (event.headers.get(CORRELATION_HEADER), event.request_context.get("requestId"))
    for candidate in candidates:
        if isinstance(candidate, str) and _is_id(candidate):
            return candidate
    return None


def _is_id(value: str) -> bool:
    try:
        check_id(value, "id")
    except LedgerError:
        return False
    return True


def _error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    kind, name = app.context.get(_OPERATION, ("Request", None))
    outcome = "Rejected" if status < HTTPStatus.INTERNAL_SERVER_ERROR else "Failed"
    dimensions = {kind.lower(): name} if name else {}
    _count(f"{kind}{outcome}", code=code, **dimensions)
    # Domain messages quote a little of a rejected value; a card number must never come back.
    body = {"error": {"code": code, "message": redact_pans(message)}}
    return _json_response(status, body, headers)


def _start(kind: Literal["Command", "Query"], name: str) -> None:
    app.append_context(**{_OPERATION: (kind, name)})
    tracer.put_annotation(key=kind.lower(), value=name)


def _count(metric: str, **dimensions: str) -> None:
    """One count per request; dimensions are names and codes only (low cardinality)."""
    for name, value in dimensions.items():
        metrics.add_dimension(name=name, value=value)
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)


@app.exception_handler(LedgerError)
def _ledger_error(error: LedgerError) -> Response[Any]:
    if error.http_status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.error("ledger failure", exc_info=error, extra={"code": error.code})
    else:
        logger.info("request rejected", extra={"code": error.code, "reason": error.message})
    return _error_response(error.http_status, error.code, error.message)


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError) -> Response[Any]:
    message = _describe_validation_errors(error.errors())
    logger.info("request rejected", extra={"code": "validation_error", "reason": message})
    return _error_response(HTTPStatus.BAD_REQUEST, "validation_error", message)


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_media_type(_: RequestUnsupportedContentType | None) -> Response[Any]:
    return _error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send a JSON body"
    )


@app.not_found
def _no_route(_: RouteNotFoundError) -> Response[Any]:
    event = app.current_event
    allowed = {
        method
        for pattern, methods in _METHODS_BY_PATH_PATTERN.items()
        if re.match(pattern, event.path)
        for method in methods
    }
    if allowed and event.http_method.upper() not in allowed:
        listed = ", ".join(sorted(allowed))
        return _error_response(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "method_not_allowed",
            f"this path accepts {listed}",
            {"Allow": listed},
        )
    return _error_response(HTTPStatus.NOT_FOUND, "not_found", "no such route")


@app.exception_handler(ValueError)
def _value_error(error: ValueError) -> Response[Any]:
    # Powertools decodes the body (base64, UTF-8, multipart) before any route runs and lets a
    # plain ValueError escape on undecodable input: that is the client's, not a bug.
    if not app.context.get(_ROUTE_ENTERED):
        return _error_response(
            HTTPStatus.BAD_REQUEST, "validation_error", "the request body cannot be decoded"
        )
    return _unexpected(error)


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    logger.error("unexpected failure", exc_info=error)
    return _error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error; quote the X-Correlation-Id header if you report it",
    )


def _mark_route_entered(
    resolver: APIGatewayRestResolver, next_middleware: NextMiddleware
) -> Response[Any]:
    """Runs once Powertools has read and validated the request, right before the route."""
    resolver.append_context(**{_ROUTE_ENTERED: True})
    return next_middleware(resolver)


app.use(middlewares=[_mark_route_entered])


def _describe_validation_errors(errors: Sequence[Any]) -> str:
    """Where and what, from pydantic's errors: locations and templated messages, never inputs
    (a location can hold a client's key name: ``_error_response`` masks card numbers in it)."""
    parts = [
        f"{_location(error.get('loc', ()))}: {_problem(error)}"
        for error in errors[:_VALIDATION_ERRORS_SHOWN_MAX]
    ]
    if len(errors) > _VALIDATION_ERRORS_SHOWN_MAX:
        parts.append(f"and {len(errors) - _VALIDATION_ERRORS_SHOWN_MAX} more")
    return "; ".join(parts)


def _location(loc: Sequence[Any]) -> str:
    if loc[:2] == ("header", _HEADERS_PARAMETER):
        loc = ("header", *loc[2:])
    if loc and loc[0] == "body" and len(loc) == 2 and isinstance(loc[1], int):
        loc = ("body",)  # a JSON decode position
    if not loc:
        return "request"
    where, *path = (str(part)[:_LOCATION_PART_CHARS_MAX] for part in loc)
    return f"{where} {'.'.join(path)}" if path else where


def _problem(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"not valid JSON ({error.get('ctx', {}).get('error', 'unreadable')})"
    return str(error.get("msg", "invalid"))


# ── Lambda entry point ──────────────────────────────────────────────────────────────────────


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
