"""The digest's Merkle tree is RFC 9162's: roots and paths against the RFC's recursive
definitions, and a path proves one leaf at one position only. (A path may also fit a tree of
another size with the same root, as in the RFC; a proof takes its size from the digest.)"""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from ledger.integrity.merkle import (
    EMPTY_ROOT,
    Head,
    inclusion_path,
    leaf_bytes,
    leaf_hash,
    merkle_root,
    node_hash,
    root_from_path,
)


def rfc_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(rfc_root(leaves[:k]), rfc_root(leaves[k:]))


def rfc_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH, recursively."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if index < k:
        return [*rfc_path(index, leaves[:k]), rfc_root(leaves[k:])]
    return [*rfc_path(index - k, leaves[k:]), rfc_root(leaves[:k])]


def leaves_of(count: int) -> list[bytes]:
    return [hashlib.sha256(str(i).encode()).digest() for i in range(count)]


def test_every_size_up_to_70_matches_the_rfc() -> None:
    for size in range(71):
        leaves = leaves_of(size)
        assert merkle_root(leaves) == rfc_root(leaves), size
        for index in range(size):
            path = inclusion_path(leaves, index)
            assert path == rfc_path(index, leaves), (size, index)
            assert root_from_path(leaves[index], index, size, path) == rfc_root(leaves)


@given(size=st.integers(1, 2000), data=st.data())
def test_a_path_proves_its_leaf_at_its_position_only(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size)
    index = data.draw(st.integers(0, size - 1))
    root = merkle_root(leaves)
    path = inclusion_path(leaves, index)
    assert root_from_path(leaves[index], index, size, path) == root
    other = data.draw(st.integers(0, size - 1).filter(lambda i: leaves[i] != leaves[index]))
    if other != index:
        assert root_from_path(leaves[other], index, size, path) != root
        assert root_from_path(leaves[index], other, size, path) != root
    assert root_from_path(leaves[index], index, size, [*path, root]) is None
    if path:
        assert root_from_path(leaves[index], index, size, path[:-1]) != root


def test_boundaries() -> None:
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    [leaf] = leaves_of(1)
    assert merkle_root([leaf]) == leaf
    assert root_from_path(leaf, 0, 1, []) == leaf
    assert root_from_path(leaf, 1, 1, []) is None  # index out of range
    assert root_from_path(leaf, 0, 0, []) is None


def test_an_odd_node_is_carried_up_never_paired_with_itself() -> None:
    a, b, c = leaves_of(3)
    assert merkle_root([a, b, c]) == node_hash(node_hash(a, b), c)
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])  # CVE-2012-2459 cannot occur


def test_a_leaf_is_domain_separated_canonical_json_of_the_head() -> None:
    head = Head("payment#p-1", 3, "ab" * 32)
    assert leaf_bytes(head) == (
        b'{"hash":"' + b"ab" * 32 + b'","stream_id":"payment#p-1","version":3}'
    )
    assert leaf_hash(head) == hashlib.sha256(b"\x00" + leaf_bytes(head)).digest()
    # The same 64 bytes as a leaf and as a pair of children hash differently.
    left, right = leaves_of(2)
    assert hashlib.sha256(b"\x00" + left + right).digest() != node_hash(left, right)
