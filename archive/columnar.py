"""A Kinesis batch decoded column-wise in Arrow's C++: the archive's fast path.

``decode_rows`` turns a whole batch into the archive's rows without a Python object per record,
applying exactly the rules of ``archive.records`` (the per-record path). It returns None for a
batch it cannot decode exactly as that path would, and the writer then decodes the batch record
by record, which decides: a malformed record keeps its per-record semantics (reported failed with
every later record of its partition key). So this path only ever archives whole batches of
well-formed records, and falls back on anything else, never guessing.

1. Documents: each record's data is base64-decoded (``binascii``, strict, as ``base64.b64decode``
   with ``validate=True``) and the documents are joined with newlines. Every document must start
   with ``{``, so each yields at least one row or an error; with the row count checked after
   parsing, row i is record i (a record holding two JSON values, or a blank one, changes the
   count). The whole text must be valid UTF-8: Arrow's JSON reader does not check the strings it
   is told to ignore, and Python's would refuse the record.
2. Changes: one ``pyarrow.json.read_json`` with an explicit schema of just what the archive reads
   (``eventName``, ``dynamodb.ApproximateCreationDateTime``, ``Keys``, the NewImage attributes'
   ``S``/``N`` and the actor map), ignoring the rest. Arrow's reader is stricter than Python's
   ``json`` where they differ: a value of another type than the schema's, a field given twice
   (Python would take the last), ``1e999`` or a lone surrogate escape fail the read, and the
   batch falls back. The checks of ``archive.records`` then run column by column.
3. Payloads: the payload texts (each must start with ``{``), joined with newlines, are read once
   more with the schema ``merchant_id`` string, ``amount_minor`` int64, ``currency`` string; a
   field of another type fails the read (the per-record path stores null for it).
4. Duplicates by ``event_id``: identical copies are dropped (the first kept) and counted; the
   same id with other content falls back (the per-record path reports the later copy).
5. Order: Arrow's stable sort by (recorded day, stream id, version), ties in arrival order, as
   the per-record path's stable sorts give; one table in the archive schema.

Python's parser stops at a nesting depth (its recursion limit) that Arrow's reads: the per-record
path raises ``NestedTooDeeplyError`` there, and the writer decodes that record alone with this
module, so both paths accept the same records.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from archive.records import (
    ACTOR_OPTIONAL,
    ACTOR_REQUIRED,
    INTEGER_PATTERN,
    OPTIONAL_STRINGS,
    REQUIRED_NUMBERS,
    REQUIRED_STRINGS,
)
from archive.schema import ARCHIVE_SCHEMA
from ledger.changes import EVENT_NAMES
from ledger.envelope import ACTOR_KINDS, PAYMENT_STREAM_PREFIX

_S = pa.struct([("S", pa.string())])
_N = pa.struct([("N", pa.string())])
_ACTOR = pa.struct([("M", pa.struct([(name, _S) for name in ACTOR_REQUIRED + ACTOR_OPTIONAL]))])
_IMAGE = pa.struct(
    [(name, _S) for name in REQUIRED_STRINGS + OPTIONAL_STRINGS]
    + [(name, _N) for name in REQUIRED_NUMBERS]
    + [("actor", _ACTOR)]
)
CHANGE_SCHEMA = pa.schema(
    [
        ("eventName", pa.string()),
        (
            "dynamodb",
            pa.struct(
                [
                    ("ApproximateCreationDateTime", pa.int64()),
                    ("Keys", pa.struct([("pk", _S), ("sk", _N)])),
                    ("NewImage", _IMAGE),
                ]
            ),
        ),
    ]
)
_PAYLOAD = pa.schema(
    [("merchant_id", pa.string()), ("amount_minor", pa.int64()), ("currency", pa.string())]
)
_IGNORE = "ignore"
_CHANGE_OPTIONS = pj.ParseOptions(explicit_schema=CHANGE_SCHEMA, unexpected_field_behavior=_IGNORE)
_PAYLOAD_OPTIONS = pj.ParseOptions(explicit_schema=_PAYLOAD, unexpected_field_behavior=_IGNORE)
# ledger.decoding's canonical event timestamp, ASCII digits (RE2 syntax).
_TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
_INTEGER_WHOLE = f"^(?:{INTEGER_PATTERN})$"  # RE2: $ is the end of the text, never a newline
_TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")
_TIMESTAMP = pa.timestamp("us")
_EVENT_NAMES = pa.array(sorted(EVENT_NAMES))
_ACTOR_KINDS = pa.array(ACTOR_KINDS)
_OPEN = b"{"[0]
_NEWLINE = pa.scalar("\n")
_BLOCK_BYTES = 1 << 22  # Arrow's JSON block; a bigger text is read in several, then combined
_ORDER = [("day", "ascending"), ("stream_id", "ascending"), ("version", "ascending")]
# Columns derived from others: two copies of an event are compared without them.
_DERIVED = ("payment_id", "merchant_id", "amount_minor", "currency")


class NotColumnar(Exception):
    """The batch holds something only the per-record path may decide."""


@dataclass(slots=True)
class Changes:
    """The INSERT records of a batch, in arrival order: their images' attributes as columns."""

    columns: dict[str, pa.Array]
    ignored: int  # MODIFY and REMOVE records


