"""Verification benchmark (issue 6): chain verification against raw SHA-256, replay latency.

Prints, each measured in this run:
- ``verify --chains`` over a ``--archive-events`` archive of Parquet objects (every row read,
  every hash recomputed, every link and version checked: ``archive.verify``) in events/s,
  against raw ``hashlib.sha256`` over exactly the bytes the chains hash (``prev_hash`` + the
  canonical document), precomputed, in one thread: the target is ≥ 50% of raw. The check runs
  DuckDB on every core beside the hashing thread; the CPU it used is printed too;
- the event-by-event check (``ledger.integrity.chains.check_chain``, what the DynamoDB source and
  the archive's doubtful streams go through) in memory, against the same baseline, and where
  its time goes (parsing and re-encoding the payload dominates: a stored payload's text is
  checked to be its canonical JSON, which an auditor's verifier relies on);
- replay of one payment from the archive (the ``ArchiveReader``, DuckDB),
- replay of one payment from DynamoDB (the moto server on loopback: one Query and the fold),
  latency p50 / p95 / max;
- a digest over every stream and a proof for one event (time), and peak RSS.

Events are generated, not decided by the domain: a template lifecycle decided once by the real
``PaymentService`` is cloned per payment with fresh ids (payloads stay canonical JSON, ids keep
their length), and each clone is hashed. A sample is cross-checked with ``ledger.codec``.
Exits non-zero only on a crash or a verification mismatch; a missed target is reported.

``python bench/verify.py --events 50000`` runs a smaller workload.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from json.encoder import encode_basestring
from pathlib import Path

import _archive_path  # noqa: F401 - before archive: bench/archive.py shadows the package
import boto3

from archive.engine import EngineSettings
from archive.layout import day_prefix
from archive.local import LocalArchiveStorage
from archive.parquet import encode
from archive.reader import ArchiveReader
from archive.schema import events_to_table
from archive.verify import verify_archive_chains
from devstack.motoserver import MotoServer
from devstack.template import create_table
from ledger.codec import _encoder, event_hash, hash_document
from ledger.decoding import decode_event
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    Command,
    InitiatePayment,
    RefundPayment,
    SettlePayment,
)
from ledger.dynamodb import DynamoDBEventStore, event_to_item
from ledger.envelope import GENESIS_HASH, Actor, RecordedEvent, StoredEvent, payment_stream_id
from ledger.integrity.chains import check_chain
from ledger.integrity.digests import decode_heads, digest_key, heads_key, parse_digest, write_digest
from ledger.integrity.merkle import Head
from ledger.integrity.proofs import build_proof, verify_proof
from ledger.memory import MemoryDigestStore, MemoryEventStore
from ledger.service import CommandContext, PaymentService, replay_steps

EVENTS = 200_000
ARCHIVE_EVENTS = 1_000_000
ARCHIVE_OBJECT_ROWS = 100_000
REPLAYS = 200
ARCHIVE_REPLAYS = 20
# DuckDB sorts the archive by stream; it spills past this (the machine is shared).
ENGINE = EngineSettings(memory_limit="2GB")
TARGET_SHARE_OF_RAW = 0.5
ACTOR = Actor("agent", "payments-agent", model="router", version="2026.11")
_TEMPLATE_ID = "tmpl-abcdefabcdef"  # 17 characters, like the clones' ids


def template_lifecycle() -> list[RecordedEvent]:
    """Seven events of one payment, decided by the real service."""
    service = PaymentService(MemoryEventStore())
    commands: list[Command] = [
        InitiatePayment(_TEMPLATE_ID, "129.90", "EUR", "merchant-0042", "customer-8812c1",
                        metadata={"order_id": "ORD-2026-118812", "channel": "web"}),
        AssessRisk(_TEMPLATE_ID, "approve", "0.0712", "velocity and device checks passed"),
        AuthorizePayment(_TEMPLATE_ID, "acme", reference="acme-auth-5512"),
        CapturePayment(_TEMPLATE_ID, "129.90"),
        RefundPayment(_TEMPLATE_ID, "10.00"),
        SettlePayment(_TEMPLATE_ID, "batch-2026-11-21"),
    ]  # fmt: skip
    for index, command in enumerate(commands):
        service.execute(command, CommandContext(f"{_TEMPLATE_ID}-{index}", ACTOR))
    return service.load(_TEMPLATE_ID)


@dataclass(slots=True)
class RawHashing:
    """The raw baseline: SHA-256 of each event's exact chain input, in a tight loop, timed."""

    seconds: float = 0.0
    events: int = 0
    bytes: int = 0

    def measure(self, events: Sequence[RecordedEvent]) -> None:
        data = [hashed_bytes(event) for event in events]
        start = time.perf_counter()
        for item in data:
            hashlib.sha256(item).hexdigest()
        self.seconds += time.perf_counter() - start
        self.events += len(data)
        self.bytes += sum(map(len, data))


