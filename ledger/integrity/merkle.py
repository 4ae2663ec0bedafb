"""The Merkle tree a digest commits to: one leaf per stream, the stream's chain head (DESIGN §8).

The tree is RFC 9162's (Certificate Transparency v2, §2.1), so an auditor can check a path with
any implementation of that RFC:
- leaf hash ``SHA-256(0x00 || leaf)``, node hash ``SHA-256(0x01 || left || right)``: the prefixes
  keep a leaf from ever being read as a node (second-preimage resistance);
- for n > 1 leaves, ``MTH(D[0:n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` with k the
  largest power of two below n. Level by level, this means an odd node at the end of a level is
  carried up unchanged; it is never paired with itself, so no two different leaf lists share a
  root (the duplicated-last-node flaw of Bitcoin's tree, CVE-2012-2459, cannot occur);
- the empty tree's root is ``SHA-256("")``.

A leaf is the canonical JSON (``ledger.codec.canonical_json``) of
``{"hash": <head hash>, "stream_id": <stream>, "version": <head version>}``, UTF-8. Leaves are
ordered by stream id (byte order of the UTF-8 text), one per stream. ``docs/verification.md``
states the same for auditors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.codec import canonical_json

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


@dataclass(frozen=True, slots=True, order=True)
class Head:
    """A stream's chain head: the hash of its event at ``version``."""

    stream_id: str
    version: int
    hash: str

    def to_dict(self) -> dict[str, str | int]:
        return {"stream_id": self.stream_id, "version": self.version, "hash": self.hash}


def leaf_bytes(head: Head) -> bytes:
    return canonical_json(
        {"hash": head.hash, "stream_id": head.stream_id, "version": head.version}
    ).encode("utf-8")


def leaf_hash(head: Head) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + leaf_bytes(head)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root over leaf hashes ``leaves`` (in tree order)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        level = _parent_level(level)
    return level[0]


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The sibling hashes from leaf ``index`` up to the root (RFC 9162 §2.1.3.1 order)."""
    assert 0 <= index < len(leaves), (index, len(leaves))
    path: list[bytes] = []
    level = list(leaves)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):  # the last node of an odd level has no sibling: carried up
            path.append(level[sibling])
        level = _parent_level(level)
        index //= 2
    return path


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root that ``path`` leads to from leaf hash ``leaf`` at ``index`` of ``size`` leaves,
    or None when the path cannot belong to such a tree (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        return None
    node, last = index, size - 1
    result = leaf
    for sibling in path:
        if last == 0:
            return None  # more path than the tree is tall
        if node % 2 == 1 or node == last:
            result = node_hash(sibling, result)
            if node % 2 == 0:  # a carried-up node: climb until it is a right child again
                while node % 2 == 0 and node != 0:
                    node //= 2
                    last //= 2
        else:
            result = node_hash(result, sibling)
        node //= 2
        last //= 2
    return result if last == 0 else None


def _parent_level(level: Sequence[bytes]) -> list[bytes]:
    parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents
