"""The analytics window fold (projections/analytics.py): totals, duplicates, order, state.

Expected figures come from ``tests.analytics_events.expected_rows``, which counts the stored
JSON payloads directly; the fold works on the decoded payload models.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.envelope import RecordedEvent
from projections.analytics import (
    STATE_BYTES_MAX,
    Claims,
    Figures,
    WindowFold,
    WindowKey,
    WindowStateError,
    WindowStateTooLargeError,
    approval_rate_percent,
    checked_state,
    state_bytes,
    totals,
    totals_by_currency,
)
from tests.analytics_events import expected_rows, window_events, window_history

KEY = WindowKey.parse("2026-11-30T23:58:00Z", "2026-11-30T23:59:00Z", "shardId-000000000000")
HISTORY = window_history()


def fold_invocations(
    batches: Sequence[Sequence[RecordedEvent]], key: WindowKey = KEY
) -> tuple[WindowFold, dict[str, Any]]:
    """Fold ``batches`` as successive invocations of one window, the state passing through
    JSON between them as Lambda passes it."""
    state: dict[str, Any] = {}
    fold = WindowFold()
    for batch in batches:
        fold = WindowFold.from_state(state, key)
        fold.fold(fold.candidates(window_events(batch)))
        state = json.loads(json.dumps(checked_state(fold, key)[0]))
    return fold, state


def figures_of(fold: WindowFold, *, with_duplicates: bool = False) -> dict[tuple[str, str], Any]:
    rows = {}
    for row in fold.rows():
        figures = asdict(row.figures)
        duplicates = figures.pop("duplicate_count")
        if with_duplicates:
            figures["duplicate_count"] = duplicates
        rows[(row.merchant_id, row.currency)] = figures
    return rows


def test_the_figures_are_those_of_the_events() -> None:
    fold, _ = fold_invocations([HISTORY])
    assert figures_of(fold) == expected_rows(HISTORY)


def test_events_without_a_currency_count_in_the_merchants_currencyless_row() -> None:
    fold, _ = fold_invocations([HISTORY])
    rows = {(row.merchant_id, row.currency): row.figures for row in fold.rows()}
    assert rows[("m-2", "")].failed_count == 1
    assert rows[("m-2", "")].risk_declined_count == 1
    assert rows[("m-1", "")].risk_review_count == 1
    assert (
        sum(figures.risk_approved_count for (_, currency), figures in rows.items() if currency) == 0
    )


def test_agent_decisions_count_only_agents_by_decision_or_action() -> None:
    fold, _ = fold_invocations([HISTORY])
    decisions: Counter[tuple[str, str]] = Counter()
    for row in fold.rows():
        for agent, made in row.figures.agent_decisions.items():
            decisions.update({(agent, decision): count for decision, count in made.items()})
    assert decisions == {
        ("fraud-agent", "approve"): 2,
        ("fraud-agent", "review"): 1,
        ("fraud-agent", "decline"): 1,
        ("fraud-agent-2", "approve"): 2,
        ("router-agent", "PaymentAuthorized"): 3,
        ("router-agent", "PaymentFailed"): 1,
    }  # the operator's decline and the system's captures are not agent decisions


def test_approval_rate_is_authorized_over_outcomes() -> None:
    fold, _ = fold_invocations([HISTORY])
    total = totals(fold.rows())
    # authorized: a1, e5, f6; declined by risk: b2 (after review), d4; failed: c3.
    assert (total.authorized_count, total.risk_declined_count, total.failed_count) == (3, 2, 1)
    assert approval_rate_percent(total) == 50.0
    assert approval_rate_percent(Figures(risk_review_count=4, risk_approved_count=2)) is None
    assert approval_rate_percent(Figures(authorized_count=3, failed_count=1)) == 75.0


def test_totals_by_currency_leave_out_the_currencyless_rows() -> None:
    fold, _ = fold_invocations([HISTORY])
    by_currency = totals_by_currency(fold.rows())
    assert list(by_currency) == ["BHD", "EUR", "JPY"]
    assert by_currency["EUR"].initiated_minor == 10999 + 1025
    assert by_currency["EUR"].captured_minor == 400
    assert by_currency["EUR"].refunded_minor == 150


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(range(len(HISTORY))),
    copies=st.lists(st.integers(0, len(HISTORY) - 1), max_size=12),
    cuts=st.lists(st.integers(0, len(HISTORY) + 12), max_size=4),
)
def test_any_order_any_duplicates_any_split_gives_the_totals_of_the_deduped_set(
    order: list[int], copies: list[int], cuts: list[int]
) -> None:
    delivered = [HISTORY[index] for index in order]
    for position, index in enumerate(copies):
        delivered.insert((position * 7) % (len(delivered) + 1), HISTORY[index])
    bounds = sorted({0, len(delivered), *(min(cut, len(delivered)) for cut in cuts)})
    batches = [delivered[start:end] for start, end in itertools.pairwise(bounds)]

    fold, state = fold_invocations(batches)
    once, once_state = fold_invocations([sorted(HISTORY, key=lambda event: event.event_id)])

    assert figures_of(fold) == figures_of(once) == expected_rows(HISTORY)
    assert sum(row.figures.duplicate_count for row in fold.rows()) == len(copies)
    # The same events counted, whatever the path.
    assert WindowFold.from_state(state, KEY).seen == WindowFold.from_state(once_state, KEY).seen


def test_a_batch_with_the_same_event_twice_counts_it_once() -> None:
    fold = WindowFold()
    fold.fold(fold.candidates(window_events([HISTORY[0], HISTORY[0]])))
    (row,) = fold.rows()
    assert (row.figures.initiated_count, row.figures.duplicate_count) == (1, 1)


def test_the_state_survives_a_json_round_trip() -> None:
    fold, state = fold_invocations([HISTORY[:9], HISTORY[9:]])
    assert state_bytes(state) == len(json.dumps(state, separators=(",", ":")).encode())
    again = WindowFold.from_state(json.loads(json.dumps(state)), KEY)
    assert again.to_state(KEY) == state
    assert figures_of(again, with_duplicates=True) == figures_of(fold, with_duplicates=True)
    assert again.seen == fold.seen
    assert again.deduplicated


def test_amounts_beyond_53_bits_stay_exact_through_the_state() -> None:
    big = 2**63 - 1
    fold = WindowFold()
    fold.figures[("m-1", "EUR")] = Figures(initiated_count=3, initiated_minor=3 * big)
    state = json.loads(json.dumps(fold.to_state(KEY)))
    restored = WindowFold.from_state(state, KEY).figures[("m-1", "EUR")]
    assert restored.initiated_minor == 3 * big


def test_a_duplicate_claimed_elsewhere_is_not_counted() -> None:
    fold = WindowFold()
    events = window_events(HISTORY[:3])
    counted = fold.fold(fold.candidates(events), Claims(elsewhere=frozenset({HISTORY[1].event_id})))
    assert counted == 2
    assert sum(row.figures.event_count for row in fold.rows()) == 2
    assert sum(row.figures.duplicate_count for row in fold.rows()) == 1


def test_an_id_this_window_claimed_before_is_counted_while_the_digests_are_kept() -> None:
    # The claim came from an attempt whose state Lambda discarded: counting it loses nothing.
    fold = WindowFold()
    here = Claims(here=frozenset({HISTORY[0].event_id}))
    assert fold.fold(fold.candidates(window_events(HISTORY[:1])), here) == 1


def test_past_the_state_limit_the_digests_are_dropped_then_claims_dedupe() -> None:
    fold, state = fold_invocations([HISTORY])
    figures_only = len(json.dumps({**state, "seen": ""}, separators=(",", ":")))
    state, size = checked_state(fold, KEY, bytes_max=figures_only + 10)
    assert not fold.deduplicated
    assert state["seen"] == ""
    assert size <= figures_only + 10

    later = WindowFold.from_state(state, KEY)
    assert not later.deduplicated
    again = window_events(HISTORY[:2])
    counted = later.fold(later.candidates(again), Claims(here=frozenset({HISTORY[0].event_id})))
    assert counted == 1  # the claimed one is a duplicate now; without a claim it is counted


def test_figures_over_the_state_limit_fail_clearly() -> None:
    fold, _ = fold_invocations([HISTORY])
    with pytest.raises(WindowStateTooLargeError, match="6 merchant and currency rows"):
        checked_state(fold, KEY, bytes_max=200)


def test_a_full_shard_minute_of_digests_fits_in_the_state() -> None:
    packed = b"".join(index.to_bytes(8, "big") for index in range(60_000))  # 1,000 records/s
    _, state = fold_invocations([HISTORY])
    fold = WindowFold.from_state({**state, "seen": base64.b64encode(packed).decode()}, KEY)
    state, size = checked_state(fold, KEY)
    assert fold.deduplicated
    assert size <= STATE_BYTES_MAX
    assert len(WindowFold.from_state(state, KEY).seen) == 60_000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 2}, "unknown window state format"),
        ({"window_start": "2026-11-30T23:57:00+00:00"}, "handed to window"),
        ({"shard_id": "shardId-000000000001"}, "handed to window"),
        ({"seen": "not base64!"}, "malformed"),
        ({"seen": "AAAA"}, "malformed"),  # 3 bytes: not whole digests
        ({"rows": [["m-1", "EUR", [1, 2], {}]]}, "malformed"),
        ({"rows": [["m-1", "EUR", [-1] * 14, {}]]}, "malformed"),
        ({"rows": [["m-1", "EUR", [True] * 14, {}]]}, "malformed"),
    ],
)
def test_a_state_this_code_did_not_write_for_this_window_is_refused(
    change: dict[str, Any], message: str
) -> None:
    _, state = fold_invocations([HISTORY[:4]])
    with pytest.raises(WindowStateError, match=message):
        WindowFold.from_state({**state, **change}, KEY)


@pytest.mark.parametrize(
    ("start", "end", "shard"),
    [
        ("2026-11-30T23:58:00Z", "2026-11-30T23:58:00Z", "shardId-0"),
        ("2026-11-30T23:58:00", "2026-11-30T23:59:00", "shardId-0"),
        ("yesterday", "2026-11-30T23:59:00Z", "shardId-0"),
        ("2026-11-30T23:58:00Z", "2026-11-30T23:59:00Z", ""),
    ],
)
def test_a_window_that_is_not_one_is_refused(start: str, end: str, shard: str) -> None:
    with pytest.raises(WindowStateError):
        WindowKey.parse(start, end, shard)