def synthetic_streams(events: int, seed: int = 7) -> Iterator[list[RecordedEvent]]:
    """Streams of the template's shape with fresh ids until ``events`` events, valid chains."""
    template = template_lifecycle()
    rng = random.Random(seed)
    made = 0
    while made < events:
        payment_id = f"pay-{rng.getrandbits(52):013x}"
        assert len(payment_id) == len(_TEMPLATE_ID)
        length = min(len(template), events - made)
        prev_hash = GENESIS_HASH
        stream: list[RecordedEvent] = []
        for event in template[:length]:
            clone = replace(
                event,
                stream_id=payment_stream_id(payment_id),
                event_id=str(uuid.UUID(int=rng.getrandbits(128))),
                correlation_id=payment_id,
                idempotency_key=event.idempotency_key.replace(_TEMPLATE_ID, payment_id),
                payload=event.payload.replace(_TEMPLATE_ID, payment_id),
                prev_hash=prev_hash,
            )
            clone = replace(clone, hash=hashlib.sha256(hashed_bytes(clone)).hexdigest())
            stream.append(clone)
            prev_hash = clone.hash
        made += length
        yield stream


def hashed_bytes(event: RecordedEvent) -> bytes:
    """Exactly what the chain hashes for ``event``: the raw baseline's input."""
    return (event.prev_hash + _encoder.encode(hash_document(event))).encode("utf-8")


# ── Chain verification against raw SHA-256 ───────────────────────────────────────────────────


def bench_chains(streams: Sequence[list[RecordedEvent]]) -> tuple[float, float, int]:
    """(verifier events/s, raw events/s, bytes hashed): best of three runs each."""
    data = [hashed_bytes(event) for stream in streams for event in stream]
    total = sum(map(len, data))
    events = len(data)

    def raw() -> float:
        start = time.perf_counter()
        for item in data:
            hashlib.sha256(item).hexdigest()
        return time.perf_counter() - start

    def verifier() -> float:
        start = time.perf_counter()
        for stream in streams:
            check = check_chain(stream[0].stream_id, [StoredEvent(e.version, e) for e in stream])
            if check.problems:
                raise SystemExit(f"MISMATCH: a valid chain reported {check.problems[0]}")
        return time.perf_counter() - start

    raw_s = min(raw() for _ in range(3))
    verify_s = min(verifier() for _ in range(3))
    return events / verify_s, events / raw_s, total


def cost_breakdown(streams: Sequence[list[RecordedEvent]]) -> dict[str, float]:
    """µs per event of each step ``ledger.codec.event_hash`` takes, each timed alone."""
    events = [event for stream in streams[:5_000] for event in stream]
    parsed = [json.loads(event.payload) for event in events]
    encoded = [hashed_bytes(event) for event in events]
    steps = {
        "parse the payload (json.loads)": lambda i: json.loads(events[i].payload),
        "re-encode it canonically (sorted keys)": lambda i: _encoder.encode(parsed[i]),
        "assemble the document around it": lambda i: _assemble(events[i]),
        "SHA-256 + hex (the raw baseline)": lambda i: hashlib.sha256(encoded[i]).hexdigest(),
    }
    costs = {}
    for name, step in steps.items():
        start = time.perf_counter()
        for index in range(len(events)):
            step(index)
        costs[name] = (time.perf_counter() - start) / len(events) * 1e6
    return costs


