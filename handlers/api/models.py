"""The API's request and response models (types only: the domain commands validate values)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Header
from pydantic import BaseModel, ConfigDict, Field

from ledger.domain.events import RiskDecision
from ledger.domain.payment import Status
from ledger.envelope import ActorKind


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
HEADERS_PARAMETER = "headers"  # the name every route gives its ``Headers`` parameter


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
