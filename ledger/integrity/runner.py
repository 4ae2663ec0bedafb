"""The one verification runner: every check of DESIGN §8 in one pass over the streams, for
``payledger verify`` and the demo's checks alike.

The digests are read and checked on their own first (``ledger.integrity.digests.check_digests``),
and the read models' items are listed; then every stream any of them knows (the events table's,
the digests', the read models') is loaded once, its chain recomputed (``ledger.integrity.chains``),
and that one recomputed chain is handed to each requested check: the chain's own problems, the
postings balance (``ledger.integrity.postings``), the digests' heads for that stream, each
``StreamCheck`` (a projection against its replay, the archive). Streams load in parallel (one
Query each), a bounded number ahead, so memory stays flat however many there are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ledger.envelope import StoredEvent
from ledger.integrity.chains import Problem, StreamCheck, check_chain
from ledger.integrity.digests import DigestStore, check_digests, head_problems
from ledger.integrity.postings import PostingsBalance, PostingSums
from ledger.store import EventReader

LOAD_THREADS = 8
LOADS_AHEAD_MAX = 64

Progress = Callable[[int, int], None]  # (streams done, events done)


@dataclass(slots=True)
class VerifyReport:
    checks: list[str]
    streams: int = 0
    events: int = 0
    digests: int = 0
    # Per stream check, what is not a problem: lag (behind), copies awaiting compaction…
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # What the intact chains' postings add up to, when the chains were checked.
    postings: PostingSums = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": self.checks,
            "streams": self.streams,
            "events": self.events,
            "digests": self.digests,
            "counts": self.counts,
            "problems": [problem.to_dict() for problem in self.problems],
        }


@dataclass(slots=True)
class Verification:
    """What to check: the chains in ``store`` and the postings balance over their events, the
    digests in ``digests`` (if any), and each of ``stream_checks`` (the projections, the
    archive) against the recomputed chains."""

    store: EventReader
    chains: bool = True
    digests: DigestStore | None = None
    stream_checks: Sequence[StreamCheck] = ()


def run_verification(
    verification: Verification, *, progress: Progress | None = None
) -> VerifyReport:
    balance = PostingsBalance() if verification.chains else None
    stream_checks = [*([balance] if balance is not None else []), *verification.stream_checks]
    checks = ["chains"] if verification.chains else []
    checks += ["digests"] if verification.digests is not None else []
    for stream_check in stream_checks:
        if stream_check.check_name not in checks:
            checks.append(stream_check.check_name)
    report = VerifyReport(checks=checks)
    heads: dict[str, dict[tuple[int, str], int]] = {}
    location = ""
    if verification.digests is not None:
        digests = check_digests(verification.digests)
        report.digests = digests.digests
        report.problems.extend(digests.problems)
        heads = digests.heads
        location = verification.digests.location
    stream_ids = set(heads)
    if stream_checks:
        stream_ids |= set(verification.store.all_stream_ids())
    for stream_check in stream_checks:
        stream_ids |= stream_check.stream_ids()
    for stream_id, stored in _load(verification.store, sorted(stream_ids)):
        chain = check_chain(stream_id, stored)
        report.streams += 1
        report.events += len(stored)
        if verification.chains:
            report.problems.extend(chain.problems)
        if stream_id in heads:
            report.problems.extend(head_problems(chain, heads[stream_id], location))
        for stream_check in stream_checks:
            report.problems.extend(stream_check.check(chain))
        if progress is not None:
            progress(report.streams, report.events)
    for stream_check in stream_checks:
        report.problems.extend(stream_check.finish())
        counts = stream_check.counts()
        if counts:  # the postings balance has nothing to count beyond its problems
            report.counts[stream_check.name] = counts
    if balance is not None:
        report.postings = balance.sums
    return report


def _load(store: EventReader, stream_ids: Sequence[str]) -> Iterator[tuple[str, list[StoredEvent]]]:
    with ThreadPoolExecutor(max_workers=LOAD_THREADS) as pool:
        pending: deque[tuple[str, Future[list[StoredEvent]]]] = deque()
        for stream_id in stream_ids:
            pending.append((stream_id, pool.submit(store.stored_events, stream_id)))
            if len(pending) >= LOADS_AHEAD_MAX:
                ready_id, future = pending.popleft()
                yield ready_id, future.result()
        while pending:
            ready_id, future = pending.popleft()
            yield ready_id, future.result()
