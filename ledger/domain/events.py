"""Event payloads: one pydantic model per event type and schema version, plus the upcasters.

Payloads hold amounts as integer minor units and carry ``merchant_id`` and ``currency`` so every
stream consumer (archive, analytics) can read an event without the rest of its payment.
Money-moving events carry their postings (see ``ledger.domain.postings``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

import pydantic

from ledger.domain.errors import UndecodableEventError
from ledger.domain.postings import Posting

MetadataValue = str | int | bool | None
RiskDecision = Literal["approve", "review", "decline"]


class Payload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", strict=True)

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class PaymentInitiated(Payload):
    payment_id: str
    merchant_id: str
    customer_id: str
    amount_minor: int
    currency: str
    description: str | None = None
    metadata: dict[str, MetadataValue] = pydantic.Field(default_factory=dict)


class RiskAssessed(Payload):
    merchant_id: str
    decision: RiskDecision
    score: str
    reason: str
    metadata: dict[str, MetadataValue] = pydantic.Field(default_factory=dict)


class PaymentAuthorized(Payload):
    merchant_id: str
    amount_minor: int
    currency: str
    processor: str
    processor_reference: str | None = None
    hold_until: str
    postings: tuple[Posting, ...]


class PaymentFailed(Payload):
    merchant_id: str
    processor: str
    reason: str
    processor_code: str | None = None


class PaymentCaptured(Payload):
    merchant_id: str
    amount_minor: int
    currency: str
    postings: tuple[Posting, ...]


class PaymentVoided(Payload):
    merchant_id: str
    released_minor: int
    currency: str
    reason: str | None = None
    postings: tuple[Posting, ...]


class PaymentExpired(Payload):
    merchant_id: str
    released_minor: int
    currency: str
    postings: tuple[Posting, ...]


class PaymentHoldReleased(Payload):
    """The rest of a hold released by a final capture or by settlement (not a void)."""

    merchant_id: str
    released_minor: int
    currency: str
    reason: Literal["final_capture", "settlement"]
    postings: tuple[Posting, ...]


class PaymentSettled(Payload):
    merchant_id: str
    amount_minor: int
    currency: str
    processor: str
    settlement_reference: str | None = None
    postings: tuple[Posting, ...]


class PaymentRefunded(Payload):
    merchant_id: str
    amount_minor: int
    currency: str
    reason: str | None = None
    postings: tuple[Posting, ...]


PAYLOAD_TYPES: dict[str, type[Payload]] = {
    model.__name__: model
    for model in (
        PaymentInitiated,
        RiskAssessed,
        PaymentAuthorized,
        PaymentFailed,
        PaymentCaptured,
        PaymentVoided,
        PaymentExpired,
        PaymentHoldReleased,
        PaymentSettled,
        PaymentRefunded,
    )
}
SCHEMA_VERSIONS: dict[str, int] = dict.fromkeys(PAYLOAD_TYPES, 1)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
# (event_type, from_version) -> function returning the document at from_version + 1. Old events
# are upcast when read and never rewritten; a new schema version registers its upcaster here.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def event_type_of(payload: Payload) -> str:
    return type(payload).__name__


def decode_payload(
    event_type: str,
    schema_version: int,
    payload_json: str,
    *,
    upcasters: Mapping[tuple[str, int], Upcaster] = UPCASTERS,
    schema_versions: Mapping[str, int] = SCHEMA_VERSIONS,
) -> Payload:
    """Validate a stored payload into its model, upcasting older schema versions first."""
    model = PAYLOAD_TYPES.get(event_type)
    current = schema_versions.get(event_type)
    if model is None or current is None:
        raise UndecodableEventError(f"unknown event type {event_type!r}")
    if not 1 <= schema_version <= current:
        raise UndecodableEventError(f"{event_type} has unknown schema version {schema_version}")
    try:
        if schema_version < current:
            payload_json = json.dumps(
                _upcast(event_type, schema_version, current, payload_json, upcasters)
            )
        return model.model_validate_json(payload_json)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError, and so is bad JSON
        raise UndecodableEventError(
            f"{event_type} v{schema_version} payload is invalid: {exc}"
        ) from exc


def _upcast(
    event_type: str,
    schema_version: int,
    current: int,
    payload_json: str,
    upcasters: Mapping[tuple[str, int], Upcaster],
) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(payload_json)
    for version in range(schema_version, current):
        upcaster = upcasters.get((event_type, version))
        if upcaster is None:
            raise UndecodableEventError(f"no upcaster for {event_type} v{version}")
        document = upcaster(document)
    return document
