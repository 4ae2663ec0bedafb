"""Digests: numbered, chained, attesting only real chain points, never going backwards; and
``check_digests`` / ``run_verification`` finding every alteration of them or of the history."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ledger.codec import canonical_json, chain_hash, hash_document
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    InitiatePayment,
    SettlePayment,
)
from ledger.envelope import RecordedEvent, payment_stream_id
from ledger.integrity.digests import (
    DIGEST_CHAIN_BROKEN,
    DIGEST_HEAD_MISMATCH,
    DIGEST_HEAD_REGRESSED,
    DIGEST_INVALID,
    DIGEST_MISSING,
    DIGEST_OVERWRITTEN,
    Digest,
    check_digests,
    decode_heads,
    digest_key,
    encode_heads,
    heads_key,
    parse_digest,
    read_heads,
    root_of,
    sha256_hex,
    write_digest,
)
from ledger.integrity.merkle import Head
from ledger.integrity.runner import Verification, run_verification
from ledger.memory import MemoryDigestStore, MemoryEventStore
from ledger.service import PaymentService
from tests.unit.conftest import context
from tests.verification_support import heads_of

STREAM = payment_stream_id("pay-1")


@pytest.fixture
def digests() -> MemoryDigestStore:
    return MemoryDigestStore()


def kinds(problems: list) -> list[str]:  # type: ignore[type-arg]
    return [problem.kind for problem in problems]


def test_the_first_digest_attests_every_head(
    store: MemoryEventStore, digests: MemoryDigestStore, recorded_history: list[RecordedEvent]
) -> None:
    run = write_digest(digests, heads_of(store), store)
    assert run.digest is not None
    assert (run.digest.number, run.digest.previous_sha256) == (1, None)
    assert (run.attested, run.carried, run.pending, run.refused) == (1, 0, 0, [])
    stored = digests.read(digest_key(1))
    assert stored is not None
    assert parse_digest(stored.data) == run.digest
    [head] = read_heads(digests, run.digest)
    last = recorded_history[-1]
    assert head == Head(STREAM, last.version, last.hash)
    assert run.digest.root == root_of([head])
    document = json.loads(stored.data)
    assert document["heads"] == {
        "key": heads_key(run.digest.heads_sha256),
        "sha256": run.digest.heads_sha256,
    }
    assert check_digests(digests).problems == []


def test_each_digest_chains_the_previous_and_moves_heads_forward(
    store: MemoryEventStore, service: PaymentService, digests: MemoryDigestStore
) -> None:
    _initiate(service, "pay-2")
    first = write_digest(digests, heads_of(store), store).digest
    assert first is not None
    service.execute(SettlePayment("pay-2"), context("settle-2"))
    run = write_digest(digests, heads_of(store), store)
    assert run.digest is not None
    assert run.digest.number == 2
    first_bytes = digests.read(digest_key(1)).data  # type: ignore[union-attr]
    assert run.digest.previous_sha256 == sha256_hex(first_bytes)
    assert (run.attested, run.carried) == (1, 0)
    # Nothing changed: the next digest reuses the heads object (same content, same key).
    again = write_digest(digests, heads_of(store), store)
    assert again.digest is not None
    assert again.digest.number == 3
    assert again.digest.heads_sha256 == run.digest.heads_sha256
    assert (again.attested, again.carried) == (0, 1)
    assert check_digests(digests).problems == []


def test_only_real_chain_points_are_attested_and_heads_never_go_back(
    store: MemoryEventStore, digests: MemoryDigestStore, recorded_history: list[RecordedEvent]
) -> None:
    last = recorded_history[-1]
    write_digest(digests, [Head(STREAM, 3, recorded_history[2].hash)], store)
    offered = [
        Head(STREAM, last.version, "e" * 64),  # not the stored hash: refused
        Head(payment_stream_id("nobody"), 1, "a" * 64),  # no such event (yet): pending
    ]
    run = write_digest(digests, offered, store)
    assert run.digest is not None
    assert [head for head, _ in run.refused] == [offered[0]]
    assert (run.attested, run.pending, run.carried) == (0, 1, 1)
    assert read_heads(digests, run.digest) == [Head(STREAM, 3, recorded_history[2].hash)]
    # An older head offered (a read model restored from a backup) does not move it back.
    older = write_digest(digests, [Head(STREAM, 2, recorded_history[1].hash)], store)
    assert older.digest is not None
    assert read_heads(digests, older.digest) == [Head(STREAM, 3, recorded_history[2].hash)]


def test_a_head_whose_event_does_not_hash_to_it_is_refused(
    store: MemoryEventStore, digests: MemoryDigestStore, recorded_history: list[RecordedEvent]
) -> None:
    last = recorded_history[-1]
    store._streams[STREAM][-1] = replace(last, payload=canonical_json({"forged": 1}))
    run = write_digest(digests, [Head(STREAM, last.version, last.hash)], store)
    assert [reason for _, reason in run.refused] == [
        "the stored event's content does not hash to its hash"
    ]


def test_a_number_is_written_once(
    store: MemoryEventStore, digests: MemoryDigestStore, recorded_history: list[RecordedEvent]
) -> None:
    digests.put_new(digest_key(1), b"written by a concurrent run")
    real_latest = digests.latest_number
    digests.latest_number = lambda: None  # type: ignore[method-assign]
    try:
        run = write_digest(digests, heads_of(store), store)
    finally:
        digests.latest_number = real_latest  # type: ignore[method-assign]
    assert run.digest is None
    assert digests.read(digest_key(1)).data == b"written by a concurrent run"  # type: ignore[union-attr]


# ── Alterations of the digests ───────────────────────────────────────────────────────────────


@pytest.fixture
def three_digests(
    store: MemoryEventStore, service: PaymentService, digests: MemoryDigestStore
) -> MemoryDigestStore:
    _initiate(service, "pay-2")
    write_digest(digests, heads_of(store), store)
    service.execute(SettlePayment("pay-2"), context("settle-2"))
    write_digest(digests, heads_of(store), store)
    write_digest(digests, heads_of(store), store)
    assert check_digests(digests).problems == []
    return digests


def test_a_gap_is_found(three_digests: MemoryDigestStore) -> None:
    del three_digests.objects[digest_key(2)]
    problems = check_digests(three_digests).problems
    assert kinds(problems) == [DIGEST_MISSING]
    assert problems[0].location == f"memory/{digest_key(2)}"


def test_a_version_put_over_a_digest_is_found(three_digests: MemoryDigestStore) -> None:
    three_digests.overwrite(digest_key(2), b"{}")
    problems = check_digests(three_digests).problems
    assert kinds(problems) == [DIGEST_OVERWRITTEN]
    assert problems[0].location == f"memory/{digest_key(2)}"


def test_an_altered_digest_is_found(three_digests: MemoryDigestStore) -> None:
    """Digest 2's root changed in place (a bucket without Object Lock, a forged copy)."""
    document = json.loads(three_digests.objects[digest_key(2)][0])
    document["root"] = "0" * 64
    three_digests.objects[digest_key(2)][0] = canonical_json(document).encode()
    problems = check_digests(three_digests).problems
    assert kinds(problems) == [DIGEST_INVALID]
    assert problems[0].location == f"memory/{digest_key(2)}"
    assert "root" in problems[0].detail


