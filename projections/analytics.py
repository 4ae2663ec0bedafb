"""Payment metrics per tumbling window of the events' Kinesis stream (DESIGN §7): the pure fold.

Lambda delivers one shard's records window by window (``TumblingWindowInSeconds``), in one or more
invocations per window, each returning the window's state for the next; the final invocation
emits the window. ``WindowFold`` is that state: it folds decoded events into one ``Figures`` per
(merchant, currency), serialises itself to a JSON dict (``to_state`` / ``from_state``) and gives
the window's rows. No I/O here: ``handlers/analytics.py`` decodes, emits and writes.

What the figures mean, per window, shard, merchant and currency, over the distinct events (by
``event_id``) whose records reached the stream in the window:
- ``event_count``: events of any type.
- ``initiated_count`` / ``initiated_minor``: payments created (``PaymentInitiated``) and the sum of
  their amounts: the volume asked for.
- ``authorized_count`` / ``authorized_minor``: authorizations (``PaymentAuthorized``) and the
  amounts held: the volume approved.
- ``risk_approved_count`` / ``risk_review_count`` / ``risk_declined_count``: risk assessments
  (``RiskAssessed``) by decision.
- ``failed_count``: authorizations refused by the processor (``PaymentFailed``).
- ``captured_count`` / ``captured_minor``, ``refunded_count`` / ``refunded_minor``: captures and
  refunds (``PaymentCaptured``, ``PaymentRefunded``) and their amounts.
- ``agent_decisions``: per agent id (events whose actor kind is ``agent``), per decision: the
  risk decision (``approve``, ``review``, ``decline``) for an assessment, the event type for any
  other action (``PaymentAuthorized``, ``PaymentFailed``, ``PaymentCaptured``…).
- ``duplicate_count``: copies of events already counted (in this window, or with a database in
  an earlier window or on another shard), skipped.
Amounts are integer minor units of the row's currency. ``RiskAssessed`` and ``PaymentFailed``
carry no currency: they are counted in the merchant's row with currency ``""``.

Approval and decline rate are defined on outcomes: a payment reaches at most one of authorized
(approved), declined by risk, or failed at the processor (declined), so over a set of rows
``approval_rate = authorized / (authorized + risk_declined + failed)`` and ``decline_rate = 1 -
approval_rate`` (undefined with no outcome). A review or a risk approval is not an outcome: the
payment's authorization or failure is. Sums across rows (shards, currencies, windows) are exact.

Duplicates: the destination may deliver a change twice, and Lambda redelivers records after a
failure. Within a window every event is counted once: the state keeps an 8-byte BLAKE2b digest
of each counted ``event_id`` (collision odds about 1e-10 for a full shard-minute of 60,000
events), and a record whose digest is present is a duplicate. Order never matters: every figure
is a sum. A copy that arrives in a later window (or on another shard) is recognised only by the
``Claims`` a ``WindowStore`` returns (the PostgreSQL one records which window counted each
event); without a store it is counted again in that window.

State limit: Lambda keeps at most 1 MB of state per shard and ends a window early past it, which
would split the window into two states writing the same row. ``checked_state`` keeps the state
under ``STATE_BYTES_MAX``: past it, the digests are dropped and the window is marked
``deduplicated = False`` (later duplicates in it are counted, except those a store's claims
catch), and if the figures alone exceed it, ``WindowStateTooLargeError`` is raised (shorten the
window or add shards).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol

from ledger.domain.errors import LedgerError
from ledger.domain.events import (
    Payload,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    PaymentInitiated,
    PaymentRefunded,
    RiskAssessed,
)
from ledger.envelope import RecordedEvent

STATE_FORMAT = 1
# Lambda's limit is 1 MB of state per shard; the margin covers the rest of the response
# (batchItemFailures) and any difference in how Lambda measures the JSON.
STATE_BYTES_MAX = 900_000
DIGEST_BYTES = 8
NO_CURRENCY = ""
_UNITS = "minor"


class WindowStateError(LedgerError):
    """The state Lambda handed back is not one this code wrote for this window."""

    code = "window_state_invalid"


class WindowStateTooLargeError(LedgerError):
    """The window's figures alone exceed the state limit (too many merchants per shard-window)."""

    code = "window_state_too_large"


