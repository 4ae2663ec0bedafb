"""What ``payledger verify`` reports, and the chain check every source (DynamoDB, archive) shares.

A ``Problem`` says what is wrong and exactly where: the check that found it, a stable ``kind``,
the stream, version and event id when known, and ``location`` (the table item, the S3 object or
the archive file and row). Verification never stops at the first problem: it reports every one.

The chain of a stream is recomputed from the stored events (``check_chain``): versions 1, 2, 3…
without gaps, every event's hash recomputed from its content, every ``prev_hash`` equal to the
previous event's hash, the first one 64 zeros. The versions up to the first problem form the
intact prefix: only there does the recomputed chain agree with what is stored, so only there can
a digest's head be confirmed (``ChainCheck.confirms``). Each ``StreamCheck`` (the read models,
the archive, the postings balance) is handed every recomputed chain by the runner
(``ledger.integrity.runner``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.codec import event_hash
from ledger.domain.errors import LedgerError
from ledger.envelope import GENESIS_HASH, RecordedEvent, StoredEvent

# Exit code of ``verify`` and ``verify-proof`` when what they check does not verify: apart from
# 1 (could not run: configuration, unreachable resources) so a script can tell the two apart.
EXIT_VERIFICATION_FAILED = 6

# Problem kinds (stable: tools match on them; docs/verification.md lists them).
UNREADABLE_EVENT = "unreadable_event"
VERSION_GAP = "version_gap"
HASH_MISMATCH = "hash_mismatch"
PREV_HASH_MISMATCH = "prev_hash_mismatch"
DUPLICATE_VERSION = "duplicate_version"


class VerificationFailedError(LedgerError):
    """History, a digest, a proof, a projection or the archive does not verify (exit 6)."""

    code = "verification_failed"
    exit_code = EXIT_VERIFICATION_FAILED


@dataclass(frozen=True, slots=True)
class Problem:
    check: str  # chains, digests, projections or archive
    kind: str
    detail: str
    stream_id: str | None = None
    version: int | None = None
    event_id: str | None = None
    location: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "kind": self.kind,
            "stream_id": self.stream_id,
            "version": self.version,
            "event_id": self.event_id,
            "location": self.location,
            "detail": self.detail,
        }

    def where(self) -> str:
        """The location as one line, for people."""
        parts = []
        if self.stream_id is not None:
            parts.append(self.stream_id)
        if self.version is not None:
            parts.append(f"v{self.version}")
        if self.event_id is not None:
            parts.append(f"event {self.event_id}")
        if self.location is not None:
            parts.append(self.location)
        return " ".join(parts) or "-"


@dataclass(slots=True)
class ChainCheck:
    stream_id: str
    problems: list[Problem] = field(default_factory=list)
    events: list[RecordedEvent] = field(default_factory=list)  # the intact prefix
    stored: list[StoredEvent] = field(default_factory=list)  # every item, as read
    last_version: int = 0  # the highest version stored, intact or not

    @property
    def intact_version(self) -> int:
        return len(self.events)

    def confirms(self, version: int, head_hash: str) -> bool:
        """True when the recomputed chain passes through ``head_hash`` at ``version``."""
        return 0 < version <= self.intact_version and self.events[version - 1].hash == head_hash

    def hash_at(self, version: int) -> str | None:
        return self.events[version - 1].hash if 0 < version <= self.intact_version else None


class StreamCheck(ABC):
    """A check fed every recomputed chain, then asked for what it found across streams."""

    name: str  # e.g. payment_state, postgres, archive
    check_name: str  # the check it belongs to: chains, projections or archive

    @abstractmethod
    def stream_ids(self) -> set[str]:
        """The streams it knows of, beyond the events table's (e.g. a read model's items)."""

    @abstractmethod
    def check(self, chain: ChainCheck) -> list[Problem]: ...

    @abstractmethod
    def finish(self) -> list[Problem]: ...

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """What it saw that is not a problem (e.g. payments it has not reached yet)."""


def check_chain(
    stream_id: str, stored: Iterable[StoredEvent], *, check: str = "chains"
) -> ChainCheck:
    """Recompute ``stream_id``'s chain from ``stored`` (in version order) and report every break."""
    result = ChainCheck(stream_id, stored=list(stored))
    expected_version = 1
    previous_hash: str | None = GENESIS_HASH  # None: the previous item is unreadable
    for item in result.stored:
        found = _item_problems(item, expected_version, previous_hash)
        result.problems.extend(
            Problem(
                check,
                kind,
                detail,
                stream_id,
                item.version,
                None if item.event is None else item.event.event_id,
                item.location,
            )
            for kind, detail in found
        )
        # The intact prefix ends at the first problem.
        if not found and len(result.events) == expected_version - 1:
            assert item.event is not None
            result.events.append(item.event)
        result.last_version = max(result.last_version, item.version)
        if item.version >= expected_version:
            previous_hash = None if item.event is None else item.event.hash
        expected_version = max(expected_version, item.version + 1)
    return result


def _item_problems(
    item: StoredEvent, expected_version: int, previous_hash: str | None
) -> list[tuple[str, str]]:
    """(kind, detail) of everything wrong with ``item`` where ``expected_version`` was due."""
    problems: list[tuple[str, str]] = []
    if item.version < expected_version:
        problems.append(
            (
                DUPLICATE_VERSION,
                f"version {item.version} appears again after version {expected_version - 1}",
            )
        )
    elif item.version > expected_version:
        missing = _versions(expected_version, item.version - 1)
        problems.append((VERSION_GAP, f"{missing} missing before version {item.version}"))
    event = item.event
    if event is None:
        problems.append((UNREADABLE_EVENT, item.error or "the item is not an event"))
        return problems
    # After a gap or an unreadable item the link cannot be checked: that problem says it all.
    if (
        item.version == expected_version
        and previous_hash is not None
        and event.prev_hash != previous_hash
    ):
        problems.append(
            (
                PREV_HASH_MISMATCH,
                f"prev_hash {event.prev_hash[:16]}… is not the hash of version "
                f"{item.version - 1} ({previous_hash[:16]}…)"
                if item.version > 1
                else f"the first event's prev_hash {event.prev_hash[:16]}… is not 64 zeros",
            )
        )
    try:
        computed = event_hash(event)
    except (ValueError, LedgerError) as exc:  # a payload that is not JSON, or holds a float
        problems.append((HASH_MISMATCH, f"the content cannot be hashed: {exc}"))
        return problems
    if computed != event.hash:
        problems.append(
            (
                HASH_MISMATCH,
                f"stored hash {event.hash[:16]}… but the content hashes to {computed[:16]}…",
            )
        )
    return problems


def _versions(first: int, last: int) -> str:
    return f"version {first}" if first == last else f"versions {first}..{last}"
