"""Decode and check a stored event, the same way for every consumer that builds a view.

Every view (the projection Lambda, each read model, analytics, a rebuild, from the table or from
the archive) must accept exactly the same events: a record one read model applies and another
refuses would make them diverge, and the refused one would be dead-lettered while the other moved
on. ``decode_event`` is that one gate: beyond the payload's own model (``decode_payload``), it
refuses what no view can store faithfully. Checks that depend on the stream's state (the hash
link, versions) are the consumers' own.

The archive does not apply it: it is not a view but the auditors' copy of the events table, and
holds every event the table holds, including one this gate refuses (``archive.records`` says
what it refuses: only what it cannot store faithfully). Views built from the archive apply the
gate when they read it.
"""

from __future__ import annotations

import re
from datetime import datetime

from ledger.domain.errors import LedgerError, UndecodableEventError
from ledger.domain.events import Payload, PaymentAuthorized, PaymentInitiated, decode_payload
from ledger.envelope import PAYMENT_STREAM_PREFIX, RecordedEvent, payment_id_of

INTEGER_MAX = 2**63 - 1  # amounts are 64-bit in every store (DynamoDB numbers, bigint, Parquet)
# DESIGN §3: ISO-8601 UTC with microseconds, as ledger.domain.timestamps.format_timestamp writes.
# Only this form round-trips through a SQL timestamp to the same text.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
# A plain decimal that Python's Decimal and SQL numeric store and print back unchanged.
_SCORE = re.compile(r"(?:0|[1-9][0-9]{0,29})(?:\.[0-9]{1,30})?\Z")
# "\u0000" in JSON text (not an escaped backslash followed by "u0000"): SQL text cannot hold NUL.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def decode_event(event: RecordedEvent) -> Payload:
    """The event's payload, or ``UndecodableEventError`` saying why no consumer may apply it."""
    try:
        payload = decode_payload(event.event_type, event.schema_version, event.payload)
    except UndecodableEventError:
        raise
    except LedgerError as error:  # e.g. a float in the payload
        raise UndecodableEventError(f"{event.event_type}: {error.message}") from error
    _check_envelope(event)
    if (event.version == 1) != isinstance(payload, PaymentInitiated):
        raise UndecodableEventError(
            f"{event.event_type} at version {event.version}: a payment stream starts with"
            " PaymentInitiated, and only there"
        )
    if isinstance(payload, PaymentInitiated) and payload.payment_id != _payment_id(event):
        raise UndecodableEventError("PaymentInitiated names another payment than its stream")
    if isinstance(payload, PaymentAuthorized):
        event_time(payload.hold_until, "hold_until")
    score = payload.__dict__.get("score")
    if score is not None and _SCORE.match(score) is None:
        raise UndecodableEventError(f"risk score {score[:32]!r} is not a plain decimal")
    for line in payload.__dict__.get("postings", ()):
        if line.amount_minor > INTEGER_MAX:
            raise UndecodableEventError(f"posting amount {line.amount_minor} exceeds 64 bits")
    for name in ("amount_minor", "released_minor"):
        amount = payload.__dict__.get(name)
        if amount is not None and not 0 < amount <= INTEGER_MAX:
            raise UndecodableEventError(f"{name} {amount} is not a positive 64-bit amount")
    return payload


def is_event_time(text: str) -> bool:
    """Shaped like an event timestamp (``event_time`` also checks that it is a real time)."""
    return _TIMESTAMP.match(text) is not None


def event_time(text: str, name: str) -> datetime:
    """A timestamp of an event, which must be in the canonical form of DESIGN §3."""
    if _TIMESTAMP.match(text) is None:
        raise UndecodableEventError(f"{name} {text[:40]!r} is not ISO-8601 UTC with microseconds")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise UndecodableEventError(f"{name} {text[:40]!r} is not a valid time") from exc


def _check_envelope(event: RecordedEvent) -> None:
    event_time(event.recorded_at, "recorded_at")
    if event.occurred_at != event.recorded_at:
        event_time(event.occurred_at, "occurred_at")
    actor = event.actor
    stored = f"{event.event_id}{event.correlation_id}{event.causation_id}{event.hash}"
    stored += f"{event.idempotency_key}{actor.id}{actor.model}{actor.version}"
    if "\x00" in stored:
        raise UndecodableEventError("the envelope holds a NUL character")
    if "u0000" in event.payload and _NUL_ESCAPE.search(event.payload):
        raise UndecodableEventError("the payload holds a NUL character (\\u0000)")


def _payment_id(event: RecordedEvent) -> str:
    if not event.stream_id.startswith(PAYMENT_STREAM_PREFIX):
        raise UndecodableEventError(f"{event.stream_id[:64]!r} is not a payment stream")
    return payment_id_of(event.stream_id)
