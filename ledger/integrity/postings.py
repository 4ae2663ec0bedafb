"""The ledger-wide invariant of double entry: debits equal credits per currency and phase.

Every money-moving event carries postings balanced within itself (``ledger.domain.postings``),
so the whole history balances too. ``PostingsBalance`` adds up the events of every stream's
intact chain (an altered or unlinked event is the chain check's problem already, and leaving out
whole events cannot unbalance the rest), and reports each (currency, phase) whose debits and
credits differ, located at the first event whose own lines do not balance there. An event whose
payload does not decode has no postings to add: what no view can apply is the projections'
checks' to report.
"""

from __future__ import annotations

from collections import Counter

from ledger.domain.errors import LedgerError
from ledger.domain.events import decode_payload
from ledger.domain.postings import Posting, imbalances
from ledger.envelope import RecordedEvent
from ledger.integrity.chains import ChainCheck, Problem, StreamCheck

# Problem kind (stable: docs/verification.md lists it).
UNBALANCED_POSTINGS = "unbalanced_postings"

PostingSums = dict[tuple[str, str, str], int]  # (currency, phase, direction) -> minor units


class PostingsBalance(StreamCheck):
    """Debits == credits per currency and phase over every stream's events (part of ``chains``:
    the events table's history checked on its own)."""

    name = "postings"
    check_name = "chains"

    def __init__(self) -> None:
        self._sums: Counter[tuple[str, str, str]] = Counter()
        # (currency, phase) -> the first event whose own lines do not balance there
        self._first_unbalanced: dict[tuple[str, str], RecordedEvent] = {}

    @property
    def sums(self) -> PostingSums:
        return dict(self._sums)

    def stream_ids(self) -> set[str]:
        return set()

    def check(self, chain: ChainCheck) -> list[Problem]:
        for event in chain.events:
            self._add(event)
        return []

    def finish(self) -> list[Problem]:
        problems = []
        for currency, phase in sorted({(currency, phase) for currency, phase, _ in self._sums}):
            debits = self._sums[(currency, phase, "debit")]
            credits = self._sums[(currency, phase, "credit")]
            if debits == credits:
                continue
            event = self._first_unbalanced.get((currency, phase))
            problems.append(
                Problem(
                    "chains",
                    UNBALANCED_POSTINGS,
                    f"{currency} {phase}: debits {debits:,} but credits {credits:,} (minor units)",
                    None if event is None else event.stream_id,
                    None if event is None else event.version,
                    None if event is None else event.event_id,
                )
            )
        return problems

    def counts(self) -> dict[str, int]:
        return {}

    def _add(self, event: RecordedEvent) -> None:
        try:
            payload = decode_payload(event.event_type, event.schema_version, event.payload)
        except LedgerError:
            return
        lines: tuple[Posting, ...] = getattr(payload, "postings", ())
        for line in lines:
            self._sums[(line.currency, line.phase, line.direction)] += line.amount_minor
        for key in imbalances(lines):
            self._first_unbalanced.setdefault(key, event)
