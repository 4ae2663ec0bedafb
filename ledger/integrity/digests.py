"""Digests: numbered, chained Merkle roots over every stream's chain head (DESIGN §8).

A digest is two objects in a bucket with S3 Object Lock in compliance mode (no one, the root
account included, can delete or overwrite a version before its retention ends):
- ``digests/<number, 10 digits>.json``: the digest document (canonical JSON):
  ``{"format", "number", "created_at", "previous_sha256", "root", "leaf_count", "heads"}``;
  ``previous_sha256`` is the SHA-256 of the previous digest object's bytes (null for number 1),
  so each digest vouches for the whole sequence before it; ``heads`` is
  ``{"key", "sha256"}`` of the heads object;
- ``heads/<sha256>.jsonl.gz``: the leaves, one canonical JSON line per stream,
  ``{"hash", "position", "stream_id", "version"}``, sorted by stream id, positions 0, 1, 2…,
  gzip-compressed. Content-addressed: a digest whose heads did not change reuses the object, and a
  retried run rewrites nothing.
The heads live beside the digest rather than in it so that the document an auditor keeps, and
hands to ``verify-proof``, stays a few hundred bytes however many payments there are.

Guarantees of ``write_digest``:
- it attests only heads that are real chain points: a head offered by the read model is attested
  only if the events table holds an event at that stream and version whose content hashes to that
  head hash; anything else is refused (and reported), the stream keeping its previous head;
- heads never move backwards: a stream keeps the newest head of the previous digest when the read
  model offers an older one (a read model restored from a backup), and no stream ever drops out;
- a number is written once: the write is conditional (``If-None-Match``), so two concurrent runs
  cannot both write digest n; the loser writes nothing and says so.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.codec import canonical_json, event_hash
from ledger.decoding import is_event_time
from ledger.domain.timestamps import format_timestamp
from ledger.integrity.chains import ChainCheck, Problem, VerificationFailedError
from ledger.integrity.merkle import Head, leaf_hash, merkle_root
from ledger.store import EventStore

DIGEST_FORMAT = "payledger-digest/1"
DIGEST_PREFIX = "digests/"
HEADS_PREFIX = "heads/"
NUMBER_DIGITS = 10
_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
_DIGEST_KEY = re.compile(r"digests/(\d{10})\.json\Z")
_DIGEST_FIELDS = frozenset(
    {"format", "number", "created_at", "previous_sha256", "root", "leaf_count", "heads"}
)


class DigestFormatError(VerificationFailedError):
    """A digest or heads object does not have the documented shape."""

    code = "digest_invalid"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_key(number: int) -> str:
    assert 0 < number < 10**NUMBER_DIGITS, number
    return f"{DIGEST_PREFIX}{number:0{NUMBER_DIGITS}d}.json"


def digest_number_of(key: str) -> int | None:
    """The number in a digest object's key, or None if ``key`` is not a digest's."""
    match = _DIGEST_KEY.match(key)
    return None if match is None else int(match.group(1))


def heads_key(sha256: str) -> str:
    return f"{HEADS_PREFIX}{sha256}.jsonl.gz"


@dataclass(frozen=True, slots=True)
class Digest:
    number: int
    created_at: str
    previous_sha256: str | None
    root: str
    leaf_count: int
    heads_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DIGEST_FORMAT,
            "number": self.number,
            "created_at": self.created_at,
            "previous_sha256": self.previous_sha256,
            "root": self.root,
            "leaf_count": self.leaf_count,
            "heads": {"key": heads_key(self.heads_sha256), "sha256": self.heads_sha256},
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict()).encode("utf-8")


def parse_digest(data: bytes) -> Digest:
    """The digest in ``data``, or ``DigestFormatError`` saying what is wrong with it."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DigestFormatError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or set(document) != _DIGEST_FIELDS:
        raise DigestFormatError(f"a digest has exactly the fields {sorted(_DIGEST_FIELDS)}")
    if document["format"] != DIGEST_FORMAT:
        raise DigestFormatError(f"format {document['format']!r} is not {DIGEST_FORMAT}")
    number, leaf_count = document["number"], document["leaf_count"]
    heads = document["heads"]
    previous = document["previous_sha256"]
    checks = [
        (_is_int(number) and number > 0, "number must be a positive integer"),
        (_is_int(leaf_count) and leaf_count >= 0, "leaf_count must be an integer ≥ 0"),
        (
            isinstance(document["created_at"], str) and is_event_time(document["created_at"]),
            "created_at must be an ISO-8601 UTC timestamp with microseconds",
        ),
        (_is_sha256(document["root"]), "root must be 64 lowercase hex digits"),
        (previous is None or _is_sha256(previous), "previous_sha256 must be null or a SHA-256"),
        ((previous is None) == (number == 1), "only digest 1 has no previous_sha256"),
        (
            isinstance(heads, dict)
            and set(heads) == {"key", "sha256"}
            and _is_sha256(heads["sha256"])
            and heads["key"] == heads_key(heads["sha256"]),
            "heads must be {key, sha256} with key heads/<sha256>.jsonl.gz",
        ),
    ]
    for passed, message in checks:
        if not passed:
            raise DigestFormatError(message)
    digest = Digest(
        number, document["created_at"], previous, document["root"], leaf_count, heads["sha256"]
    )
    if digest.to_bytes() != data:
        raise DigestFormatError("the digest is not in canonical JSON")
    return digest


