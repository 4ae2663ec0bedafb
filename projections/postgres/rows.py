"""The pure half of the PostgreSQL projection: classify a batch, fold it, and build view rows.

No I/O. ``projection.py`` reads each stream's head (last applied version, hash and payment row),
calls ``plan_batch`` and writes the rows it returns in the same transaction.

Per stream, in version order (DESIGN §6):
- a version at or below the head is a duplicate: skipped;
- head + 1 is applied: its ``prev_hash`` must be the head's hash, its payload must decode and
  hold only what PostgreSQL can store (see ``_check_event``); then the payment state is evolved
  with ``ledger.domain.payment.evolve``, so the ``payments`` row equals ``ledger.service.fold``;
- anything else fails the stream from that event on (``ApplyResult.fail``): a gap, an
  undecodable or invalid event, a broken chain. Later events of that stream are not looked at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.domain.errors import ChainBrokenError, LedgerError, ValidationError
from ledger.domain.events import (
    Payload,
    PaymentAuthorized,
    PaymentInitiated,
    RiskAssessed,
    decode_payload,
)
from ledger.domain.payment import PaymentState, evolve
from ledger.envelope import GENESIS_HASH, RecordedEvent, payment_id_of
from ledger.service import PaymentSnapshot
from projections.core import ApplyResult

Row = tuple[Any, ...]
BIGINT_MAX = 2**63 - 1
# DESIGN §3: ISO-8601 UTC with microseconds, as ledger.domain.timestamps.format_timestamp writes.
# Only this form round-trips through timestamptz to the same text, so a payments row resumes the
# fold exactly; anything else is an invalid event.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
# A score Decimal and PostgreSQL's numeric store and print back unchanged.
_SCORE = re.compile(r"(?:0|[1-9][0-9]{0,29})(?:\.[0-9]{1,30})?\Z")
# "\u0000" in JSON text (not an escaped backslash followed by "u0000"): PostgreSQL text and jsonb
# cannot hold the NUL character.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


@dataclass(frozen=True, slots=True)
class StreamHead:
    """What the views hold for a stream: the last applied version, its hash, the payment then."""

    version: int
    hash: str
    snapshot: PaymentSnapshot


@dataclass(slots=True)
class BatchRows:
    """Rows to write, in the column order of ``projections.postgres.tables``."""

    postings: list[Row] = field(default_factory=list)
    agent_actions: list[Row] = field(default_factory=list)
    payments: list[Row] = field(default_factory=list)  # one per stream with applied events
    positions: list[Row] = field(default_factory=list)  # one per stream with applied events


def plan_batch(
    streams: Mapping[str, Sequence[RecordedEvent]],
    heads: Mapping[str, StreamHead],
    result: ApplyResult,
) -> BatchRows:
    """The rows ``streams`` (payment streams, each in version order) add to the views."""
    rows = BatchRows()
    for stream_id, events in streams.items():
        _plan_stream(stream_id, events, heads.get(stream_id), rows, result)
    return rows


def _plan_stream(
    stream_id: str,
    events: Sequence[RecordedEvent],
    head: StreamHead | None,
    rows: BatchRows,
    result: ApplyResult,
) -> None:
    payment_id = payment_id_of(stream_id)
    version, head_hash = (0, GENESIS_HASH) if head is None else (head.version, head.hash)
    state = None if head is None else head.snapshot.state
    created_at = None if head is None else head.snapshot.created_at
    last: RecordedEvent | None = None
    for event in events:
        if event.version <= version:
            result.duplicates += 1
            continue
        if event.version != version + 1:
            result.fail(
                event, f"version_gap: version {event.version} follows applied version {version}"
            )
            return _close_stream(payment_id, state, last, created_at, rows)
        try:
            payload, recorded_at = _check_event(event, payment_id, state, head_hash)
            state = evolve(state, payload)
            _check_amounts(state)
        except LedgerError as error:
            result.fail(event, f"{error.code}: {error.message}")
            return _close_stream(payment_id, state, last, created_at, rows)
        _add_event_rows(event, payment_id, payload, recorded_at, rows)
        if created_at is None:
            created_at = event.recorded_at
        version, head_hash, last = event.version, event.hash, event
        result.applied += 1
    _close_stream(payment_id, state, last, created_at, rows)


def _close_stream(
    payment_id: str,
    state: PaymentState | None,
    last: RecordedEvent | None,
    created_at: str | None,
    rows: BatchRows,
) -> None:
    if last is None:
        return
    assert state is not None
    assert created_at is not None
    snapshot = PaymentSnapshot(state, last.version, last.hash, created_at, last.recorded_at)
    rows.payments.append(payment_row(snapshot))
    rows.positions.append(
        (last.stream_id, last.version, last.event_id, last.hash, _time(last.recorded_at))
    )


def _check_event(
    event: RecordedEvent, payment_id: str, state: PaymentState | None, head_hash: str
) -> tuple[Payload, datetime]:
    """The event's payload and recording time if it can be applied after ``state``; a typed
    error otherwise."""
    if event.prev_hash != head_hash:
        raise ChainBrokenError(
            f"prev_hash {event.prev_hash[:12]}… is not the applied head {head_hash[:12]}…"
        )
    _check_text(event)
    payload = decode_payload(event.event_type, event.schema_version, event.payload)
    if (state is None) != isinstance(payload, PaymentInitiated):
        raise ValidationError(
            f"{event.event_type} at version {event.version}: a payment stream starts with"
            " PaymentInitiated, and only there"
        )
    if isinstance(payload, PaymentInitiated) and payload.payment_id != payment_id:
        raise ValidationError(
            f"PaymentInitiated for {payload.payment_id[:64]!r} in the stream of {payment_id!r}"
        )
    recorded_at = check_timestamp(event.recorded_at, "recorded_at")
    if event.occurred_at != event.recorded_at:
        check_timestamp(event.occurred_at, "occurred_at")
    if isinstance(payload, PaymentAuthorized):
        check_timestamp(payload.hold_until, "hold_until")
    elif isinstance(payload, RiskAssessed) and _SCORE.match(payload.score) is None:
        raise ValidationError(f"risk score {payload.score[:32]!r} is not a plain decimal")
    for line in _field(payload, "postings", ()):
        if line.amount_minor > BIGINT_MAX:
            raise ValidationError(f"posting amount {line.amount_minor} exceeds 64 bits")
    return payload, recorded_at


def _field(payload: Payload, name: str, default: Any) -> Any:
    """``payload.name`` if its model has that field (a dict lookup: a pydantic attribute miss
    costs an exception)."""
    return payload.__dict__.get(name, default)


def _check_text(event: RecordedEvent) -> None:
    actor = event.actor
    stored = f"{event.event_id}{event.correlation_id}{event.hash}"
    stored += f"{actor.id}{actor.model}{actor.version}"
    if "\x00" in stored:
        raise ValidationError("the envelope holds a NUL character")
    if "u0000" in event.payload and _NUL_ESCAPE.search(event.payload):
        raise ValidationError("the payload holds a NUL character (\\u0000)")


def _check_amounts(state: PaymentState) -> None:
    amounts = (
        state.amount_minor,
        state.authorized_minor,
        state.captured_minor,
        state.released_minor,
        state.refunded_minor,
        state.settled_minor,
    )
    if max(amounts) > BIGINT_MAX or min(amounts) < -BIGINT_MAX - 1:
        raise ValidationError(f"payment amounts {amounts} exceed 64 bits")


def is_event_timestamp(text: str) -> bool:
    """Shaped like an event timestamp (``check_timestamp`` also checks it is a real time)."""
    return _TIMESTAMP.match(text) is not None


def check_timestamp(text: str, name: str) -> datetime:
    if _TIMESTAMP.match(text) is None:
        raise ValidationError(f"{name} {text[:40]!r} is not ISO-8601 UTC with microseconds")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(f"{name} {text[:40]!r} is not a valid time") from exc


def _add_event_rows(
    event: RecordedEvent,
    payment_id: str,
    payload: Payload,
    recorded_at: datetime,
    rows: BatchRows,
) -> None:
    postings = _field(payload, "postings", ())
    for line_number, line in enumerate(postings, start=1):
        rows.postings.append(
            (
                event.event_id,
                line_number,
                payment_id,
                event.version,
                line.account,
                line.direction,
                line.amount_minor,
                line.currency,
                line.phase,
                event.event_type,
                recorded_at,
            )
        )
    actor = event.actor
    risk = payload if isinstance(payload, RiskAssessed) else None
    if actor.kind == "agent" or risk is not None:
        rows.agent_actions.append(
            (
                event.event_id,
                payment_id,
                event.version,
                actor.kind,
                actor.id,
                actor.model,
                actor.version,
                event.event_type,
                None if risk is None else risk.decision,
                None if risk is None else Decimal(risk.score),
                _field(payload, "reason", None),
                agent_metadata(payload),
                event.correlation_id,
                recorded_at if event.occurred_at == event.recorded_at else _time(event.occurred_at),
            )
        )


def agent_metadata(payload: Payload) -> dict[str, Any]:
    """``agent_actions.metadata``: the payload's own metadata, else the payload itself without
    its postings (so a routing choice keeps its processor and reference)."""
    metadata: dict[str, Any] | None = _field(payload, "metadata", None)
    if metadata is not None:
        return metadata
    document = payload.to_document()
    document.pop("postings", None)
    return document


def payment_row(snapshot: PaymentSnapshot) -> Row:
    """The ``payments`` row of ``snapshot``, typed for binary COPY."""
    state = snapshot.state
    return (
        state.payment_id,
        state.merchant_id,
        state.customer_id,
        state.currency,
        state.status,
        state.amount_minor,
        state.authorized_minor,
        state.captured_minor,
        state.released_minor,
        state.refunded_minor,
        state.settled_minor,
        state.settled,
        state.risk_decision,
        None if state.risk_score is None else Decimal(state.risk_score),
        state.processor,
        None if state.hold_until is None else _time(state.hold_until),
        state.description,
        state.failure_reason,
        snapshot.version,
        snapshot.head_hash,
        _time(snapshot.created_at),
        _time(snapshot.updated_at),
    )


def _time(text: str) -> datetime:
    """An event-format timestamp already checked (``check_timestamp``) or read back."""
    return datetime.fromisoformat(text)


def snapshot_from_row(row: Sequence[Any]) -> PaymentSnapshot:
    """The snapshot a ``payments`` row holds, read with ``tables.payment_select`` (columns in
    ``PAYMENT_COLUMNS`` order, timestamps as event-format text, ``risk_score`` as text)."""
    (
        payment_id,
        merchant_id,
        customer_id,
        currency,
        status,
        amount_minor,
        authorized_minor,
        captured_minor,
        released_minor,
        refunded_minor,
        settled_minor,
        settled,
        risk_decision,
        risk_score,
        processor,
        hold_until,
        description,
        failure_reason,
        version,
        head_hash,
        created_at,
        updated_at,
    ) = row
    state = PaymentState(
        payment_id=payment_id,
        status=status,
        merchant_id=merchant_id,
        customer_id=customer_id,
        currency=currency,
        amount_minor=amount_minor,
        description=description,
        risk_decision=risk_decision,
        risk_score=risk_score,
        processor=processor,
        hold_until=hold_until,
        authorized_minor=authorized_minor,
        captured_minor=captured_minor,
        released_minor=released_minor,
        refunded_minor=refunded_minor,
        settled_minor=settled_minor,
        settled=settled,
        failure_reason=failure_reason,
    )
    return PaymentSnapshot(state, version, head_hash, created_at, updated_at)
