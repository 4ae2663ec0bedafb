"""The payment application service: load the stream, decide, append; idempotent and retried.

One command = one strongly consistent load (DynamoDB: one Query) + one append (one PutItem, or one
TransactWriteItems when the command yields several events). Idempotency lives in the history: every
event stores its command's idempotency key and request digest, so a retried command finds its key
in the stream and gets the original result back, with no new event.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ledger.codec import canonical_json, chain_hash, hash_document, request_digest, uuid7
from ledger.domain.errors import (
    ChainBrokenError,
    ConcurrencyError,
    IdempotencyConflictError,
    LimitExceededError,
    NotFoundError,
    ValidationError,
)
from ledger.domain.events import SCHEMA_VERSIONS, Payload, decode_payload, event_type_of
from ledger.domain.limits import IDEMPOTENCY_KEY_CHARS_MAX, PAYLOAD_BYTES_MAX, STREAM_EVENTS_MAX
from ledger.domain.money import format_amount
from ledger.domain.payment import Command, PaymentState, decide, evolve
from ledger.domain.timestamps import format_timestamp, parse_timestamp
from ledger.domain.validation import check_id, check_text, reject_pans
from ledger.envelope import (
    ACTOR_KINDS,
    GENESIS_HASH,
    Actor,
    RecordedEvent,
    payment_id_of,
    payment_stream_id,
)
from ledger.store import EventStore

RETRIES_MAX = 5
RETRY_BACKOFF_MAX_S = 0.02
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"  # printable ASCII without spaces
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Who asks, under which idempotency key, and in which flow (correlation) for which cause."""

    idempotency_key: str
    actor: Actor
    correlation_id: str | None = None
    causation_id: str | None = None

    def __post_init__(self) -> None:
        if not self.idempotency_key or len(self.idempotency_key) > IDEMPOTENCY_KEY_CHARS_MAX:
            raise ValidationError(
                f"idempotency key must be 1 to {IDEMPOTENCY_KEY_CHARS_MAX} characters"
            )
        if not _IDEMPOTENCY_KEY.match(self.idempotency_key):
            raise ValidationError("idempotency key must be printable ASCII without spaces")
        reject_pans(self.idempotency_key, where="idempotency key")
        if self.actor.kind not in ACTOR_KINDS:
            raise ValidationError(f"actor kind must be one of {', '.join(ACTOR_KINDS)}")
        check_id(self.actor.id, "actor id")
        for value, name in (
            (self.actor.model, "actor model"),
            (self.actor.version, "actor version"),
        ):
            if value is not None:
                check_text(value, name)
        for value, name in (
            (self.correlation_id, "correlation id"),
            (self.causation_id, "causation id"),
        ):
            if value is not None:
                check_id(value, name)


@dataclass(frozen=True, slots=True)
class PaymentSnapshot:
    """A payment's state after a given version of its stream."""

    state: PaymentState
    version: int
    head_hash: str
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        state = self.state
        return {
            "payment_id": state.payment_id,
            "status": state.status,
            "merchant_id": state.merchant_id,
            "customer_id": state.customer_id,
            "currency": state.currency,
            "amount": format_amount(state.amount_minor, state.currency),
            "amount_minor": state.amount_minor,
            "amount_authorized_minor": state.authorized_minor,
            "amount_captured_minor": state.captured_minor,
            "amount_released_minor": state.released_minor,
            "amount_refunded_minor": state.refunded_minor,
            "amount_settled_minor": state.settled_minor,
            "hold_remaining_minor": state.hold_remaining_minor,
            "hold_until": state.hold_until,
            "processor": state.processor,
            "risk_decision": state.risk_decision,
            "risk_score": state.risk_score,
            "failure_reason": state.failure_reason,
            "description": state.description,
            "version": self.version,
            "head_hash": self.head_hash,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class CommandResult:
    payment: PaymentSnapshot
    events: tuple[RecordedEvent, ...]
    replayed: bool  # True when an earlier identical request already produced ``events``


def fold(events: Sequence[RecordedEvent]) -> PaymentSnapshot | None:
    """The snapshot after ``events`` (a stream prefix, versions 1..n), or None for no events."""
    steps = replay_steps(events)
    return steps[-1][1] if steps else None


def replay_steps(events: Sequence[RecordedEvent]) -> list[tuple[RecordedEvent, PaymentSnapshot]]:
    """Every event of a stream prefix with the payment's snapshot right after it."""
    steps: list[tuple[RecordedEvent, PaymentSnapshot]] = []
    state: PaymentState | None = None
    for expected, event in enumerate(events, start=1):
        if event.version != expected:
            raise ChainBrokenError(
                f"{event.stream_id}: version {event.version} where {expected} was expected"
            )
        state = evolve(state, decode_payload(event.event_type, event.schema_version, event.payload))
        steps.append(
            (
                event,
                PaymentSnapshot(
                    state, event.version, event.hash, events[0].recorded_at, event.recorded_at
                ),
            )
        )
    return steps


def up_to_version(events: Sequence[RecordedEvent], version_max: int) -> list[RecordedEvent]:
    """The events of a stream prefix with ``version <= version_max``. A version the stream has
    not reached is ``NotFoundError``, not the latest state: a caller asking for version 99 of a
    payment with 7 events must not read version 7 as if it were 99."""
    prefix = [event for event in events if event.version <= version_max]
    if not prefix or prefix[-1].version < version_max:
        name = payment_id_of(events[0].stream_id) if events else "?"
        last = prefix[-1].version if prefix else 0
        raise NotFoundError(f"payment {name} has no version {version_max} (its last is {last})")
    return prefix


def recorded_by(events: Sequence[RecordedEvent], as_of: str) -> list[RecordedEvent]:
    """The leading run of a stream's ``events`` recorded at or before ``as_of`` (ISO-8601):
    writers' clocks may disagree, and a later version stamped earlier must not leave a gap in
    the history being folded. ``NotFoundError`` if the payment did not exist yet."""
    cutoff = parse_timestamp(as_of)
    recorded = 0
    while recorded < len(events) and parse_timestamp(events[recorded].recorded_at) <= cutoff:
        recorded += 1
    if not recorded:
        name = payment_id_of(events[0].stream_id) if events else "?"
        raise NotFoundError(f"payment {name} did not exist at {as_of}")
    return list(events[:recorded])


class PaymentService:
    def __init__(
        self,
        store: EventStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_event_id: Callable[[], str] = uuid7,
        retries_max: int = RETRIES_MAX,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._clock = clock
        self._new_event_id = new_event_id
        self._retries_max = retries_max
        self._sleep = sleep

    @property
    def store(self) -> EventStore:
        return self._store

    def execute(self, command: Command, context: CommandContext) -> CommandResult:
        """Run ``command`` exactly once per idempotency key; retry bounded on write conflicts."""
        stream_id = payment_stream_id(command.payment_id)
        digest = request_digest(type(command).__name__, command.request())
        for attempt in range(self._retries_max + 1):
            history = self._store.load(stream_id)
            replay = _find_replay(history, context.idempotency_key, digest, command)
            if replay is not None:
                return replay
            snapshot = fold(history)
            now = self._clock()
            payloads = decide(None if snapshot is None else snapshot.state, command, now)
            events = self._record(stream_id, history, payloads, context, digest, now)
            try:
                self._store.append(events)
            except ConcurrencyError:
                if attempt == self._retries_max:
                    raise
                self._sleep(random.uniform(0, RETRY_BACKOFF_MAX_S * (attempt + 1)))  # noqa: S311
                continue
            result = fold([*history, *events])
            assert result is not None
            return CommandResult(payment=result, events=tuple(events), replayed=False)
        raise AssertionError("unreachable: the loop returns or raises")

    def load(self, payment_id: str, *, version_max: int | None = None) -> list[RecordedEvent]:
        """The payment's events up to ``version_max`` (default: all); ``NotFoundError`` if the
        payment does not exist or has not reached ``version_max``."""
        check_id(payment_id, "payment_id")
        stored_max = None
        if version_max is not None:
            if version_max < 1:
                raise ValidationError("version must be 1 or more")
            # No stream is longer; DynamoDB refuses numbers of more than 38 digits.
            stored_max = min(version_max, STREAM_EVENTS_MAX)
        events = self._store.load(payment_stream_id(payment_id), version_max=stored_max)
        if not events:
            raise NotFoundError(f"payment {payment_id} not found")
        return events if version_max is None else up_to_version(events, version_max)

    def get(
        self, payment_id: str, *, version_max: int | None = None, as_of: str | None = None
    ) -> PaymentSnapshot:
        """The payment after ``version_max`` or as recorded at ``as_of`` (default: now)."""
        events = self.load(payment_id, version_max=version_max)
        if as_of is not None:
            events = recorded_by(events, as_of)
        snapshot = fold(events)
        assert snapshot is not None
        return snapshot

    def _record(
        self,
        stream_id: str,
        history: Sequence[RecordedEvent],
        payloads: Sequence[Payload],
        context: CommandContext,
        digest: str,
        now: datetime,
    ) -> list[RecordedEvent]:
        if len(history) + len(payloads) > STREAM_EVENTS_MAX:
            raise LimitExceededError(f"{stream_id} would exceed {STREAM_EVENTS_MAX} events")
        timestamp = format_timestamp(now)
        correlation_id = context.correlation_id or (
            history[0].correlation_id if history else self._new_event_id()
        )
        causation_id = context.causation_id
        prev_hash = history[-1].hash if history else GENESIS_HASH
        events: list[RecordedEvent] = []
        for offset, payload in enumerate(payloads, start=1):
            document = payload.to_document()
            reject_pans(document, where="payload", integers=False)
            payload_json = canonical_json(document)
            if len(payload_json.encode("utf-8")) > PAYLOAD_BYTES_MAX:
                raise LimitExceededError(f"event payload exceeds {PAYLOAD_BYTES_MAX} bytes")
            event_type = event_type_of(payload)
            unhashed = RecordedEvent(
                stream_id=stream_id,
                version=len(history) + offset,
                event_id=self._new_event_id(),
                event_type=event_type,
                schema_version=SCHEMA_VERSIONS[event_type],
                occurred_at=timestamp,
                recorded_at=timestamp,
                actor=context.actor,
                correlation_id=correlation_id,
                causation_id=causation_id,
                idempotency_key=context.idempotency_key,
                request_digest=digest,
                payload=payload_json,
                prev_hash=prev_hash,
                hash="",
            )
            event = _with_hash(unhashed)
            events.append(event)
            prev_hash = event.hash
            causation_id = event.event_id  # later events of one command were caused by the first
        return events


def _with_hash(event: RecordedEvent) -> RecordedEvent:
    return replace(event, hash=chain_hash(event.prev_hash, hash_document(event)))


def _find_replay(
    history: Sequence[RecordedEvent], key: str, digest: str, command: Command
) -> CommandResult | None:
    """The original result if ``key`` was used in this stream; a conflict if for another request."""
    last_index = -1
    for index, event in enumerate(history):
        if event.idempotency_key == key:
            last_index = index
    if last_index < 0:
        return None
    original = history[last_index]
    if original.request_digest != digest:
        raise IdempotencyConflictError(
            f"idempotency key {key!r} was already used for a different request on this payment"
        )
    snapshot = fold(history[: last_index + 1])
    assert snapshot is not None
    events = tuple(event for event in history[: last_index + 1] if event.idempotency_key == key)
    return CommandResult(payment=snapshot, events=events, replayed=True)
