"""Canonical JSON, the per-stream SHA-256 hash chain and UUIDv7 event ids.

Canonical JSON: UTF-8, keys sorted, no insignificant whitespace, no floats (amounts are integer
minor units). For the ASCII keys and integer numbers the ledger uses, this is exactly RFC 8785
(JCS), so a verifier in any language reproduces the bytes.

Chain: ``hash = sha256_hex(prev_hash + canonical(document))`` where ``document`` is every field
of the event except ``hash``, with ``payload`` as a JSON object; the first event's ``prev_hash``
is 64 zeros.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from ledger.domain.errors import ChainBrokenError, ValidationError
from ledger.domain.timestamps import format_timestamp, parse_timestamp
from ledger.envelope import GENESIS_HASH, RecordedEvent

_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
# What ``_encoder`` encodes every string with (the C implementation where there is one).
_string = json.encoder.encode_basestring


def canonical_json(value: Any) -> str:
    """Serialise ``value`` canonically; floats are refused because money is never a float."""
    _refuse_floats(value)
    return _encoder.encode(value)


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise ValidationError(
            "floats are not allowed in events; use integer minor units or strings"
        )
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def hash_document(event: RecordedEvent) -> dict[str, Any]:
    """The exact document the chain hashes: the whole event but its own ``hash``."""
    return _hash_fields(event, json.loads(event.payload))


def _hash_fields(event: RecordedEvent, payload: Any) -> dict[str, Any]:
    return {
        "stream_id": event.stream_id,
        "version": event.version,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
        "actor": event.actor.to_dict(),
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "idempotency_key": event.idempotency_key,
        "request_digest": event.request_digest,
        "payload": payload,
        "prev_hash": event.prev_hash,
    }


def _refuse_number(text: str) -> Any:
    raise ValidationError(f"floats are not allowed in events (found {text[:32]})")


# One decoder for every payload (``json.loads`` with hooks builds a new one per call).
_payload_decoder = json.JSONDecoder(parse_float=_refuse_number, parse_constant=_refuse_number)


def chain_hash(prev_hash: str, document: dict[str, Any]) -> str:
    data = (prev_hash + canonical_json(document)).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def event_hash(event: RecordedEvent) -> str:
    """``chain_hash(event.prev_hash, hash_document(event))``, computed faster, for every chain
    verification: floats (and NaN, Infinity) are refused while the payload is parsed, so nothing
    walks the document; only the payload is re-encoded canonically, and the document's text is
    assembled around it in key order, each string encoded by the very function the encoder uses.
    """
    payload = _payload_decoder.decode(event.payload)
    actor = event.actor
    parts = [
        event.prev_hash,
        '{"actor":{"id":',
        _string(actor.id),
        ',"kind":',
        _string(actor.kind),
    ]
    if actor.model is not None:
        parts += [',"model":', _string(actor.model)]
    if actor.version is not None:
        parts += [',"version":', _string(actor.version)]
    parts += [
        '},"causation_id":',
        "null" if event.causation_id is None else _string(event.causation_id),
        ',"correlation_id":',
        _string(event.correlation_id),
        ',"event_id":',
        _string(event.event_id),
        ',"event_type":',
        _string(event.event_type),
        ',"idempotency_key":',
        _string(event.idempotency_key),
        ',"occurred_at":',
        _string(event.occurred_at),
        ',"payload":',
        _encoder.encode(payload),
        ',"prev_hash":',
        _string(event.prev_hash),
        ',"recorded_at":',
        _string(event.recorded_at),
        ',"request_digest":',
        _string(event.request_digest),
        ',"schema_version":',
        int.__repr__(event.schema_version),
        ',"stream_id":',
        _string(event.stream_id),
        ',"version":',
        int.__repr__(event.version),
        "}",
    ]
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


def verify_chain(events: Iterable[RecordedEvent], *, prev_hash: str = GENESIS_HASH) -> str:
    """Check versions are 1, 2, 3… without gaps and every hash links; return the head hash.

    Raises ``ChainBrokenError`` naming the stream, version and event id of the first bad event.
    """
    expected_version = 1
    for event in events:
        where = f"{event.stream_id} version {event.version} event {event.event_id}"
        if event.version != expected_version:
            raise ChainBrokenError(f"{where}: expected version {expected_version}")
        if event.prev_hash != prev_hash:
            raise ChainBrokenError(f"{where}: prev_hash does not match the previous event's hash")
        if event_hash(event) != event.hash:
            raise ChainBrokenError(f"{where}: hash does not match the event's content")
        prev_hash = event.hash
        expected_version += 1
    return prev_hash


def request_digest(command: str, request: dict[str, Any]) -> str:
    """Digest of what a command asked for, stored beside its idempotency key."""
    data = canonical_json({"command": command, "request": request}).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


class _Uuid7Factory:
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, then a 12-bit counter so ids made in the same
    millisecond by this process still sort in creation order, then 62 random bits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            else:
                self._counter += 1
                if self._counter > 0xFFF:
                    # Counter exhausted within one millisecond: borrow the next millisecond.
                    self._last_ms += 1
                    self._counter = 0
            unix_ms, counter = self._last_ms, self._counter
        random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (unix_ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= counter << 64
        value |= 0b10 << 62
        value |= random_bits
        return str(uuid.UUID(int=value))


uuid7 = _Uuid7Factory()

__all__ = [
    "canonical_json",
    "chain_hash",
    "event_document",
    "event_hash",
    "format_timestamp",
    "hash_document",
    "parse_timestamp",
    "request_digest",
    "uuid7",
    "verify_chain",
]


def event_document(event: RecordedEvent) -> dict[str, Any]:
    """The whole event as a JSON-ready document (what the API, the CLI and ``--json`` show)."""
    document = hash_document(event)
    document["hash"] = event.hash
    return document
