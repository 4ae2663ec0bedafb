"""``ledger.decoding.decode_event``: the one gate every stream consumer applies to stored events."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from ledger.codec import canonical_json
from ledger.decoding import decode_event
from ledger.domain.errors import UndecodableEventError
from ledger.domain.events import PaymentInitiated
from ledger.envelope import RecordedEvent


def _with_payload(event: RecordedEvent, **changes: Any) -> RecordedEvent:
    return replace(event, payload=canonical_json({**json.loads(event.payload), **changes}))


def test_every_event_the_service_writes_decodes(recorded_history: list[RecordedEvent]) -> None:
    payloads = [decode_event(event) for event in recorded_history]
    assert isinstance(payloads[0], PaymentInitiated)


@pytest.mark.parametrize(
    ("index", "change", "reason"),
    [
        (0, {"recorded_at": "2026-11-21 12:00:00"}, "recorded_at"),
        (0, {"recorded_at": "2026-13-41T12:00:00.000000Z"}, "not a valid time"),
        (0, {"occurred_at": "yesterday"}, "occurred_at"),
        (0, {"correlation_id": "flow\x00"}, "NUL"),
        (0, {"stream_id": "payment#someone-else"}, "another payment"),
        (0, {"stream_id": "order#pay-1"}, "not a payment stream"),
        (1, {"version": 1}, "starts with PaymentInitiated"),
        (0, {"version": 2}, "starts with PaymentInitiated"),
        (0, {"event_type": "PaymentTeleported"}, "unknown event type"),
    ],
)
def test_envelopes_no_view_can_store_are_refused(
    recorded_history: list[RecordedEvent], index: int, change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(UndecodableEventError, match=reason):
        decode_event(replace(recorded_history[index], **change))


@pytest.mark.parametrize(
    ("index", "change", "reason"),
    [
        (1, {"score": "high"}, "plain decimal"),
        (1, {"score": "1e3"}, "plain decimal"),
        (2, {"hold_until": "2026-11-28"}, "hold_until"),
        (0, {"merchant_id": "m\x00"}, "NUL"),
        (0, {"amount_minor": 2**63}, "64-bit"),
        (0, {"amount_minor": 0}, "64-bit"),
        (0, {"surprise": True}, "invalid"),
    ],
)
def test_payloads_no_view_can_store_are_refused(
    recorded_history: list[RecordedEvent], index: int, change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(UndecodableEventError, match=reason):
        decode_event(_with_payload(recorded_history[index], **change))


def test_a_float_in_a_payload_is_refused(recorded_history: list[RecordedEvent]) -> None:
    event = replace(recorded_history[0], payload=recorded_history[0].payload.replace("1000", "1e3"))
    with pytest.raises(UndecodableEventError):
        decode_event(event)
