"""How archive rows are encoded: Parquet, zstd, bounded row groups, sorted by (stream, version).

Every file carries the archive schema (field ids, not-null flags, the schema version in its
key-value metadata) and declares its sort order, so readers can skip row groups by ``stream_id``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from archive.schema import ARCHIVE_SCHEMA, COLUMN_NAMES

COMPRESSION = "zstd"
ROW_GROUP_ROWS_MAX = 100_000
_SORTING = [
    pq.SortingColumn(COLUMN_NAMES.index("stream_id")),
    pq.SortingColumn(COLUMN_NAMES.index("version")),
]


def _options() -> dict[str, object]:
    return {
        "compression": COMPRESSION,
        "sorting_columns": _SORTING,
        "write_statistics": True,
        "store_schema": True,
    }


def encode(table: pa.Table) -> bytes:
    """One Parquet file holding ``table`` (rows sorted by stream id and version)."""
    assert table.schema.equals(ARCHIVE_SCHEMA), table.schema
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS_MAX, **_options())
    return bytes(sink.getvalue())


class FileWriter:
    """A Parquet file written batch by batch (compaction's large files), in the archive schema."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._writer = pq.ParquetWriter(str(path), ARCHIVE_SCHEMA, **_options())

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        self._writer.write_table(to_archive_schema(table), row_group_size=ROW_GROUP_ROWS_MAX)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def to_archive_schema(table: pa.Table) -> pa.Table:
    """``table``'s archive columns in order, cast to the archive schema (not-null flags, field
    ids); ``ValueError`` if a not-null column holds a null."""
    selected = table.select(list(COLUMN_NAMES))
    for field in ARCHIVE_SCHEMA:
        if not field.nullable and selected.column(field.name).null_count:
            raise ValueError(f"column {field.name} holds a null")
    return selected.cast(ARCHIVE_SCHEMA)