def encode_heads(heads: Sequence[Head]) -> bytes:
    """The heads object: ``heads`` (sorted by stream id, one per stream) as gzip JSON Lines."""
    lines = [
        canonical_json(
            {"hash": h.hash, "position": i, "stream_id": h.stream_id, "version": h.version}
        )
        for i, h in enumerate(heads)
    ]
    text = "".join(line + "\n" for line in lines).encode("utf-8")
    # mtime=0: the same heads always give the same bytes, hence the same content address.
    return gzip.compress(text, compresslevel=6, mtime=0)


def decode_heads(data: bytes) -> list[Head]:
    """The heads in a heads object, checked: positions 0, 1, 2…, stream ids strictly ascending."""
    try:
        lines = gzip.decompress(data).decode("utf-8").splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DigestFormatError(f"the heads object is not gzip UTF-8 text: {exc}") from exc
    heads: list[Head] = []
    for position, line in enumerate(lines):
        try:
            document = json.loads(line)
            head = Head(document["stream_id"], document["version"], document["hash"])
            valid = (
                document["position"] == position
                and isinstance(head.stream_id, str)
                and _is_int(head.version)
                and head.version > 0
                and _is_sha256(head.hash)
                and canonical_json(document) == line
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DigestFormatError(f"heads line {position + 1}: {exc}") from exc
        if not valid:
            raise DigestFormatError(f"heads line {position + 1} is not a valid head")
        if heads and heads[-1].stream_id >= head.stream_id:
            raise DigestFormatError(f"heads line {position + 1}: stream ids not ascending")
        heads.append(head)
    return heads


def root_of(heads: Sequence[Head]) -> str:
    return merkle_root([leaf_hash(head) for head in heads]).hex()


# ── Storage ──────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class StoredObject:
    data: bytes
    versions: int  # how many versions the key has: a digest is written once, so more is tampering


class DigestStore(ABC):
    """Where digests are kept, written once (``ledger.integrity.s3.S3DigestStore``; memory for
    tests)."""

    location: str  # e.g. s3://bucket, for problem reports

    @abstractmethod
    def numbers(self) -> list[int]:
        """Every digest number present, ascending."""

    @abstractmethod
    def read(self, key: str) -> StoredObject | None:
        """The first version of ``key`` (what was written) and the count of versions, or None."""

    @abstractmethod
    def put_new(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` unless the key exists; False if it did."""

    def latest_number(self) -> int | None:
        numbers = self.numbers()
        return numbers[-1] if numbers else None


# ── Writing a digest ─────────────────────────────────────────────────────────────────────────


@dataclass(slots=True)
class DigestRun:
    digest: Digest | None = None  # None when another run wrote the number first
    attested: int = 0  # heads new in this digest
    carried: int = 0  # heads kept from the previous digest
    pending: int = 0  # offered heads the events table did not return yet (next digest)
    refused: list[tuple[Head, str]] = field(
        default_factory=list
    )  # offered heads that are not chain points

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": None if self.digest is None else self.digest.to_dict(),
            "attested": self.attested,
            "carried": self.carried,
            "pending": self.pending,
            "refused": [{**head.to_dict(), "reason": reason} for head, reason in self.refused],
        }


def write_digest(
    store: DigestStore,
    offered: Iterable[Head],
    events: EventStore,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DigestRun:
    """Write the next digest: the previous digest's heads, moved forward where ``offered`` (the
    read model's heads) has newer ones that the events table confirms."""
    run = DigestRun()
    number = (store.latest_number() or 0) + 1
    previous_heads: dict[str, Head] = {}
    previous_sha256 = None
    if number > 1:
        previous_data, previous = _read_digest(store, number - 1)
        previous_sha256 = sha256_hex(previous_data)
        previous_heads = {head.stream_id: head for head in read_heads(store, previous)}
    heads = dict(previous_heads)
    newer = [
        head
        for head in offered
        if head.stream_id not in previous_heads
        or head.version > previous_heads[head.stream_id].version
    ]
    stored = events.events_at([(head.stream_id, head.version) for head in newer])
    for head in newer:
        event = stored.get((head.stream_id, head.version))
        if event is None:
            run.pending += 1
        elif event.hash != head.hash:
            run.refused.append((head, f"the stored event's hash is {event.hash}"))
        elif event_hash(event) != event.hash:
            run.refused.append((head, "the stored event's content does not hash to its hash"))
        else:
            heads[head.stream_id] = head
            run.attested += 1
    run.carried = len(heads) - run.attested
    ordered = [heads[stream_id] for stream_id in sorted(heads)]
    heads_data = encode_heads(ordered)
    heads_sha256 = sha256_hex(heads_data)
    digest = Digest(
        number=number,
        created_at=format_timestamp(clock()),
        previous_sha256=previous_sha256,
        root=root_of(ordered),
        leaf_count=len(ordered),
        heads_sha256=heads_sha256,
    )
    # Heads first: a digest never names a heads object that is not there. An existing heads key
    # holds these very bytes (the key is their hash).
    store.put_new(heads_key(heads_sha256), heads_data)
    if store.put_new(digest_key(number), digest.to_bytes()):
        run.digest = digest
    return run


def _read_digest(store: DigestStore, number: int) -> tuple[bytes, Digest]:
    stored = store.read(digest_key(number))
    if stored is None:
        raise DigestFormatError(f"digest {number} is listed but cannot be read")
    return stored.data, parse_digest(stored.data)


def read_heads(store: DigestStore, digest: Digest) -> list[Head]:
    """The heads of ``digest``, checked against its heads hash, root and leaf count."""
    stored = store.read(heads_key(digest.heads_sha256))
    if stored is None:
        raise DigestFormatError(f"digest {digest.number}: heads object missing")
    if sha256_hex(stored.data) != digest.heads_sha256:
        raise DigestFormatError(f"digest {digest.number}: heads object does not match its hash")
    heads = decode_heads(stored.data)
    if len(heads) != digest.leaf_count or root_of(heads) != digest.root:
        raise DigestFormatError(f"digest {digest.number}: heads do not give its root")
    return heads


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and _SHA256_HEX.match(value) is not None


# ── Verifying the digests ────────────────────────────────────────────────────────────────────

# Problem kinds (docs/verification.md lists them).
DIGEST_MISSING = "digest_missing"
DIGEST_OVERWRITTEN = "digest_overwritten"
DIGEST_INVALID = "digest_invalid"
DIGEST_CHAIN_BROKEN = "digest_chain_broken"
DIGEST_HEAD_REGRESSED = "digest_head_regressed"
DIGEST_HEAD_MISMATCH = "digest_head_mismatch"


@dataclass(slots=True)
class DigestsCheck:
    digests: int = 0
    problems: list[Problem] = field(default_factory=list)
    # stream id -> (version, hash) -> the first digest attesting it
    heads: dict[str, dict[tuple[int, str], int]] = field(default_factory=dict)
    latest: Digest | None = None


def check_digests(store: DigestStore) -> DigestsCheck:
    """Check the digest sequence on its own: numbers 1..n without a gap, each written once, in
    the documented format, chained to the one before (``previous_sha256``), its heads object
    intact and giving its root, no stream's head going backwards. The heads it gathers are then
    checked against the chains (``head_problems``)."""
    result = DigestsCheck()
    numbers = store.numbers()
    present = set(numbers)
    previous: tuple[bytes, dict[str, Head]] | None = None
    for number in range(1, (numbers[-1] if numbers else 0) + 1):
        location = f"{store.location}/{digest_key(number)}"
        stored = store.read(digest_key(number)) if number in present else None
        if stored is None:
            result.problems.append(
                Problem("digests", DIGEST_MISSING, f"digest {number} is missing", location=location)
            )
            previous = None
            continue
        result.digests += 1
        checked = _check_one(store, number, stored, previous, result.problems)
        if checked is None:
            previous = None
            continue
        digest, heads = checked
        for head in heads:
            attested = result.heads.setdefault(head.stream_id, {})
            attested.setdefault((head.version, head.hash), number)
        previous = (stored.data, {head.stream_id: head for head in heads})
        result.latest = digest
    return result


def _check_one(
    store: DigestStore,
    number: int,
    stored: StoredObject,
    previous: tuple[bytes, dict[str, Head]] | None,
    problems: list[Problem],
) -> tuple[Digest, list[Head]] | None:
    """Check digest ``number`` (``stored``) against the one before it; its digest and heads, or
    None when it cannot be read as a digest."""
    location = f"{store.location}/{digest_key(number)}"

    def report(kind: str, detail: str, stream_id: str | None = None, where: str = location) -> None:
        problems.append(Problem("digests", kind, detail, stream_id, location=where))

    if stored.versions > 1:
        report(DIGEST_OVERWRITTEN, f"{stored.versions} versions or delete markers under the key")
    try:
        digest = parse_digest(stored.data)
        if digest.number != number:
            raise DigestFormatError(f"the object at this key says it is digest {digest.number}")
        heads = read_heads(store, digest)
    except DigestFormatError as exc:
        report(DIGEST_INVALID, exc.message)
        return None
    heads_stored = store.read(heads_key(digest.heads_sha256))
    if heads_stored is not None and heads_stored.versions > 1:
        where = f"{store.location}/{heads_key(digest.heads_sha256)}"
        report(DIGEST_OVERWRITTEN, "the heads object has more than one version", where=where)
    if previous is None:
        return digest, heads
    previous_data, previous_heads = previous
    if digest.previous_sha256 != sha256_hex(previous_data):
        report(DIGEST_CHAIN_BROKEN, f"previous_sha256 is not the SHA-256 of digest {number - 1}")
    current = {head.stream_id: head for head in heads}
    for stream_id, before in previous_heads.items():
        after = current.get(stream_id)
        if after is None or after.version < before.version:
            now = "absent" if after is None else f"at version {after.version}"
            report(
                DIGEST_HEAD_REGRESSED,
                f"digest {number - 1} had version {before.version}; this one has it {now}",
                stream_id,
            )
    return digest, heads


def head_problems(
    chain: ChainCheck, attested: dict[tuple[int, str], int], location: str
) -> list[Problem]:
    """Every head a digest attests for ``chain``'s stream that the recomputed chain does not
    pass through."""
    problems = []
    for (version, head_hash), number in sorted(attested.items()):
        if chain.confirms(version, head_hash):
            continue
        stored = chain.hash_at(version)
        if version > chain.last_version:
            detail = f"the stream ends at version {chain.last_version}"
        elif stored is None:
            detail = f"the chain is broken at or before version {version}"
        else:
            detail = f"the chain recomputed from the events has {stored}"
        problems.append(
            Problem(
                "digests",
                DIGEST_HEAD_MISMATCH,
                f"digest {number} attests {head_hash} at version {version}; {detail}",
                chain.stream_id,
                version,
                None,
                f"{location}/{digest_key(number)}",
            )
        )
    return problems
