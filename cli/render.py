"""Rich renderings of events, replays and payments, shared by the commands and the demo."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from ledger.codec import verify_chain
from ledger.domain.money import format_amount
from ledger.envelope import Actor, RecordedEvent, payment_id_of
from ledger.service import PaymentSnapshot

# ── Rendering ─────────────────────────────────────────────────────────────────────────────────


def history_table(events: Sequence[RecordedEvent]) -> Table:
    """One row per event: what happened, when, who and why, then the amount it moved over its
    hash. Three columns, so that in an 80 column terminal every id still fits whole on its line;
    a longer one wraps, never cut."""
    title = f"payment {payment_id_of(events[0].stream_id)}" if events else "payment"
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("v", justify="right")
    table.add_column("event: when, who, why (correlation / causation)", overflow="fold")
    table.add_column("amount / hash", justify="right", overflow="fold")
    for event in events:
        amount = _event_amount(event)
        table.add_row(
            str(event.version),
            _event_cell(event),
            f"{amount}\n{_hash(event)}" if amount else _hash(event),
        )
    return table


def chain_report(events: Sequence[RecordedEvent]) -> Text:
    """Verify the hash chain (``ChainBrokenError`` if broken) and say so."""
    head = verify_chain(events)
    return Text.assemble(
        ("hash chain verified", "bold green"),
        f": {len(events)} events, head {head[:_HASH_CHARS_SHOWN]}",
    )


_REPLAY_COLUMNS = (
    ("status", "status"),
    ("risk", "risk_decision"),
    ("authorized", "amount_authorized_minor"),
    ("captured", "amount_captured_minor"),
    ("released", "amount_released_minor"),
    ("refunded", "amount_refunded_minor"),
    ("settled", "amount_settled_minor"),
    ("hold left", "hold_remaining_minor"),
)

_HASH_CHARS_SHOWN = 12


def replay_table(steps: Sequence[tuple[RecordedEvent, PaymentSnapshot]]) -> Table:
    """One row per event: what happened, who did it, when and why, then the payment's state after
    it, one field a line, with the fields the event changed in bold yellow. The state column is
    narrow, so that in an 80 column terminal the event column keeps a whole UUID on its line."""
    title = f"payment {steps[0][1].state.payment_id} replayed" if steps else "replay"
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("v", justify="right")
    table.add_column("event: when, who, why (correlation / causation)", overflow="fold")
    table.add_column("state after (changes in bold)", overflow="fold")
    for (event, _), fields in zip(steps, replay_fields(steps), strict=True):
        state = Text()
        for index, (label, value, changed) in enumerate(fields):
            if index:
                state.append("\n")
            state.append(f"{label} {value}", style="bold yellow" if changed else "")
        table.add_row(str(event.version), _event_cell(event), state)
    return table


def replay_fields(
    steps: Sequence[tuple[RecordedEvent, PaymentSnapshot]],
) -> list[list[tuple[str, str, bool]]]:
    """Per event, the state fields worth showing after it as (label, value, changed): status and
    risk decision always, amounts once they are not zero."""
    rows: list[list[tuple[str, str, bool]]] = []
    previous: dict[str, Any] | None = None
    for _, snapshot in steps:
        current = snapshot.to_dict()
        # The first event sets every field: nothing to mark.
        changed = set(changed_fields(previous, current)) if previous else set()
        rows.append(
            [
                (label, _replay_value(current, field), field in changed)
                for label, field in _REPLAY_COLUMNS
                if not field.endswith("_minor") or current[field] or field in changed
            ]
        )
        previous = current
    return rows


# Fields every event moves: not worth calling out as changed.
_BOOKKEEPING_FIELDS = frozenset({"version", "head_hash", "updated_at", "created_at"})


def changed_fields(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The payment fields an event changed (for the first event: every field it set)."""
    return [
        name
        for name, value in current.items()
        if name not in _BOOKKEEPING_FIELDS
        and (value != previous.get(name) if previous is not None else value not in (None, 0))
    ]


def trace_table(
    correlation_id: str, steps: Sequence[tuple[RecordedEvent, PaymentSnapshot]]
) -> Table:
    """Every event of one flow across payments, in order: who acted, on what, caused by what.
    Two columns of stacked lines, so that full event ids fit whole in an 80 column terminal."""
    table = Table(title=f"flow {correlation_id}", title_justify="left", show_lines=True)
    table.add_column("recorded at, status after", overflow="fold")
    table.add_column("event, payment, actor, event id, caused by", overflow="fold")
    for event, snapshot in steps:
        table.add_row(
            f"{event.recorded_at}\n{snapshot.state.status}",
            Text.assemble(
                (f"{event.event_type} v{event.version}", "bold"),
                f"\n{payment_id_of(event.stream_id)}\n{_actor_text(event.actor)}"
                f"\n{event.event_id}\ncaused by {event.causation_id or '-'}",
            ),
        )
    return table


def payment_table(payment: PaymentSnapshot) -> Table:
    """The payment's fields that carry information: amounts that are zero and nulls are left out."""
    document = payment.to_dict()
    currency = payment.state.currency
    table = Table(
        title=f"payment {payment.state.payment_id}", title_justify="left", show_header=False
    )
    table.add_column("field", style="dim")
    table.add_column("value", overflow="fold")
    for name, value in document.items():
        if value is None or value == 0 or name in _PAYMENT_FIELDS_HIDDEN:
            continue
        if name.endswith("_minor"):
            value = f"{format_amount(value, currency)} {currency}"
            name = name.removesuffix("_minor").removeprefix("amount_")
        elif name == "head_hash":
            value = value[:_HASH_CHARS_SHOWN]
        table.add_row(name, Text(str(value)))
    return table


_PAYMENT_FIELDS_HIDDEN = frozenset({"payment_id", "currency", "amount", "created_at"})


def _replay_value(document: dict[str, Any], field: str) -> str:
    value = document[field]
    if field.endswith("_minor"):
        return format_amount(value, document["currency"])
    return "-" if value is None else str(value)


def _event_amount(event: RecordedEvent) -> str:
    payload = json.loads(event.payload)
    currency = payload.get("currency")
    for field, prefix in (("amount_minor", ""), ("released_minor", "released ")):
        if currency is not None and isinstance(payload.get(field), int):
            return f"{prefix}{format_amount(payload[field], currency)} {currency}"
    return ""


def _event_cell(event: RecordedEvent) -> Text:
    return Text.assemble(
        (event.event_type, "bold"),
        f"\n{event.recorded_at}\n{_actor_text(event.actor)}\n{_why(event)}",
    )


def _hash(event: RecordedEvent) -> str:
    return event.hash[:_HASH_CHARS_SHOWN]


def _actor_text(actor: Actor) -> str:
    text = f"{actor.kind}:{actor.id}"
    details = " ".join(part for part in (actor.model, actor.version) if part)
    return f"{text} ({details})" if details else text


def _why(event: RecordedEvent) -> str:
    # Whole ids, each on its own line: they are what a reader copies into `trace` or a query.
    return f"{event.correlation_id} /\n{event.causation_id or '-'}"
