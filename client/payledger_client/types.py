"""What the API returns, typed: the payment and its events as the API's JSON (``TypedDict``s,
so they are plain dicts), and the results of commands and listings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

Status = Literal[
    "initiated",
    "in_review",
    "approved",
    "declined",
    "authorized",
    "captured",
    "settled",
    "refunded",
    "voided",
    "expired",
    "failed",
]
RiskDecision = Literal["approve", "review", "decline"]
ActorKind = Literal["agent", "api", "system", "operator"]


class Payment(TypedDict):
    """A payment as the API shows it. Amounts are decimal strings in major units (``amount``) or
    integers in minor units (``*_minor``), never floats."""

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


class Actor(TypedDict, total=False):
    kind: ActorKind
    id: str
    model: str | None
    version: str | None


class Event(TypedDict):
    """One recorded event with its envelope and its link in the payment's hash chain."""

    stream_id: str
    version: int
    event_id: str
    event_type: str
    schema_version: int
    occurred_at: str
    recorded_at: str
    actor: Actor
    correlation_id: str
    causation_id: str | None
    idempotency_key: str
    request_digest: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A command's answer: the payment after it and the events it recorded. ``replayed`` is true
    when the API had already recorded this key's request (``Idempotent-Replayed``): the events are
    the original ones, nothing new was written."""

    payment: Payment
    events: list[Event]
    replayed: bool
    correlation_id: str | None
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``next_cursor`` (opaque) fetches the next, None on the last."""

    payments: list[Payment]
    next_cursor: str | None