def test_a_digest_rewritten_consistently_breaks_the_next_link(
    three_digests: MemoryDigestStore,
) -> None:
    """Digest 2 replaced by a well-formed digest of other heads: digest 3 no longer chains."""
    original = parse_digest(three_digests.objects[digest_key(2)][0])
    heads = [Head(payment_stream_id("pay-1"), 1, "a" * 64)]

    data = encode_heads(heads)
    three_digests.objects[heads_key(sha256_hex(data))] = [data]
    forged = Digest(
        2, original.created_at, original.previous_sha256, root_of(heads), 1, sha256_hex(data)
    )
    three_digests.objects[digest_key(2)][0] = forged.to_bytes()
    found = kinds(check_digests(three_digests).problems)
    assert DIGEST_CHAIN_BROKEN in found
    assert DIGEST_HEAD_REGRESSED in found  # pay-2 vanished, pay-1 went back to version 1


def test_an_altered_heads_object_is_found(three_digests: MemoryDigestStore) -> None:
    digest = parse_digest(three_digests.objects[digest_key(3)][0])
    heads = decode_heads(three_digests.objects[heads_key(digest.heads_sha256)][0])
    assert heads
    three_digests.objects[heads_key(digest.heads_sha256)][0] = b"\x1f\x8b garbage"
    problems = check_digests(three_digests).problems
    assert set(kinds(problems)) == {DIGEST_INVALID}
    assert len(problems) == 2  # digests 2 and 3 share the heads object


# ── History rewritten under a digest ─────────────────────────────────────────────────────────


def test_history_rewritten_with_every_hash_recomputed_is_caught_by_the_digest(
    store: MemoryEventStore, digests: MemoryDigestStore, recorded_history: list[RecordedEvent]
) -> None:
    write_digest(digests, heads_of(store), store)
    forged = _rewrite_from(recorded_history, 3, {"note": "rewritten"})
    store._streams[STREAM] = forged
    report = run_verification(Verification(store=store, digests=digests))
    assert [(p.check, p.kind) for p in report.problems] == [("digests", DIGEST_HEAD_MISMATCH)]
    [problem] = report.problems
    assert (problem.stream_id, problem.version) == (STREAM, len(recorded_history))
    assert problem.location == f"memory/{digest_key(1)}"


def test_a_removed_last_event_is_caught_by_the_digest(
    store: MemoryEventStore, digests: MemoryDigestStore, recorded_history: list[RecordedEvent]
) -> None:
    write_digest(digests, heads_of(store), store)
    store._streams[STREAM].pop()
    report = run_verification(Verification(store=store, digests=digests))
    [problem] = report.problems
    assert problem.kind == DIGEST_HEAD_MISMATCH
    assert "the stream ends at version" in problem.detail


def _rewrite_from(
    events: list[RecordedEvent], version: int, extra: dict[str, str]
) -> list[RecordedEvent]:
    """The stream with ``extra`` added to the payload at ``version`` and every hash from there
    recomputed, as a forger with write access would."""
    rewritten = list(events[: version - 1])
    for event in events[version - 1 :]:
        if event.version == version:
            event = replace(event, payload=canonical_json(json.loads(event.payload) | extra))
        event = replace(event, prev_hash=rewritten[-1].hash if rewritten else "0" * 64)
        rewritten.append(replace(event, hash=chain_hash(event.prev_hash, hash_document(event))))
    return rewritten


def _initiate(service: PaymentService, payment_id: str) -> None:

    service.execute(
        InitiatePayment(payment_id, "5.00", "EUR", "m-1", "c-1"), context(f"{payment_id}-i")
    )
    service.execute(AssessRisk(payment_id, "approve", "0.1", "ok"), context(f"{payment_id}-r"))
    service.execute(AuthorizePayment(payment_id), context(f"{payment_id}-a"))
    service.execute(CapturePayment(payment_id, "5.00"), context(f"{payment_id}-c"))
