"""Debits == credits per currency and phase across the ledger, checked by ``run_verification``
with the chains: a balanced history passes, a chain-valid event whose lines do not balance is
reported once per (currency, phase), located at that event."""

from __future__ import annotations

import json
from dataclasses import replace

from ledger.codec import canonical_json, chain_hash, hash_document
from ledger.envelope import RecordedEvent
from ledger.integrity.postings import UNBALANCED_POSTINGS
from ledger.integrity.runner import Verification, run_verification
from ledger.memory import MemoryEventStore


def _appended(last: RecordedEvent, payload: dict[str, object]) -> RecordedEvent:
    """The next event of ``last``'s stream carrying ``payload``, its chain link and hash valid."""
    event = replace(
        last,
        version=last.version + 1,
        event_id=f"{last.event_id[:-4]}ffff",
        payload=canonical_json(payload),
        prev_hash=last.hash,
    )
    return replace(event, hash=chain_hash(last.hash, hash_document(event)))


def test_a_balanced_ledger_passes(
    store: MemoryEventStore, recorded_history: list[RecordedEvent]
) -> None:
    report = run_verification(Verification(store))
    assert report.ok, report.problems
    assert report.checks == ["chains"]
    assert report.counts == {}
    # Authorised 10.00, captured 4.00, settled 4.00 (the other 6.00 of the hold released).
    assert report.postings == {
        ("EUR", "pending", "debit"): 1000,
        ("EUR", "pending", "credit"): 1000,
        ("EUR", "post_pending", "debit"): 400,
        ("EUR", "post_pending", "credit"): 400,
        ("EUR", "void_pending", "debit"): 600,
        ("EUR", "void_pending", "credit"): 600,
        ("EUR", "posted", "debit"): 400,
        ("EUR", "posted", "credit"): 400,
    }


def test_an_unbalanced_event_with_a_valid_chain_is_reported(
    store: MemoryEventStore, recorded_history: list[RecordedEvent]
) -> None:
    settled = recorded_history[-1]
    payload = json.loads(settled.payload)
    credit = next(
        line
        for line in payload["postings"]
        if (line["direction"], line["phase"]) == ("credit", "posted")
    )
    credit["amount_minor"] -= 1
    forged = _appended(settled, payload)
    store.append([forged])
    report = run_verification(Verification(store))
    [problem] = report.problems
    assert (problem.check, problem.kind) == ("chains", UNBALANCED_POSTINGS)
    assert (problem.stream_id, problem.version, problem.event_id) == (
        forged.stream_id,
        forged.version,
        forged.event_id,
    )
    assert "EUR posted: debits 800 but credits 799" in problem.detail


def test_the_balance_runs_with_the_chains_only(
    store: MemoryEventStore, recorded_history: list[RecordedEvent]
) -> None:
    settled = recorded_history[-1]
    payload = json.loads(settled.payload)
    payload["postings"] = payload["postings"][:1]  # a debit with no credit
    store.append([_appended(settled, payload)])
    assert not run_verification(Verification(store, chains=False)).problems
    report = run_verification(Verification(store))
    assert [problem.kind for problem in report.problems] == [UNBALANCED_POSTINGS]
