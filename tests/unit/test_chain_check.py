"""``check_chain``: every way a stored stream can be wrong is reported, located, and ends the
intact prefix there."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.codec import canonical_json, chain_hash, event_hash, hash_document
from ledger.domain.errors import ValidationError
from ledger.envelope import Actor, RecordedEvent
from ledger.integrity.chains import (
    DUPLICATE_VERSION,
    HASH_MISMATCH,
    PREV_HASH_MISMATCH,
    UNREADABLE_EVENT,
    VERSION_GAP,
    StoredEvent,
    check_chain,
)


def stored(events: list[RecordedEvent]) -> list[StoredEvent]:
    return [StoredEvent(event.version, event, "here") for event in events]


def kinds(check: object) -> list[tuple[str, int | None]]:
    return [(problem.kind, problem.version) for problem in check.problems]  # type: ignore[attr-defined]


def test_an_intact_stream_has_no_problem(recorded_history: list[RecordedEvent]) -> None:
    check = check_chain("payment#pay-1", stored(recorded_history))
    assert check.problems == []
    assert check.intact_version == check.last_version == len(recorded_history)
    head = recorded_history[-1]
    assert check.confirms(head.version, head.hash)
    assert not check.confirms(head.version, recorded_history[0].hash)
    assert not check.confirms(head.version + 1, head.hash)


def test_an_altered_payload_is_located(recorded_history: list[RecordedEvent]) -> None:
    events = list(recorded_history)
    payload = json.loads(events[2].payload) | {"note": "added"}
    events[2] = replace(events[2], payload=canonical_json(payload))
    check = check_chain("payment#pay-1", stored(events))
    [problem] = check.problems
    assert (problem.kind, problem.version, problem.event_id) == (
        HASH_MISMATCH,
        3,
        events[2].event_id,
    )
    assert problem.location == "here"
    assert check.intact_version == 2


def test_an_altered_hash_breaks_its_event_and_the_next_link(
    recorded_history: list[RecordedEvent],
) -> None:
    events = list(recorded_history)
    events[1] = replace(events[1], hash="f" * 64)
    assert kinds(check_chain("payment#pay-1", stored(events))) == [
        (HASH_MISMATCH, 2),
        (PREV_HASH_MISMATCH, 3),
    ]


def test_a_removed_event_is_a_gap(recorded_history: list[RecordedEvent]) -> None:
    events = [event for event in recorded_history if event.version != 3]
    check = check_chain("payment#pay-1", stored(events))
    assert kinds(check) == [(VERSION_GAP, 4)]
    assert "version 3 missing" in check.problems[0].detail
    assert check.intact_version == 2
    assert check.last_version == len(recorded_history)


def test_reordered_events_are_located(recorded_history: list[RecordedEvent]) -> None:
    """Contents swapped between versions 2 and 3 (the keys keep their versions)."""
    events = list(recorded_history)
    events[1], events[2] = replace(events[2], version=2), replace(events[1], version=3)
    found = kinds(check_chain("payment#pay-1", stored(events)))
    assert (PREV_HASH_MISMATCH, 2) in found
    assert (HASH_MISMATCH, 2) in found
    assert (HASH_MISMATCH, 3) in found


def test_unreadable_items_and_duplicates(recorded_history: list[RecordedEvent]) -> None:
    items = stored(recorded_history)
    items[0] = StoredEvent(1, None, "here", "missing attribute 'actor'")
    items.insert(2, StoredEvent(2, recorded_history[1], "here"))
    check = check_chain("payment#pay-1", items)
    assert kinds(check)[:2] == [(UNREADABLE_EVENT, 1), (DUPLICATE_VERSION, 2)]
    assert check.problems[0].detail == "missing attribute 'actor'"
    assert check.intact_version == 0


def test_the_first_event_must_start_from_zeros(recorded_history: list[RecordedEvent]) -> None:
    events = list(recorded_history)
    events[0] = replace(events[0], prev_hash="1" * 64)
    assert (PREV_HASH_MISMATCH, 1) in kinds(check_chain("payment#pay-1", stored(events)))


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(
    payload=st.dictionaries(st.text(max_size=8), _JSON_VALUES, max_size=6),
    text=st.text(max_size=10),
    optional=st.none() | st.text(max_size=10),
    number=st.integers(0, 2**40),
    compact=st.booleans(),
)
def test_event_hash_is_the_chain_hash_of_the_hash_document(
    payload: dict[str, object], text: str, optional: str | None, number: int, compact: bool
) -> None:
    """Whatever the strings hold (quotes, control characters, any Unicode) and however the
    payload text is spaced: the fast assembly equals the canonical encoding of the document."""
    event = replace(
        _SAMPLE,
        payload=canonical_json(payload) if compact else json.dumps(payload, indent=1),
        event_id=text,
        correlation_id=text + "c",
        causation_id=optional,
        actor=Actor("agent", text or "a", model=optional, version=optional and optional[::-1]),
        version=number,
        recorded_at=text,
    )
    assert event_hash(event) == chain_hash(event.prev_hash, hash_document(event))


@pytest.mark.parametrize("number", ["1.5", "1e3", "NaN", "-Infinity"])
def test_event_hash_refuses_floats_like_canonical_json(number: str) -> None:
    event = replace(_SAMPLE, payload='{"amount":' + number + "}")
    with pytest.raises((ValidationError, ValueError)):
        chain_hash(event.prev_hash, hash_document(event))
    with pytest.raises(ValidationError):
        event_hash(event)


_SAMPLE = RecordedEvent(
    stream_id="payment#p",
    version=1,
    event_id="e-1",
    event_type="PaymentInitiated",
    schema_version=1,
    occurred_at="2026-11-21T12:00:00.000000Z",
    recorded_at="2026-11-21T12:00:00.000000Z",
    actor=Actor("agent", "a", model="m"),
    correlation_id="c",
    causation_id=None,
    idempotency_key="k",
    request_digest="d" * 64,
    payload="{}",
    prev_hash="0" * 64,
    hash="",
)