def _assemble(event: RecordedEvent) -> str:
    """The string work of ``event_hash`` around the payload (the strings encoded, joined)."""
    strings = (event.event_id, event.correlation_id, event.idempotency_key, event.stream_id,
               event.occurred_at, event.recorded_at, event.request_digest, event.prev_hash,
               event.event_type, event.actor.id, event.actor.kind)  # fmt: skip
    return "".join(map(encode_basestring, strings)) + event.payload


# ── The archive: verify --chains over it, replay from it ─────────────────────────────────────


def build_archive(root: Path, events: int) -> tuple[RawHashing, list[RecordedEvent]]:
    """A local archive of ``events`` synthetic events in objects of ``ARCHIVE_OBJECT_ROWS``
    rows (sorted by stream and version, as the archive writes them); the raw baseline measured
    over exactly their chain inputs; one stream to replay."""
    storage = LocalArchiveStorage(root)
    template = template_lifecycle()
    payloads = {event.event_type: decode_event(event) for event in template}
    raw = RawHashing()
    chunk: list[RecordedEvent] = []
    sample: list[RecordedEvent] = []
    objects = 0

    def flush() -> None:
        nonlocal chunk, objects
        raw.measure(chunk)
        chunk.sort(key=lambda event: (event.stream_id, event.version))
        table = events_to_table(chunk, [payloads[event.event_type] for event in chunk])
        day = date.fromisoformat(chunk[0].recorded_at[:10])
        storage.put_bytes(f"{day_prefix(day)}bench-{objects:05d}.parquet", encode(table))
        objects += 1
        chunk = []

    for stream in synthetic_streams(events, seed=11):
        chunk.extend(stream)
        sample = sample or stream
        if len(chunk) >= ARCHIVE_OBJECT_ROWS:
            flush()
    if chunk:
        flush()
    return raw, sample


def bench_archive(root: Path, events: int, replays: int) -> None:
    print(f"writing a {events:,}-event archive (synthetic, valid chains)…", flush=True)
    start = time.perf_counter()
    raw, sample = build_archive(root, events)
    size_mb = sum(path.stat().st_size for path in root.rglob("*.parquet")) / 1e6
    print(f"  written in {time.perf_counter() - start:,.0f} s ({size_mb:,.0f} MB of Parquet)")
    storage = LocalArchiveStorage(root)
    print("verify --chains over the archive (every row read, chains recomputed; best of 3)…",
          flush=True)  # fmt: skip
    runs = []
    for _ in range(3):
        cpu_start, start = cpu_seconds(), time.perf_counter()
        result = verify_archive_chains(storage, ENGINE)
        runs.append((time.perf_counter() - start, cpu_seconds() - cpu_start))
    verify_s, cpu_s = min(runs)
    if result.problems or result.rows != events:
        raise SystemExit(f"MISMATCH: {result.rows:,} rows, problems {result.problems[:3]}")
    raw_rate, verify_rate = raw.events / raw.seconds, result.rows / verify_s
    share = verify_rate / raw_rate
    verdict = "met" if share >= TARGET_SHARE_OF_RAW else "MISSED"
    print(f"  raw hashlib.sha256 over the same bytes: {raw_rate:>11,.0f} events/s "
          f"({raw.bytes / raw.events:,.0f} bytes per event)")  # fmt: skip
    print(f"  verify --chains from the archive:       {verify_rate:>11,.0f} events/s = "
          f"{share:.1%} of raw (target ≥ {TARGET_SHARE_OF_RAW:.0%}: {verdict}); "
          f"{verify_s:,.1f} s for {result.streams:,} streams")  # fmt: skip
    print(f"      {cpu_s:,.1f} s of CPU ({cpu_s / verify_s:.1f} cores busy): DuckDB reads, "
          "assembles each chain input and joins the links while this thread hashes")  # fmt: skip
    reader = ArchiveReader(storage, ENGINE)
    payment_id = sample[0].stream_id.removeprefix("payment#")
    latencies = []
    for _ in range(replays):
        start = time.perf_counter()
        steps = replay_steps(reader.payment_events(payment_id))
        latencies.append((time.perf_counter() - start) * 1e3)
        assert steps[-1][0] == sample[-1]
    print_latencies(f"replay of one payment from the {events:,}-event archive", latencies)


