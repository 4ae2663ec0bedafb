"""Proofs: generated for random events they verify, with the project's checker, with the script
docs/verification.md gives auditors, and with an independent verifier written from that document;
against the wrong digest, or altered in any part, all three refuse them."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.codec import canonical_json, chain_hash, hash_document, uuid7
from ledger.domain.errors import ChainBrokenError, NotFoundError
from ledger.domain.payment import RefundPayment
from ledger.envelope import RecordedEvent, payment_stream_id
from ledger.integrity.digests import digest_key, parse_digest, read_heads, write_digest
from ledger.integrity.merkle import Head
from ledger.integrity.proofs import build_proof, verify_proof
from ledger.memory import MemoryDigestStore, MemoryEventStore
from ledger.service import PaymentService
from tests import independent_verifier
from tests.integration.postgres.conftest import random_history
from tests.unit.conftest import context
from tests.verification_support import documented_script, documented_script_accepts, heads_of


def digest_of(digests: MemoryDigestStore, number: int) -> tuple[bytes, list[Head]]:
    stored = digests.read(digest_key(number))
    assert stored is not None
    return stored.data, read_heads(digests, parse_digest(stored.data))


def prove(store: MemoryEventStore, event: RecordedEvent, digest: tuple[bytes, list[Head]]) -> Any:
    proof = build_proof(store.load(event.stream_id), event.event_id, digest[0], digest[1])
    return json.loads(json.dumps(proof))  # as it travels: a file of JSON text


def verdicts(proof: Any, digest_bytes: bytes) -> tuple[bool, bool, bool]:
    """(project, documented script, independent verifier)."""
    return (
        verify_proof(proof, digest_bytes) == [],
        documented_script_accepts(proof, digest_bytes),
        _independent(proof, digest_bytes),
    )


def _independent(proof: Any, digest_bytes: bytes) -> bool:
    try:
        return independent_verifier.verify(proof, digest_bytes)
    except (KeyError, TypeError, ValueError, IndexError):
        return False


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 100_000), data=st.data())
def test_proofs_for_random_events_verify_and_fail_against_another_digest(
    seed: int, data: st.DataObject
) -> None:
    store = random_history(seed, payments=5, count=30).store
    digests = MemoryDigestStore()
    write_digest(digests, heads_of(store), store)
    stream_id = data.draw(st.sampled_from(sorted(store.stream_ids())))
    event = data.draw(st.sampled_from(store.load(stream_id)))
    first = digest_of(digests, 1)
    proof = prove(store, event, first)
    assert verdicts(proof, first[0]) == (True, True, True)
    assert proof["events"][0]["event_id"] == event.event_id
    assert proof["events"][-1]["hash"] == store.load(stream_id)[-1].hash

    # A later digest (another stream moved on) is a different digest: the proof is not for it.
    other = data.draw(st.sampled_from(sorted(store.stream_ids())))
    store.append([_forged_next(store.load(other))])
    write_digest(digests, heads_of(store), store)
    second = digest_of(digests, 2)
    assert verdicts(proof, second[0]) == (False, False, False)
    assert verdicts(prove(store, event, second), second[0]) == (True, True, True)


def test_an_old_event_is_proven_through_the_head_the_digest_attests(
    store: MemoryEventStore, service: PaymentService, recorded_history: list[RecordedEvent]
) -> None:
    digests = MemoryDigestStore()
    write_digest(digests, heads_of(store), store)
    service.execute(RefundPayment("pay-1", "1.00"), context("refund"))
    digest = digest_of(digests, 1)
    proof = prove(store, recorded_history[1], digest)
    assert [e["version"] for e in proof["events"]] == list(range(2, len(recorded_history) + 1))
    assert verdicts(proof, digest[0]) == (True, True, True)
    newest = store.load(payment_stream_id("pay-1"))[-1]
    with pytest.raises(NotFoundError, match="does not cover"):
        prove(store, newest, digest)


def test_no_proof_is_built_from_a_history_altered_after_the_digest(
    store: MemoryEventStore, recorded_history: list[RecordedEvent]
) -> None:
    digests = MemoryDigestStore()
    write_digest(digests, heads_of(store), store)
    stream = store._streams[payment_stream_id("pay-1")]
    stream[2] = replace(stream[2], payload=canonical_json({"forged": True}))
    with pytest.raises(ChainBrokenError):
        prove(store, recorded_history[1], digest_of(digests, 1))


ALTERATIONS = {
    "payload": lambda p: p["events"][0]["payload"].update(amount_minor=1),
    "actor": lambda p: p["events"][0]["actor"].update(id="someone-else"),
    "hash": lambda p: p["events"][0].update(hash="0" * 64),
    "link": lambda p: p["events"].pop(1),
    "head": lambda p: p["events"][-1].update(version=p["events"][-1]["version"] + 1),
    "event_id": lambda p: p.update(event_id="0" * 36),
    "leaf_index": lambda p: p.update(leaf_index=(p["leaf_index"] + 1) % p["tree_size"]),
    "path": lambda p: p["path"].__setitem__(0, "ab" * 32),
    "digest": lambda p: p["digest"].update(root="ab" * 32),
}


@pytest.mark.parametrize("part", sorted(ALTERATIONS))
def test_an_altered_proof_is_refused_by_all_three(part: str) -> None:
    store = random_history(7, payments=6, count=40).store
    digests = MemoryDigestStore()
    write_digest(digests, heads_of(store), store)
    digest = digest_of(digests, 1)
    stream_id = max(store.stream_ids(), key=lambda s: len(store.load(s)))
    proof = prove(store, store.load(stream_id)[0], digest)
    assert verdicts(proof, digest[0]) == (True, True, True)
    ALTERATIONS[part](proof)
    assert verdicts(proof, digest[0]) == (False, False, False)


def test_the_documented_script_runs_as_a_program(tmp_path: Path) -> None:
    store = random_history(11, payments=4, count=20).store
    digests = MemoryDigestStore()
    write_digest(digests, heads_of(store), store)
    digest = digest_of(digests, 1)
    stream_id = sorted(store.stream_ids())[1]
    event = store.load(stream_id)[0]
    script = tmp_path / "check_proof.py"
    script.write_text(documented_script(), encoding="utf-8")
    (tmp_path / "proof.json").write_text(json.dumps(prove(store, event, digest)))
    (tmp_path / "digest.json").write_bytes(digest[0])
    done = subprocess.run(
        [sys.executable, "-I", str(script), "proof.json", "digest.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"verified: event {event.event_id} is in digest 1\n"
    (tmp_path / "digest.json").write_bytes(digest[0].replace(b'"number":1', b'"number":2'))
    refused = subprocess.run(
        [sys.executable, "-I", str(script), "proof.json", "digest.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("NOT VERIFIED")


def _forged_next(stream: list[RecordedEvent]) -> RecordedEvent:
    """A well-chained next event for ``stream`` (its content does not matter to a digest)."""
    last = stream[-1]
    event = replace(last, version=last.version + 1, event_id=uuid7(), prev_hash=last.hash)
    return replace(event, hash=chain_hash(event.prev_hash, hash_document(event)))
