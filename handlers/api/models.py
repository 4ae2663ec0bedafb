"""The API's request and response models. They check JSON types only: the domain commands
validate values. The constraints the domain checks (id and amount patterns, sizes, currencies)
are stated in the OpenAPI document from the domain's own constants, without being enforced here,
so a value the domain refuses still gets the domain's error code (``limit_exceeded``…)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ledger.domain.events import RiskDecision
from ledger.domain.limits import (
    ID_CHARS_MAX,
    IDEMPOTENCY_KEY_CHARS_MAX,
    METADATA_KEY_CHARS_MAX,
    METADATA_KEYS_MAX,
    METADATA_VALUE_CHARS_MAX,
    TEXT_CHARS_MAX,
)
from ledger.domain.money import AMOUNT_PATTERN, AMOUNT_TEXT_CHARS_MAX, CURRENCY_EXPONENTS
from ledger.domain.payment import Status
from ledger.domain.validation import ID_PATTERN, METADATA_KEY_PATTERN, SCORE_PATTERN
from ledger.envelope import ACTOR_KINDS, ActorKind
from ledger.service import IDEMPOTENCY_KEY_PATTERN

ID_SCHEMA = {"pattern": ID_PATTERN, "maxLength": ID_CHARS_MAX}


def _documented(**schema: Any) -> Any:
    """A string type stating ``schema`` in the document only (the domain enforces it)."""
    return Field(json_schema_extra=schema)


Id = Annotated[str, _documented(**ID_SCHEMA)]
Text = Annotated[str, _documented(maxLength=TEXT_CHARS_MAX)]
Amount = Annotated[str, _documented(pattern=AMOUNT_PATTERN, maxLength=AMOUNT_TEXT_CHARS_MAX)]
Currency = Annotated[str, _documented(enum=sorted(CURRENCY_EXPONENTS))]
Score = Annotated[str, _documented(pattern=SCORE_PATTERN)]
Timestamp = Annotated[str, _documented(format="date-time")]
ActorHeader = Annotated[str, _documented(pattern=f"^({'|'.join(ACTOR_KINDS)}):{ID_PATTERN[1:]}")]
PaymentIdPath = Annotated[str, Path(description="The payment's id", json_schema_extra=ID_SCHEMA)]
MerchantIdPath = Annotated[str, Path(description="The merchant's id", json_schema_extra=ID_SCHEMA)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


_SCALARS = ("string", "integer", "boolean", "null")


def _metadata() -> Any:
    values: list[JsonValue] = [{"type": "string", "maxLength": METADATA_VALUE_CHARS_MAX}]
    values += [{"type": t} for t in _SCALARS[1:]]
    return Field(
        default_factory=dict,
        description="Flat map to string, integer, boolean or null values",
        json_schema_extra={
            "maxProperties": METADATA_KEYS_MAX,
            "propertyNames": {"pattern": METADATA_KEY_PATTERN, "maxLength": METADATA_KEY_CHARS_MAX},
            "additionalProperties": {"anyOf": values},
        },
    )


def _amount() -> Any:
    return Field(description='Major units as a decimal string, e.g. "12.34"; never a number')


class InitiatePaymentBody(_Body):
    payment_id: Id = Field(description="Chosen by the client, so a retried create is safe")
    amount: Amount = _amount()
    currency: Currency = Field(description="ISO 4217 code, e.g. EUR")
    merchant_id: Id
    customer_id: Id
    description: Text | None = None
    metadata: dict[str, Any] = _metadata()


class AssessRiskBody(_Body):
    decision: RiskDecision
    score: Score = Field(description='Decimal string from 0 to 1, e.g. "0.12"')
    reason: Text
    metadata: dict[str, Any] = _metadata()


class AuthorizePaymentBody(_Body):
    processor: Id | None = None
    reference: Text | None = None
    hold_until: Timestamp | None = Field(
        default=None, description="ISO-8601 with zone; default 7 days"
    )


class FailPaymentBody(_Body):
    reason: Text
    processor: Id | None = None
    processor_code: Text | None = None


class CapturePaymentBody(_Body):
    amount: Amount = _amount()
    currency: Currency | None = Field(default=None, description="Must be the payment's currency")
    final: bool = Field(default=False, description="Release what remains of the hold")


class VoidPaymentBody(_Body):
    reason: Text | None = None


class RefundPaymentBody(_Body):
    amount: Amount = _amount()
    currency: Currency | None = Field(default=None, description="Must be the payment's currency")
    reason: Text | None = None


class SettlePaymentBody(_Body):
    reference: Text | None = None


class ExpirePaymentBody(_Body):
    """No fields: send ``{}`` or no body."""


class CommandHeaders(BaseModel):
    """Headers of every command (Powertools maps ``x_actor`` to ``X-Actor``, case-insensitively)."""

    model_config = ConfigDict(strict=True)

    idempotency_key: Annotated[
        str,
        _documented(
            minLength=1, maxLength=IDEMPOTENCY_KEY_CHARS_MAX, pattern=IDEMPOTENCY_KEY_PATTERN
        ),
    ] = Field(description="Required: the same key and request never repeat (e.g. a UUID)")
    x_actor: ActorHeader | None = Field(
        default=None, description="KIND:ID, KIND agent|api|system|operator"
    )
    x_actor_model: Text | None = None
    x_actor_version: Text | None = None
    x_correlation_id: Id | None = None
    x_causation_id: Id | None = None


Headers = Annotated[CommandHeaders, Header()]
HEADERS_PARAMETER = "headers"  # the name every route gives its ``Headers`` parameter


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class GatewayError(BaseModel):
    """API Gateway's own answer to a request it refuses before the API runs (403: unsigned, badly
    signed or not allowed). ``AccessDeniedException`` spells the field ``Message``."""

    message: str | None = None
    denied: str | None = Field(default=None, alias="Message")


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


class MerchantPaymentsResponse(BaseModel):
    payments: list[PaymentView] = Field(description="Most recently updated first")
    next_cursor: str | None = Field(
        description="Pass as cursor for the next page; null when no payment follows. A page may "
        "hold fewer than limit payments (a status filter reads a bounded part of the index per "
        "request) and still have a next page"
    )