@dataclass(slots=True)
class Rows:
    """A batch's archive rows: one per event, duplicates dropped, ordered by (recorded day,
    stream id, version)."""

    table: pa.Table
    ignored: int
    duplicates: int


def decode_rows(records: Sequence[Mapping[str, Any]]) -> Rows | None:
    """The rows of a Lambda Kinesis batch's ``Records``, or None if the per-record path must
    decode it (see the module docstring)."""
    try:
        changes = read_changes(documents_text(records), len(records))
        fields = read_payload_fields(changes.columns["payload"])
        table, duplicates = assemble(changes.columns, fields)
    except (NotColumnar, pa.ArrowInvalid):
        return None
    return Rows(table, changes.ignored, duplicates)


def documents_text(records: Sequence[Mapping[str, Any]]) -> pa.Buffer:
    """The records' documents, one per line (step 1)."""
    try:
        documents = [
            binascii.a2b_base64(record["kinesis"]["data"], strict_mode=True) for record in records
        ]
    except ValueError as exc:  # binascii.Error, or a str that is not ASCII
        raise NotColumnar("undecodable base64") from exc
    if not all(document and document[0] == _OPEN for document in documents):
        raise NotColumnar("a record is not a JSON object")
    text = pa.py_buffer(b"\n".join(documents))
    offsets = pa.array([0, text.size], pa.int32()).buffers()[1]
    pa.Array.from_buffers(pa.string(), 1, [None, offsets, text]).validate(full=True)
    return text


def parse_changes(text: pa.Buffer) -> pa.Table:
    """The documents read with ``CHANGE_SCHEMA``: one row per line, unchecked."""
    return _read(text, _CHANGE_OPTIONS)


def read_changes(text: pa.Buffer, count: int) -> Changes:
    """Parse the documents and check every change record (step 2)."""
    table = parse_changes(text)
    if table.num_rows != count:
        raise NotColumnar("a record is not one JSON document")
    names, change = _array(table.column("eventName")), _array(table.column("dynamodb"))
    keys = change.field("Keys")
    key_pk, key_sk = keys.field("pk").field("S"), keys.field("sk").field("N")
    created = change.field("ApproximateCreationDateTime")
    # A null leaf also means a missing parent: Arrow nulls the children of a null struct.
    _require(not (names.null_count or key_pk.null_count or key_sk.null_count or created.null_count))
    _require(_all(pc.is_in(names, _EVENT_NAMES)) and _all(_integers(key_sk)))
    image = change.field("NewImage")
    inserts = pc.equal(names, "INSERT")
    if not _all(inserts):
        image, key_pk, key_sk = (array.filter(inserts) for array in (image, key_pk, key_sk))
    columns = _image_columns(image)
    _require(_all(pc.equal(columns["pk"], key_pk)) and _all(pc.equal(columns["sk"], key_sk)))
    return Changes(columns, count - len(image))


def _image_columns(image: pa.StructArray) -> dict[str, pa.Array]:
    """Each envelope attribute as a column; NotColumnar unless every image is a well-formed
    event item (``archive.records.check_image`` and ``check_event``)."""
    actor = image.field("actor").field("M")
    columns = {name: image.field(name).field("S") for name in REQUIRED_STRINGS}
    columns |= {name: image.field(name).field("N") for name in REQUIRED_NUMBERS}
    columns |= {f"actor_{name}": actor.field(name).field("S") for name in ACTOR_REQUIRED}
    _require(not any(column.null_count for column in columns.values()))
    optional = [(name, image.field(name)) for name in OPTIONAL_STRINGS]
    optional += [(f"actor_{name}", actor.field(name)) for name in ACTOR_OPTIONAL]
    for name, attribute in optional:
        # More nulls in the string than in its attribute: an attribute present without its
        # string ({"S": null}, {"NULL": true}), which the per-record path refuses.
        columns[name] = attribute.field("S")
        _require(columns[name].null_count == attribute.null_count)
    _require(_all(pc.starts_with(columns["pk"], PAYMENT_STREAM_PREFIX)))
    _require(_all(_integers(columns["sk"])) and _all(_integers(columns["schema_version"])))
    _require(_all(pc.is_in(columns["actor_kind"], _ACTOR_KINDS)))
    for name in ("occurred_at", "recorded_at"):
        _require(_all(pc.match_substring_regex(columns[name], _TIMESTAMP_PATTERN)))
        # Arrow reads year 0, which Python's datetime (and so the per-record path) refuses.
        _require(not pc.any(pc.starts_with(columns[name], "0000")).as_py())
    _require(_all(pc.starts_with(columns["payload"], "{")))
    return columns


