"""The pure half of the PostgreSQL projection: classify a batch, fold it, and build view rows.

No I/O. ``projection.py`` reads each stream's head (last applied version, hash and payment row),
calls ``plan_batch`` and writes the rows it returns in the same transaction.

Per stream, in version order (DESIGN §6):
- a version at or below the head is a duplicate: skipped;
- head + 1 is applied: its ``prev_hash`` must be the head's hash and it must pass
  ``ledger.decoding.decode_event`` (the gate every consumer shares); then the payment state is
  evolved with ``ledger.domain.payment.evolve``, so the ``payments`` row equals
  ``ledger.service.fold``;
- anything else fails the stream from that event on (``ApplyResult.fail``): a gap, an
  undecodable or invalid event, a broken chain. Later events of that stream are not looked at.

Gap fills: ``find_gaps`` names the streams whose first delivered event beyond the head is not
head + 1; ``projection.py`` loads the missing versions from the event store and ``gap_fill``
keeps them only if the store holds every one. ``plan_batch`` applies a fill before the delivered
events with the same checks, as if delivered, so the views cannot tell a filled event from a
delivered one. A fill is applied whole or not at all, and only if it joins both ends: its first
event links to the head's hash and the next delivered event links to its last one, so a fill
never splices another history (another table, a forged event) onto the views. A refused fill
fails the stream at its first delivered event beyond the head (``gap_fill_refused``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.decoding import decode_event, event_time
from ledger.domain.errors import ChainBrokenError, LedgerError, ValidationError
from ledger.domain.events import (
    Payload,
    PaymentInitiated,
    RiskAssessed,
)
from ledger.domain.payment import PaymentState, evolve
from ledger.envelope import GENESIS_HASH, RecordedEvent, payment_id_of
from ledger.service import PaymentSnapshot
from projections.core import ApplyResult

Row = tuple[Any, ...]
BIGINT_MAX = 2**63 - 1


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
    filled: int = 0  # events applied from gap fills (not delivered, so not in ``applied``)


def plan_batch(
    streams: Mapping[str, Sequence[RecordedEvent]],
    heads: Mapping[str, StreamHead],
    result: ApplyResult,
    fills: Mapping[str, Sequence[RecordedEvent]] | None = None,
) -> BatchRows:
    """The rows ``streams`` (payment streams, each in version order) add to the views.

    ``fills`` holds, per stream, events loaded from the event store to close a gap before its
    delivered events (``find_gaps``); they are applied first, as if delivered (see module).
    """
    rows = BatchRows()
    for stream_id, events in streams.items():
        fold = _Fold.at(stream_id, heads.get(stream_id))
        fill = () if fills is None else fills.get(stream_id, ())
        if not fill or _plan_fill(fold, fill, events, rows, result):
            _plan_delivered(fold, events, rows, result)
        fold.close(rows)
    return rows


@dataclass(frozen=True, slots=True)
class Gap:
    """A stream whose first delivered event beyond the views' head is not the next version."""

    applied: int  # the head's version (0: nothing applied yet)
    first: RecordedEvent  # the first delivered event beyond it


def find_gaps(
    streams: Mapping[str, Sequence[RecordedEvent]], heads: Mapping[str, StreamHead]
) -> dict[str, Gap]:
    """The streams of the batch whose delivered events do not follow their head."""
    gaps = {}
    for stream_id, events in streams.items():
        head = heads.get(stream_id)
        applied = 0 if head is None else head.version
        first = next((event for event in events if event.version > applied), None)
        if first is not None and first.version > applied + 1:
            gaps[stream_id] = Gap(applied, first)
    return gaps


def gap_fill(gap: Gap, loaded: Sequence[RecordedEvent]) -> list[RecordedEvent] | None:
    """The events of ``loaded`` (the stream up to ``gap.first``, as the event store returned it)
    that close ``gap``, or None if the store holds too few: then the gap cannot be filled."""
    missing = [event for event in loaded if event.version > gap.applied]
    if len(missing) != gap.first.version - 1 - gap.applied:
        return None
    return missing


@dataclass(slots=True)
class _Fold:
    """Where one stream's planning stands: the views' head, then each event applied after it."""

    payment_id: str
    version: int
    head_hash: str
    state: PaymentState | None
    created_at: str | None
    last: RecordedEvent | None = None  # the last event applied by this batch

    @classmethod
    def at(cls, stream_id: str, head: StreamHead | None) -> _Fold:
        payment_id = payment_id_of(stream_id)
        if head is None:
            return cls(payment_id, 0, GENESIS_HASH, None, None)
        snapshot = head.snapshot
        return cls(payment_id, head.version, head.hash, snapshot.state, snapshot.created_at)

    def step(self, event: RecordedEvent, rows: BatchRows) -> None:
        """Apply ``event`` (the next version) and add its rows; a typed error, and nothing
        changed, if it cannot be applied."""
        payload, recorded_at = _check_event(event, self.payment_id, self.state, self.head_hash)
        state = evolve(self.state, payload)
        _check_amounts(state)
        _add_event_rows(event, self.payment_id, payload, recorded_at, rows)
        if self.created_at is None:
            self.created_at = event.recorded_at
        self.state, self.version, self.head_hash = state, event.version, event.hash
        self.last = event

    def close(self, rows: BatchRows) -> None:
        """Add the stream's ``payments`` and position rows, if the batch applied anything."""
        last = self.last
        if last is None:
            return
        assert self.state is not None
        assert self.created_at is not None
        snapshot = PaymentSnapshot(
            self.state, last.version, last.hash, self.created_at, last.recorded_at
        )
        rows.payments.append(payment_row(snapshot))
        rows.positions.append(
            (last.stream_id, last.version, last.event_id, last.hash, _time(last.recorded_at))
        )


def _plan_delivered(
    fold: _Fold, events: Sequence[RecordedEvent], rows: BatchRows, result: ApplyResult
) -> None:
    for event in events:
        if event.version <= fold.version:
            result.duplicates += 1
            continue
        if event.version != fold.version + 1:
            result.fail(
                event,
                f"version_gap: version {event.version} follows applied version {fold.version}",
            )
            return
        try:
            fold.step(event, rows)
        except LedgerError as error:
            result.fail(event, f"{error.code}: {error.message}")
            return
        result.applied += 1


def _plan_fill(
    fold: _Fold,
    fill: Sequence[RecordedEvent],
    events: Sequence[RecordedEvent],
    rows: BatchRows,
    result: ApplyResult,
) -> bool:
    """Apply ``fill`` before the delivered ``events``, all of it or none: True if applied.

    A refused fill fails the stream at its first delivered event beyond the head (the one that
    exposed the gap) and leaves no rows.
    """
    start = fold.version
    marks = (len(rows.postings), len(rows.agent_actions))
    assert fold.last is None, "a fill comes before anything else of its stream"
    try:
        filled = _apply_fill(fold, fill, events, rows)
    except LedgerError as error:
        exposed = next(event for event in events if event.version > start)
        result.fail(
            exposed,
            f"gap_fill_refused: at version {fold.version + 1}: {error.code}: {error.message}",
        )
        del rows.postings[marks[0] :], rows.agent_actions[marks[1] :]
        fold.last = None
        result.duplicates += sum(event.version <= start for event in events)
        return False
    rows.filled += filled
    return True


def _apply_fill(
    fold: _Fold, fill: Sequence[RecordedEvent], events: Sequence[RecordedEvent], rows: BatchRows
) -> int:
    """Apply ``fill`` onto ``fold``; how many events it applied. A typed error if one cannot be
    applied or if it does not join both ends: its first event must link to the head's hash
    (checked by ``_check_event``), and the next delivered event must link to its last one.

    Versions the head already holds are skipped: another applier got there since the gap was
    seen (the chain is then checked from that head on).
    """
    filled = 0
    for event in fill:
        if event.version <= fold.version:
            continue
        if event.version != fold.version + 1:
            raise ValidationError(
                f"the event store's version {event.version} follows applied version {fold.version}"
            )
        fold.step(event, rows)
        filled += 1
    following = next((event for event in events if event.version > fold.version), None)
    if (
        filled
        and following is not None
        and following.version == fold.version + 1
        and following.prev_hash != fold.head_hash
    ):
        raise ChainBrokenError(
            f"delivered version {following.version} does not follow the event store's version"
            f" {fold.version}"
        )
    return filled


def _check_event(
    event: RecordedEvent, payment_id: str, state: PaymentState | None, head_hash: str
) -> tuple[Payload, datetime]:
    """The event's payload and recording time if it can be applied after ``state``; a typed
    error otherwise. What any consumer refuses is ``ledger.decoding``'s to say; the link to the
    applied head is this view's own check."""
    if event.prev_hash != head_hash:
        raise ChainBrokenError(
            f"prev_hash {event.prev_hash[:12]}… is not the applied head {head_hash[:12]}…"
        )
    payload = decode_event(event)
    if (state is None) != isinstance(payload, PaymentInitiated):
        raise ValidationError(
            f"{event.event_type} at version {event.version} follows no PaymentInitiated"
        )
    assert payment_id_of(event.stream_id) == payment_id, (event.stream_id, payment_id)
    return payload, event_time(event.recorded_at, "recorded_at")


def _field(payload: Payload, name: str, default: Any) -> Any:
    """``payload.name`` if its model has that field (a dict lookup: a pydantic attribute miss
    costs an exception)."""
    return payload.__dict__.get(name, default)


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
    """An event-format timestamp already checked (``ledger.decoding.event_time``) or read back."""
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
