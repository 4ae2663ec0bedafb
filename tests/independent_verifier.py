"""A proof verifier written from docs/verification.md alone: it imports nothing of the project
(no codec, no Merkle code), serialises canonical JSON by hand, and checks the Merkle path with
RFC 6962's recursive definition of an audit path rather than the iterative RFC 9162 algorithm
the project and the documented script use. When it agrees with them, the format is what the
document says."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(f"{canonical(key)}:{canonical(item)}" for key, item in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(item) for item in value) + "]"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"not allowed in a canonical document: {value!r}")


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """RFC 6962 §2.1.1: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k, else
    PATH(m - k, D[k:n]) : MTH(D[0:k]); the last element of the path is nearest the root."""
    if size == 1:
        return leaf if not path else None
    if not path:
        return None
    k = _largest_power_of_two_below(size)
    sibling, rest = path[-1], path[:-1]
    if index < k:
        below = _root(leaf, index, k, rest)
        return None if below is None else _node(below, sibling)
    below = _root(leaf, index - k, size - k, rest)
    return None if below is None else _node(sibling, below)


def verify(proof: dict[str, Any], digest_bytes: bytes) -> bool:
    digest = json.loads(digest_bytes)
    if proof["digest"] != {
        "number": digest["number"],
        "root": digest["root"],
        "sha256": hashlib.sha256(digest_bytes).hexdigest(),
    }:
        return False
    if proof["tree_size"] != digest["leaf_count"]:
        return False
    events = proof["events"]
    if not events or events[0]["event_id"] != proof["event_id"]:
        return False
    for position, event in enumerate(events):
        body = {name: value for name, value in event.items() if name != "hash"}
        text = event["prev_hash"] + canonical(body)
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != event["hash"]:
            return False
        if position:
            before = events[position - 1]
            linked = (
                event["stream_id"] == before["stream_id"]
                and event["version"] == before["version"] + 1
                and event["prev_hash"] == before["hash"]
            )
            if not linked:
                return False
    head = events[-1]
    leaf_text = canonical(
        {"stream_id": head["stream_id"], "version": head["version"], "hash": head["hash"]}
    )
    leaf = hashlib.sha256(b"\x00" + leaf_text.encode("utf-8")).digest()
    index, size = proof["leaf_index"], proof["tree_size"]
    if not 0 <= index < size:
        return False
    root = _root(leaf, index, size, [bytes.fromhex(node) for node in proof["path"]])
    return root is not None and root.hex() == digest["root"]