def read_payload_fields(payloads: pa.Array) -> pa.Table:
    """The copied payload fields of every event, in order (step 3)."""
    if not len(payloads):
        return _PAYLOAD.empty_table()
    lines = pc.binary_join_element_wise(payloads, "", _NEWLINE)
    size = pc.sum(pc.binary_length(lines)).as_py()
    table = _read(lines.buffers()[2].slice(lines.offset, size), _PAYLOAD_OPTIONS)
    if table.num_rows != len(payloads):
        raise NotColumnar("a payload is not one JSON object")
    return table.combine_chunks()


def assemble(columns: dict[str, pa.Array], fields: pa.Table) -> tuple[pa.Table, int]:
    """The archive rows, deduplicated and ordered (steps 4 and 5); and the copies dropped."""
    table = _table(columns, fields)
    kept = _first_copies(table)
    ordered = pa.table(
        {
            "day": table.column("recorded_at").cast(pa.date32()),
            "stream_id": table.column("stream_id"),
            "version": table.column("version"),
        }
    )
    indices = pc.sort_indices(ordered, sort_keys=_ORDER)  # stable: ties stay in arrival order
    if kept is None:
        return table.take(indices), 0
    return table.take(pc.filter(indices, pc.is_in(indices, kept))), table.num_rows - len(kept)


def _table(columns: dict[str, pa.Array], fields: pa.Table) -> pa.Table:
    """One row per event, in the archive schema (``archive.schema.events_to_table``'s rows)."""
    version = columns["sk"].cast(pa.int64())  # canonical integers: ArrowInvalid beyond 64 bits
    _require(not len(version) or pc.min(version).as_py() >= 1)
    stream = columns["pk"]
    values = {
        "event_id": columns["event_id"],
        "stream_id": stream,
        "payment_id": pc.utf8_slice_codeunits(stream, len(PAYMENT_STREAM_PREFIX)),
        "version": version,
        "event_type": columns["event_type"],
        "schema_version": columns["schema_version"].cast(pa.int32()),
        "occurred_at": _timestamps(columns["occurred_at"]),
        "recorded_at": _timestamps(columns["recorded_at"]),
        "actor_kind": columns["actor_kind"],
        "actor_id": columns["actor_id"],
        "actor_model": columns["actor_model"],
        "actor_version": columns["actor_version"],
        "correlation_id": columns["correlation_id"],
        "causation_id": columns["causation_id"],
        "idempotency_key": columns["idempotency_key"],
        "request_digest": columns["request_digest"],
        "merchant_id": fields.column("merchant_id"),
        "amount_minor": fields.column("amount_minor"),
        "currency": fields.column("currency"),
        "payload": columns["payload"],
        "prev_hash": columns["prev_hash"],
        "hash": columns["hash"],
    }
    return pa.Table.from_arrays(list(values.values()), schema=ARCHIVE_SCHEMA)


def _timestamps(texts: pa.Array) -> pa.Array:
    # Canonical texts parse as UTC (ArrowInvalid for a time that does not exist, as Python's
    # datetime refuses it); the column has no zone.
    return texts.cast(_TIMESTAMP_UTC).cast(_TIMESTAMP)


def _first_copies(table: pa.Table) -> pa.Array | None:
    """The positions of each event id's first copy, or None when every id is distinct;
    NotColumnar if two copies of one id differ."""
    event_id = table.column("event_id")
    if pc.count_distinct(event_id).as_py() == table.num_rows:
        return None
    by_id = pc.sort_indices(event_id)  # stable: the copies of one id in arrival order
    ids = event_id.take(by_id)
    repeated = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    copies = pc.filter(by_id.slice(1), repeated).to_pylist()
    previous = pc.filter(by_id.slice(0, len(by_id) - 1), repeated).to_pylist()
    events = table.drop_columns(list(_DERIVED))
    for earlier, copy in zip(previous, copies, strict=True):
        if events.slice(earlier, 1).to_pylist() != events.slice(copy, 1).to_pylist():
            raise NotColumnar("one event id with two contents")
    dropped = set(copies)
    return pa.array([index for index in range(table.num_rows) if index not in dropped], pa.int64())


def _read(text: pa.Buffer, options: pj.ParseOptions) -> pa.Table:
    # One thread: a Lambda below 1,769 MB has less than one core.
    read = pj.ReadOptions(use_threads=False, block_size=_BLOCK_BYTES)
    return pj.read_json(pa.BufferReader(text), read_options=read, parse_options=options)


def _array(column: pa.ChunkedArray) -> pa.Array:
    # One block, one chunk: taken as it is (combine_chunks would copy every string).
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _integers(texts: pa.Array) -> pa.Array:
    return pc.match_substring_regex(texts, _INTEGER_WHOLE)


def _all(mask: pa.Array) -> bool:
    return mask.null_count == 0 and pc.all(mask).as_py() is not False


def _require(condition: bool) -> None:
    if not condition:
        raise NotColumnar("a record is not a well-formed event item")