@dataclass(slots=True)
class Figures:
    """The figures of one (merchant, currency) of a window; see the module docstring."""

    event_count: int = 0
    initiated_count: int = 0
    initiated_minor: int = 0
    authorized_count: int = 0
    authorized_minor: int = 0
    risk_approved_count: int = 0
    risk_review_count: int = 0
    risk_declined_count: int = 0
    failed_count: int = 0
    captured_count: int = 0
    captured_minor: int = 0
    refunded_count: int = 0
    refunded_minor: int = 0
    duplicate_count: int = 0
    agent_decisions: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def outcome_count(self) -> int:
        return self.authorized_count + self.declined_count

    @property
    def declined_count(self) -> int:
        return self.risk_declined_count + self.failed_count

    def add(self, other: Figures) -> None:
        for name in NUMBER_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for agent, decisions in other.agent_decisions.items():
            mine = self.agent_decisions.setdefault(agent, {})
            for decision, count in decisions.items():
                mine[decision] = mine.get(decision, 0) + count


# The numeric figures, in the order the state stores them.
NUMBER_FIELDS = tuple(item.name for item in fields(Figures) if item.name != "agent_decisions")


def approval_rate_percent(figures: Figures) -> float | None:
    """Authorized outcomes in percent of all outcomes; None without any outcome."""
    if figures.outcome_count == 0:
        return None
    return 100.0 * figures.authorized_count / figures.outcome_count


@dataclass(frozen=True, slots=True)
class WindowKey:
    """One shard's window, as the Lambda event names it."""

    start: datetime
    end: datetime
    shard_id: str

    @classmethod
    def parse(cls, start: str, end: str, shard_id: str) -> WindowKey:
        try:
            key = cls(datetime.fromisoformat(start), datetime.fromisoformat(end), shard_id)
        except (TypeError, ValueError) as exc:
            raise WindowStateError(f"window {start!r}..{end!r} is not two timestamps") from exc
        if key.start.tzinfo is None or key.end <= key.start or not shard_id:
            raise WindowStateError(f"window {start!r}..{end!r} of shard {shard_id!r} is invalid")
        return key


@dataclass(frozen=True, slots=True)
class WindowEvent:
    """A decoded event (``ledger.decoding.decode_event`` passed) to fold."""

    event: RecordedEvent
    payload: Payload

    @property
    def merchant_id(self) -> str:
        merchant_id: str = self.payload.merchant_id  # type: ignore[attr-defined]
        return merchant_id

    @property
    def currency(self) -> str:
        currency: str = getattr(self.payload, "currency", NO_CURRENCY)
        return currency


@dataclass(frozen=True, slots=True)
class Claims:
    """What a ``WindowStore`` knows of the events about to be folded: ids counted by another
    window or shard (``elsewhere``) and ids this same window recorded before (``here``: by an
    earlier invocation, or by a failed attempt of this one)."""

    elsewhere: frozenset[str] = frozenset()
    here: frozenset[str] = frozenset()


NO_CLAIMS = Claims()  # no store: only the window's own digests recognise duplicates


@dataclass(frozen=True, slots=True)
class WindowRow:
    merchant_id: str
    currency: str
    figures: Figures


class WindowStore(Protocol):
    """Where windows are kept beyond Lambda's state (``projections.postgres.analytics``)."""

    def claim(self, key: WindowKey, events: Sequence[WindowEvent]) -> Claims:
        """Record that ``key`` counts ``events`` unless another window already did; say which."""
        ...

    def write(self, key: WindowKey, rows: Sequence[WindowRow], *, deduplicated: bool) -> None:
        """Replace the window's rows with ``rows``, in one transaction."""
        ...


def event_digest(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode("utf-8"), digest_size=DIGEST_BYTES).digest()


