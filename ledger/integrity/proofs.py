"""Proofs that one event is part of the history a digest attests (DESIGN §8).

A proof (``docs/verification.md`` is the auditor's reference) is a JSON document:
``{"format": "payledger-proof/1", "event_id", "events", "leaf_index", "tree_size", "path",
"digest": {"number", "root", "sha256"}}`` where ``events`` are the event's document (as
``ledger.codec.event_document`` writes it) followed by every later event of its stream up to the
head the digest attests; ``path`` the hex sibling hashes from that head's leaf to the root
(RFC 9162 inclusion proof); ``digest.sha256`` the SHA-256 of the digest object's bytes.

Checking one needs the proof and the digest object only: no AWS access, no project state.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from typing import Any

from ledger.codec import chain_hash, event_document
from ledger.domain.errors import ChainBrokenError, LedgerError, NotFoundError
from ledger.envelope import RecordedEvent
from ledger.integrity.digests import Digest, DigestFormatError, parse_digest, sha256_hex
from ledger.integrity.merkle import Head, inclusion_path, leaf_hash, root_from_path

PROOF_FORMAT = "payledger-proof/1"
_PROOF_FIELDS = frozenset(
    {"format", "event_id", "events", "leaf_index", "tree_size", "path", "digest"}
)


def head_of(heads: Sequence[Head], stream_id: str) -> tuple[int, Head] | None:
    """The position and head of ``stream_id`` in ``heads`` (sorted by stream id), if any."""
    index = bisect.bisect_left(heads, stream_id, key=lambda head: head.stream_id)
    if index < len(heads) and heads[index].stream_id == stream_id:
        return index, heads[index]
    return None


def build_proof(
    stream: Sequence[RecordedEvent],
    event_id: str,
    digest_data: bytes,
    heads: Sequence[Head],
) -> dict[str, Any]:
    """The proof that ``event_id`` (an event of ``stream``, versions from 1) is covered by the
    digest in ``digest_data``, whose heads are ``heads``.

    ``NotFoundError`` if the digest does not cover the event (its stream is not in the digest,
    or only at an earlier version); ``ChainBrokenError`` if the stored stream no longer leads to
    the head the digest attests (the history was altered after the digest).
    """
    digest = parse_digest(digest_data)
    event = next((event for event in stream if event.event_id == event_id), None)
    if event is None:
        raise NotFoundError(f"event {event_id} is not in the stream given")
    found = head_of(heads, event.stream_id)
    if found is None or found[1].version < event.version:
        raise NotFoundError(
            f"digest {digest.number} does not cover {event.stream_id} version {event.version}"
            " yet: the next digest will"
        )
    index, head = found
    segment = list(stream[event.version - 1 : head.version])
    problems = check_segment([event_document(item) for item in segment])
    if len(segment) != head.version - event.version + 1 or segment[-1].hash != head.hash:
        problems.append(f"the stored chain does not reach digest {digest.number}'s head")
    if problems:
        raise ChainBrokenError(f"{event.stream_id}: " + "; ".join(problems))
    path = inclusion_path([leaf_hash(item) for item in heads], index)
    return {
        "format": PROOF_FORMAT,
        "event_id": event_id,
        "events": [event_document(item) for item in segment],
        "leaf_index": index,
        "tree_size": len(heads),
        "path": [node.hex() for node in path],
        "digest": {"number": digest.number, "root": digest.root, "sha256": sha256_hex(digest_data)},
    }


def verify_proof(proof: Any, digest_data: bytes) -> list[str]:
    """Every reason ``proof`` does not prove its event against the digest in ``digest_data``;
    empty when it does."""
    try:
        digest = parse_digest(digest_data)
    except DigestFormatError as exc:
        return [f"the digest is not valid: {exc.message}"]
    if not isinstance(proof, dict) or set(proof) != _PROOF_FIELDS:
        return [f"a proof has exactly the fields {sorted(_PROOF_FIELDS)}"]
    if proof["format"] != PROOF_FORMAT:
        return [f"format {proof['format']!r} is not {PROOF_FORMAT}"]
    problems = _digest_problems(proof, digest, digest_data)
    events = proof["events"]
    if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
        return [*problems, "events must be a non-empty list of event documents"]
    if events[0].get("event_id") != proof["event_id"]:
        problems.append("the first event is not the event the proof is for")
    problems.extend(check_segment(events))
    problems.extend(_path_problems(proof, digest, events[-1]))
    return problems


def check_segment(documents: Sequence[dict[str, Any]]) -> list[str]:
    """Every break in a run of consecutive event documents of one stream (hashes and links)."""
    problems = []
    for position, document in enumerate(documents):
        try:
            content = {name: value for name, value in document.items() if name != "hash"}
            if chain_hash(document["prev_hash"], content) != document["hash"]:
                problems.append(f"event {position + 1} does not hash to its hash")
        except (KeyError, TypeError, LedgerError):
            problems.append(f"event {position + 1} is not an event document")
            continue
        if position:
            previous = documents[position - 1]
            if document.get("stream_id") != previous.get("stream_id"):
                problems.append(f"event {position + 1} is of another stream")
            if document.get("version") != _next_version(previous.get("version")):
                problems.append(f"event {position + 1} does not follow the version before it")
            if document.get("prev_hash") != previous.get("hash"):
                problems.append(f"event {position + 1} does not link to the event before it")
    return problems


def _digest_problems(proof: dict[str, Any], digest: Digest, digest_data: bytes) -> list[str]:
    expected = {"number": digest.number, "root": digest.root, "sha256": sha256_hex(digest_data)}
    if proof["digest"] != expected:
        return [f"the proof is for another digest than digest {digest.number} given"]
    if proof["tree_size"] != digest.leaf_count:
        return [f"tree_size {proof['tree_size']!r} is not the digest's leaf_count"]
    return []


def _path_problems(proof: dict[str, Any], digest: Digest, head: dict[str, Any]) -> list[str]:
    index, size, path = proof["leaf_index"], proof["tree_size"], proof["path"]
    try:
        leaf = leaf_hash(Head(head["stream_id"], head["version"], head["hash"]))
        nodes = [bytes.fromhex(node) for node in path]
    except (KeyError, TypeError, ValueError, LedgerError):
        return ["the head or the path is malformed"]
    if not all(len(node) == 32 for node in nodes) or not _is_count(index) or not _is_count(size):
        return ["the head or the path is malformed"]
    root = root_from_path(leaf, index, size, nodes)
    if root is None or root.hex() != digest.root:
        return ["the Merkle path does not lead from the head to the digest's root"]
    return []


def _next_version(version: Any) -> int | None:
    return version + 1 if _is_count(version) else None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_proof(text: str) -> Any:
    """A proof document from its JSON text; ``DigestFormatError`` if it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DigestFormatError(f"the proof is not JSON: {exc}") from exc