def print_latencies(what: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    print(f"  {what}: p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, "
          f"max {ordered[-1]:.1f} ms ({len(ordered)} runs)")  # fmt: skip


# ── Replay from DynamoDB, digest and proof ───────────────────────────────────────────────────


def bench_replay(stream: list[RecordedEvent], replays: int) -> list[float]:
    """Latencies (ms) of loading and folding one payment from the events table on moto."""
    with MotoServer() as server:
        client = boto3.client("dynamodb", endpoint_url=server.endpoint_url, region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")  # fmt: skip
        table = "bench-verify-events"
        create_table(client, "EventsTable", table)
        for event in stream:
            client.put_item(TableName=table, Item=event_to_item(event))
        store = DynamoDBEventStore(client, table)
        payment_id = stream[0].stream_id.removeprefix("payment#")
        service = PaymentService(store)
        latencies = []
        for _ in range(replays):
            start = time.perf_counter()
            steps = replay_steps(service.load(payment_id))
            latencies.append((time.perf_counter() - start) * 1e3)
            assert steps[-1][0].hash == stream[-1].hash
        return latencies


def bench_digest_and_proof(streams: Sequence[list[RecordedEvent]]) -> tuple[float, float, int]:
    """(seconds to write a digest of every stream, seconds to build + check one proof, bytes
    of the heads object)."""
    store = MemoryEventStore()
    for stream in streams:
        store.append(stream)
    heads = [Head(s[0].stream_id, s[-1].version, s[-1].hash) for s in streams]
    digests = MemoryDigestStore()
    start = time.perf_counter()
    run = write_digest(digests, heads, store, clock=lambda: datetime(2026, 11, 21, tzinfo=UTC))
    digest_s = time.perf_counter() - start
    assert run.digest is not None
    assert run.attested == len(streams)
    data = digests.objects[digest_key(1)][0]
    heads_data = digests.objects[heads_key(parse_digest(data).heads_sha256)][0]
    stream = streams[len(streams) // 2]
    start = time.perf_counter()
    proof = build_proof(stream, stream[0].event_id, data, decode_heads(heads_data))
    problems = verify_proof(json.loads(json.dumps(proof)), data)
    proof_s = time.perf_counter() - start
    if problems:
        raise SystemExit(f"MISMATCH: a fresh proof does not verify: {problems}")
    return digest_s, proof_s, len(heads_data)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--archive-events", type=int, default=ARCHIVE_EVENTS)
    parser.add_argument("--replays", type=int, default=REPLAYS)
    arguments = parser.parse_args()

    print(f"generating {arguments.events:,} events with valid chains…", flush=True)
    streams = list(synthetic_streams(arguments.events))
    for stream in streams[:: max(1, len(streams) // 200)]:
        for event in stream:
            assert event_hash(event) == event.hash, "generator and codec disagree"

    print("chain verification in memory vs raw SHA-256 over the same bytes…", flush=True)
    verify_rate, raw_rate, total = bench_chains(streams)
    share = verify_rate / raw_rate
    per_event = total / sum(map(len, streams))
    print(f"  raw hashlib.sha256:   {raw_rate:>11,.0f} events/s  ({per_event:,.0f} bytes per "
          f"event, {per_event * raw_rate / 1e6:,.0f} MB/s)")  # fmt: skip
    print(f"  check_chain:          {verify_rate:>11,.0f} events/s  = {share:.1%} of raw")
    print("  where a verified event's time goes (µs, each step timed alone):")
    for step, micros in cost_breakdown(streams).items():
        print(f"    {micros:7.2f}  {step}")

    with tempfile.TemporaryDirectory(prefix="payledger-bench-archive-") as directory:
        bench_archive(Path(directory), arguments.archive_events, ARCHIVE_REPLAYS)

    print(f"replay of one {len(streams[0])}-event payment from DynamoDB (moto)…", flush=True)
    print_latencies("one Query + fold, loopback moto", bench_replay(streams[0], arguments.replays))

    digest_s, proof_s, heads_bytes = bench_digest_and_proof(streams)
    per_stream = heads_bytes / len(streams)
    print(f"digest of {len(streams):,} streams: {digest_s:.2f} s (each head confirmed); "
          f"heads object {per_stream:.0f} bytes per stream")  # fmt: skip
    print(f"proof for one event: built and checked in {proof_s * 1e3:.1f} ms")
    print(f"peak RSS: {peak_rss_mb():,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