class WindowFold:
    """One shard-window's figures per (merchant, currency), and the events already counted."""

    def __init__(self) -> None:
        self.figures: dict[tuple[str, str], Figures] = {}
        self.seen: set[bytes] = set()
        # The same digests in the order they were counted: the state stores them packed, and
        # appending is cheaper than sorting the set at every invocation.
        self._packed = bytearray()
        # False once the digests were dropped to stay under the state limit.
        self.deduplicated = True

    def candidates(self, events: Iterable[WindowEvent]) -> list[WindowEvent]:
        """``events`` not counted yet, each once; the others are counted as duplicates."""
        fresh: list[WindowEvent] = []
        batch: set[bytes] = set()
        for item in events:
            digest = event_digest(item.event.event_id)
            if digest in self.seen or digest in batch:
                self._row(item).duplicate_count += 1
            else:
                batch.add(digest)
                fresh.append(item)
        return fresh

    def fold(self, events: Iterable[WindowEvent], claims: Claims = NO_CLAIMS) -> int:
        """Count ``events`` (from ``candidates``) except those ``claims`` says are counted;
        the number counted. With the digests dropped, ``claims.here`` are duplicates too."""
        counted = 0
        for item in events:
            event_id = item.event.event_id
            figures = self._row(item)
            if event_id in claims.elsewhere or (not self.deduplicated and event_id in claims.here):
                figures.duplicate_count += 1
                continue
            if self.deduplicated:
                digest = event_digest(event_id)
                self.seen.add(digest)
                self._packed += digest
            _count(figures, item)
            counted += 1
        return counted

    def rows(self) -> list[WindowRow]:
        """The window's rows, by merchant and currency."""
        return [
            WindowRow(merchant_id, currency, figures)
            for (merchant_id, currency), figures in sorted(self.figures.items())
        ]

    def drop_digests(self) -> None:
        self.seen.clear()
        self._packed.clear()
        self.deduplicated = False

    def _row(self, item: WindowEvent) -> Figures:
        key = (item.merchant_id, item.currency)
        figures = self.figures.get(key)
        if figures is None:
            figures = self.figures[key] = Figures()
        return figures

    # ── state ─────────────────────────────────────────────────────────────────────────────

    def to_state(self, key: WindowKey) -> dict[str, Any]:
        """The JSON-ready state. Amounts are strings: Lambda's JSON need not keep integers past
        2^53 exact. Rows are sorted; digests are in the order they were counted."""
        rows = [
            [merchant_id, currency, _encode_numbers(figures), figures.agent_decisions]
            for (merchant_id, currency), figures in sorted(self.figures.items())
        ]
        return {
            "format": STATE_FORMAT,
            "window_start": key.start.isoformat(),
            "shard_id": key.shard_id,
            "deduplicated": self.deduplicated,
            "seen": base64.b64encode(self._packed).decode("ascii"),
            "rows": rows,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], key: WindowKey) -> WindowFold:
        """The fold a previous invocation of ``key`` returned (``{}``: the window's first)."""
        fold = cls()
        if not state:
            return fold
        try:
            if state["format"] != STATE_FORMAT:
                raise WindowStateError(f"unknown window state format {state['format']!r}")
            if (state["window_start"], state["shard_id"]) != (key.start.isoformat(), key.shard_id):
                raise WindowStateError(
                    f"state of window {state['window_start']!r} on {state['shard_id']!r} handed"
                    f" to window {key.start.isoformat()} on {key.shard_id!r}"
                )
            fold.deduplicated = state["deduplicated"] is True
            fold._packed = _decode_packed(state["seen"])
            fold.seen = _unpack(fold._packed)
            for merchant_id, currency, numbers, decisions in state["rows"]:
                fold.figures[(str(merchant_id), str(currency))] = _decode_figures(
                    numbers, decisions
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise WindowStateError(f"window state is malformed: {type(exc).__name__}") from exc
        return fold


def checked_state(
    fold: WindowFold, key: WindowKey, *, bytes_max: int = STATE_BYTES_MAX
) -> tuple[dict[str, Any], int]:
    """``fold``'s state and its size in bytes, kept under ``bytes_max`` (see the module
    docstring): digests are dropped if needed, and ``WindowStateTooLargeError`` raised if the
    figures alone do not fit."""
    state = fold.to_state(key)
    size = state_bytes(state)
    if size <= bytes_max:
        return state, size
    fold.drop_digests()
    state = fold.to_state(key)
    size = state_bytes(state)
    if size > bytes_max:
        raise WindowStateTooLargeError(
            f"window {key.start.isoformat()} on {key.shard_id}: {len(fold.figures)} merchant and"
            f" currency rows take {size} bytes of state, over the {bytes_max} allowed"
        )
    return state, size


def state_bytes(state: Mapping[str, Any]) -> int:
    """The size of ``state`` as compact JSON. The digests, the bulk of it, are base64 (ASCII that
    JSON never escapes): counted by length rather than encoded once more."""
    rest = {**state, "seen": ""}
    compact = json.dumps(rest, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return len(compact) + len(state["seen"])


def totals(rows: Iterable[WindowRow]) -> Figures:
    """Every row's figures summed (all merchants and currencies)."""
    total = Figures()
    for row in rows:
        total.add(row.figures)
    return total


def totals_by_currency(rows: Iterable[WindowRow]) -> dict[str, Figures]:
    """Figures summed per currency over all merchants (rows without a currency left out)."""
    by_currency: dict[str, Figures] = {}
    for row in rows:
        if row.currency != NO_CURRENCY:
            by_currency.setdefault(row.currency, Figures()).add(row.figures)
    return dict(sorted(by_currency.items()))


def _count(figures: Figures, item: WindowEvent) -> None:
    payload = item.payload
    figures.event_count += 1
    if isinstance(payload, PaymentInitiated):
        figures.initiated_count += 1
        figures.initiated_minor += payload.amount_minor
    elif isinstance(payload, RiskAssessed):
        if payload.decision == "approve":
            figures.risk_approved_count += 1
        elif payload.decision == "review":
            figures.risk_review_count += 1
        else:
            figures.risk_declined_count += 1
    elif isinstance(payload, PaymentAuthorized):
        figures.authorized_count += 1
        figures.authorized_minor += payload.amount_minor
    elif isinstance(payload, PaymentFailed):
        figures.failed_count += 1
    elif isinstance(payload, PaymentCaptured):
        figures.captured_count += 1
        figures.captured_minor += payload.amount_minor
    elif isinstance(payload, PaymentRefunded):
        figures.refunded_count += 1
        figures.refunded_minor += payload.amount_minor
    actor = item.event.actor
    if actor.kind == "agent":
        decision = payload.decision if isinstance(payload, RiskAssessed) else item.event.event_type
        decisions = figures.agent_decisions.setdefault(actor.id, {})
        decisions[decision] = decisions.get(decision, 0) + 1


_NUMBERS_OF = attrgetter(*NUMBER_FIELDS)
_IS_AMOUNT = tuple(name.endswith("_minor") for name in NUMBER_FIELDS)
_NUMBER_TYPES = (int, str)


def _encode_numbers(figures: Figures) -> list[int | str]:
    return [
        str(value) if amount else value
        for value, amount in zip(_NUMBERS_OF(figures), _IS_AMOUNT, strict=True)
    ]


def _decode_figures(numbers: Sequence[Any], decisions: Mapping[str, Any]) -> Figures:
    if len(numbers) != len(NUMBER_FIELDS) or not isinstance(decisions, dict):
        raise ValueError("row shape")
    if any(type(value) not in _NUMBER_TYPES for value in numbers):
        raise TypeError("a figure is neither an integer nor a string")
    values = [int(value) for value in numbers]
    if min(values) < 0:
        raise ValueError("a negative figure")
    agent_decisions = {
        str(agent): {str(decision): int(count) for decision, count in counts.items()}
        for agent, counts in decisions.items()
    }
    return Figures(**dict(zip(NUMBER_FIELDS, values, strict=True)), agent_decisions=agent_decisions)


def _decode_packed(text: str) -> bytearray:
    try:
        packed = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("seen is not base64") from exc
    if len(packed) % DIGEST_BYTES:
        raise ValueError("seen is not whole digests")
    return bytearray(packed)


def _unpack(packed: bytes | bytearray) -> set[bytes]:
    view = bytes(packed)
    return {view[start : start + DIGEST_BYTES] for start in range(0, len(view), DIGEST_BYTES)}
