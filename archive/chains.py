"""Every chain of the archive checked in bulk: which streams need the exact, per-event check.

``survey_chains`` reads every stored row twice, never sorting the wide rows and never making a
Python object per event:
- links (a DuckDB aggregate and self-join over the narrow columns, in a worker thread): each
  stream holds versions 1..n once each, the first ``prev_hash`` is 64 zeros and every other is
  the hash of the version before it;
- hashes (this thread): DuckDB assembles each row's chain input (``prev_hash`` + the canonical
  document, ``ledger.codec``) from its columns, streamed in Arrow batches while this thread
  hashes them with ``hashlib`` and compares the digests with the ``hash`` column, a batch at a
  time. DuckDB builds the next batch on the other core meanwhile.

A stream is *intact* when both hold for every row; every other stream (``suspects``) is handed
to ``ledger.integrity.chains.check_chain``, which locates each problem. The survey never calls a
broken stream intact: a row counts only if its stored hash is SHA-256 of exactly the bytes the
chain hashes. It is stricter than the exact check in one way: the payload is hashed as stored,
byte for byte (the ledger stores the canonical text it hashed), so a payload stored re-spaced or
re-ordered is a suspect, and the exact check decides. Rows whose strings hold a quote or a
backslash are suspects too (escaping them is the exact check's job); a raw control character,
which JSON also escapes, makes its row fail the hash, so it is a suspect all the same.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from itertools import pairwise

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ledger.envelope import GENESIS_HASH

HASH_BATCH_ROWS = 65_536
# Batches DuckDB may build ahead of the hashing: bounds memory (each ~50 MB at 750 bytes a row).
_PREFETCH_MAX = 2
# The string fields of the chain input; payload is hashed as stored, not encoded.
_STRINGS = (
    "actor_id", "actor_kind", "actor_model", "actor_version", "causation_id", "correlation_id",
    "event_id", "event_type", "idempotency_key", "request_digest", "prev_hash", "stream_id",
)  # fmt: skip
# Every column the chain input needs but the optional actor model, version and causation id.
_REQUIRED = (
    "actor_id", "actor_kind", "correlation_id", "event_id", "event_type", "idempotency_key",
    "occurred_at", "payload", "prev_hash", "recorded_at", "request_digest", "schema_version",
    "stream_id", "version",
)  # fmt: skip
# The characters whose escaping could let shifted column values assemble exactly the event's
# text: a quote that ends a field early, a value with one backslash stored with two. Control
# characters need no test: canonical JSON never holds one raw, so a row with one fails its hash.
_ESCAPED = ("'\"'", "'\\'")


@dataclass(frozen=True, slots=True)
class ChainSurvey:
    streams: int
    rows: int
    suspects: frozenset[str | None]  # None: rows without a stream id


def survey_chains(connection: duckdb.DuckDBPyConnection, read: str) -> ChainSurvey:
    """Survey every row of ``read`` (a DuckDB table expression over the archive's objects)."""
    with ThreadPoolExecutor(1, thread_name_prefix="payledger-links") as pool:
        links = pool.submit(_link_survey, connection.cursor(), read)
        try:
            unhashed = _hash_survey(connection, read)
        finally:
            streams, rows, broken = links.result()
    return ChainSurvey(streams, rows, frozenset(broken) | unhashed)


def _link_survey(cursor: duckdb.DuckDBPyConnection, read: str) -> tuple[int, int, list[str | None]]:
    genesis = f"'{GENESIS_HASH}'"
    query = f"""
        WITH links AS MATERIALIZED (SELECT stream_id, version, prev_hash, hash FROM {read}),
        streams AS (
            SELECT stream_id, count(*) AS n, count(DISTINCT version) AS distinct_versions,
                   min(version) AS first, max(version) AS last
            FROM links GROUP BY stream_id
        ),
        unlinked AS (
            SELECT DISTINCT later.stream_id
            FROM links AS later LEFT JOIN links AS earlier
              ON earlier.stream_id = later.stream_id AND earlier.version = later.version - 1
            WHERE later.prev_hash IS DISTINCT FROM
                  (CASE WHEN later.version = 1 THEN {genesis} ELSE earlier.hash END)
        )
        SELECT count(*), coalesce(sum(n), 0),
               coalesce(list(stream_id) FILTER (
                   WHERE stream_id IS NULL OR first <> 1 OR last <> n OR distinct_versions <> n
                      OR stream_id IN (SELECT stream_id FROM unlinked)
               ), [])
        FROM streams
    """
    try:
        row = cursor.execute(query).fetchone()
    finally:
        cursor.close()
    assert row is not None
    return int(row[0]), int(row[1]), list(row[2])


def _hash_survey(connection: duckdb.DuckDBPyConnection, read: str) -> frozenset[str | None]:
    query = f"SELECT {chain_input_sql()} AS chain_input, hash, stream_id FROM {read}"
    suspects: set[str | None] = set()
    for batch in _prefetched(connection.execute(query).to_arrow_reader(HASH_BATCH_ROWS)):
        suspects.update(unhashed_streams(batch))
    return frozenset(suspects)


def chain_input_sql() -> str:
    """A DuckDB expression of one row's chain input, ``prev_hash + canonical(document)``
    (``ledger.codec.event_hash``), or NULL when a string holds a quote or a backslash or a field
    the document requires is NULL. One ``concat`` (which skips NULLs: the optional actor fields and
    a missing causation then read as ``event_hash`` writes them) rather than a chain of ``||``,
    each of which would copy every string built so far."""
    timestamp = "'%Y-%m-%dT%H:%M:%S.%fZ'"  # canonical: six fractional digits, UTC
    pieces = [
        "prev_hash", """'{"actor":{"id":"'""", "actor_id", """'","kind":"'""", "actor_kind",
        """'"'""", """',"model":"' || actor_model || '"'""",
        """',"version":"' || actor_version || '"'""",
        """'},"causation_id":'""", """coalesce('"' || causation_id || '"', 'null')""",
        """',"correlation_id":"'""", "correlation_id", """'","event_id":"'""", "event_id",
        """'","event_type":"'""", "event_type", """'","idempotency_key":"'""", "idempotency_key",
        """'","occurred_at":"'""", f"strftime(occurred_at, {timestamp})",
        """'","payload":'""", "payload", """',"prev_hash":"'""", "prev_hash",
        """'","recorded_at":"'""", f"strftime(recorded_at, {timestamp})",
        """'","request_digest":"'""", "request_digest", """'","schema_version":'""",
        "schema_version", """',"stream_id":"'""", "stream_id", """'","version":'""", "version",
        """'}'""",
    ]  # fmt: skip
    present = " AND ".join(f"{name} IS NOT NULL" for name in _REQUIRED)
    strings = f"concat({', '.join(_STRINGS)})"
    plain = " AND ".join(f"NOT contains({strings}, {character})" for character in _ESCAPED)
    return f"CASE WHEN {present} AND {plain} THEN concat({', '.join(pieces)}) END"


def unhashed_streams(batch: pa.RecordBatch) -> set[str | None]:
    """The streams of ``batch``'s rows (``chain_input``, ``hash``, ``stream_id``) whose stored
    hash is not SHA-256 of their chain input, or that have none."""
    chain_inputs, hashes = batch.column(0), batch.column(1)
    sha256 = hashlib.sha256
    data = memoryview(chain_inputs.buffers()[2] or b"")
    offsets = _offsets(chain_inputs)
    digests = [sha256(data[start:end]).digest() for start, end in pairwise(offsets)]
    if chain_inputs.null_count == 0 and _hex_text(hashes) == b"".join(digests).hex():
        return set()
    computed = pa.array([digest.hex() for digest in digests], pa.string())
    matches = pc.and_kleene(pc.is_valid(chain_inputs), pc.equal(computed, hashes))
    failed = pc.invert(pc.fill_null(matches, False))
    return set(pc.filter(batch.column(2), failed).to_pylist())


def _hex_text(hashes: pa.Array) -> str | None:
    """The ``hash`` column as one string when every value is there and 64 characters long
    (else None): equal to the digests' hex text, each value is then its row's digest."""
    if hashes.null_count or len(hashes) == 0:
        return None if hashes.null_count else ""
    lengths = pc.min_max(pc.binary_length(hashes))
    if lengths["min"].as_py() != 64 or lengths["max"].as_py() != 64:
        return None
    offsets = _offsets(hashes)
    first, last = offsets[0], offsets[-1]
    data = hashes.buffers()[2]
    assert data is not None
    try:
        return memoryview(data)[first:last].tobytes().decode("ascii")
    except UnicodeDecodeError:
        return None


def _offsets(strings: pa.Array) -> list[int]:
    """Where each value of a string array starts in its data buffer, and where the last ends."""
    width = pa.int64() if pa.types.is_large_string(strings.type) else pa.int32()
    assert pa.types.is_string(strings.type) or width == pa.int64(), strings.type
    if len(strings) == 0:
        return [0]
    buffers = [None, strings.buffers()[1]]
    positions = pa.Array.from_buffers(width, len(strings) + 1, buffers, offset=strings.offset)
    return positions.to_pylist()


def _prefetched(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """``reader``'s batches, the next ones read by a thread while the caller works."""
    batches: queue.Queue[pa.RecordBatch | Exception | None] = queue.Queue(_PREFETCH_MAX)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in reader:
                if stop.is_set():
                    return
                batches.put(batch)
            batches.put(None)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            batches.put(exc)

    producer = threading.Thread(target=produce, name="payledger-archive-read", daemon=True)
    producer.start()
    try:
        while (item := batches.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            with suppress(queue.Empty):
                batches.get(timeout=0.05)
        producer.join()
