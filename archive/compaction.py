"""Compaction: merge one day's objects into large ones, each event exactly once.

``compact_day`` lists the day's objects once and works on exactly that list:
1. reads every listed object (DuckDB, matching columns by field id) into one deduplicated table
   (identical rows collapse; DuckDB spills to disk beyond its memory limit);
2. refuses the day, naming event ids and objects, if the same ``event_id`` (or the same stream
   version) appears with different content, if a row has a null where the schema has none, or
   if a row was recorded on another day: that is corruption, and compaction never picks one;
3. names the output after its content (a digest of the event ids and hashes): if the listed
   objects already are exactly those outputs and held no duplicate, there is nothing to do;
4. writes the outputs (rows sorted by stream id and version, at most ``rows_per_file_max`` rows
   per object, bounded row groups), then deletes exactly the listed objects it read that are not
   outputs, never an object that appeared meanwhile.

A reader sees every event throughout: the new objects exist before the old ones go, and queries
dedupe by ``event_id`` in between. A crash between writing and deleting leaves duplicates only,
which the next run removes; running it twice does nothing the second time.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from archive.engine import (
    DEFAULT_ENGINE_SETTINGS,
    EngineSettings,
    open_connection,
    read_parquet_sql,
)
from archive.layout import compacted_key, day_of_key, day_prefix
from archive.parquet import ROW_GROUP_ROWS_MAX, FileWriter
from archive.schema import COLUMNS
from archive.storage import ArchiveStorage
from ledger.domain.errors import ChainBrokenError

ROWS_PER_FILE_MAX = 2_000_000
# Objects one run reads for one day; a day with more is compacted over several runs.
FILES_PER_RUN_MAX = 20_000
PROBLEMS_SHOWN_MAX = 10
DIGEST_CHARS = 20


@dataclass(slots=True)
class CompactionReport:
    day: date
    location: str
    files_read: list[str] = field(default_factory=list)
    rows_read: int = 0
    events: int = 0
    files_written: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    unchanged: bool = False
    more_files: bool = False  # the day had more than FILES_PER_RUN_MAX objects: run again

    @property
    def duplicates_dropped(self) -> int:
        return self.rows_read - self.events

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "location": self.location,
            "files_read": self.files_read,
            "rows_read": self.rows_read,
            "events": self.events,
            "duplicates_dropped": self.duplicates_dropped,
            "files_written": self.files_written,
            "files_deleted": self.files_deleted,
            "unchanged": self.unchanged,
            "more_files": self.more_files,
        }


def compact_day(
    storage: ArchiveStorage,
    day: date,
    settings: EngineSettings = DEFAULT_ENGINE_SETTINGS,
    *,
    rows_per_file_max: int = ROWS_PER_FILE_MAX,
    files_max: int = FILES_PER_RUN_MAX,
) -> CompactionReport:
    """Compact ``day``'s objects in ``storage`` (see the module docstring)."""
    assert rows_per_file_max > 0, rows_per_file_max
    assert files_max > 0, files_max
    report = CompactionReport(day=day, location=storage.location)
    listed = storage.list(day_prefix(day), limit=files_max + 1)
    inputs = [item for item in listed if day_of_key(item.key) == day]
    report.more_files = len(listed) > files_max
    inputs = inputs[:files_max]
    if not inputs:
        return report
    report.files_read = [item.key for item in inputs]
    source = storage.duckdb_source()
    urls = [source.url(item.key) for item in inputs]
    with open_connection(source, settings) as connection:
        report.rows_read = _load(connection, urls)
        _refuse_corruption(connection, urls, day)
        events, digest = connection.execute(
            "SELECT count(*), sha256(string_agg(event_id || ' ' || hash, ',' ORDER BY event_id))"
            " FROM day_events"
        ).fetchone() or (0, None)
        report.events = int(events)
        parts = math.ceil(report.events / rows_per_file_max)
        name = str(digest or "")[:DIGEST_CHARS]
        outputs = [compacted_key(day, name, part) for part in range(parts)]
        if set(outputs) == set(report.files_read) and report.duplicates_dropped == 0:
            report.unchanged = True
            return report
        _write(connection, storage, outputs, rows_per_file_max, settings.spill_directory)
    report.files_written = outputs
    report.files_deleted = [key for key in report.files_read if key not in set(outputs)]
    storage.delete(report.files_deleted)
    return report


def _load(connection: duckdb.DuckDBPyConnection, urls: Sequence[str]) -> int:
    """Read every object into ``day_events`` (distinct rows); the number of rows read."""
    names = ", ".join(f'"{column.name}"' for column in COLUMNS)
    read = read_parquet_sql(urls)
    connection.execute(f"CREATE TEMP TABLE day_events AS SELECT DISTINCT {names} FROM {read}")
    (count,) = connection.execute(f"SELECT count(*) FROM {read}").fetchone() or (0,)
    return int(count)


def _refuse_corruption(
    connection: duckdb.DuckDBPyConnection, urls: Sequence[str], day: date
) -> None:
    """``ChainBrokenError`` naming the objects and rows if the day's rows cannot be merged."""
    not_null = " OR ".join(f'"{column.name}" IS NULL' for column in COLUMNS if not column.nullable)
    # Each condition selects the offending rows, among the distinct rows and in the objects.
    checks = {
        "the same event id with different content": (
            "event_id IN (SELECT event_id FROM day_events GROUP BY event_id HAVING count(*) > 1)"
        ),
        "two events for one stream version": (
            "(stream_id, version) IN (SELECT (stream_id, version) FROM day_events"
            " GROUP BY stream_id, version HAVING count(DISTINCT event_id) > 1)"
        ),
        "a null where the schema has none": not_null,
        f"a row recorded on another day than {day.isoformat()}": (
            f"CAST(recorded_at AS DATE) <> DATE '{day.isoformat()}'"
        ),
    }
    for problem, condition in checks.items():
        if connection.execute(f"SELECT 1 FROM day_events WHERE {condition} LIMIT 1").fetchone():
            where = "; ".join(_locate(connection, urls, condition))
            raise ChainBrokenError(
                f"archive day {day.isoformat()} holds {problem}; nothing was compacted: {where}"
            )


def _locate(
    connection: duckdb.DuckDBPyConnection, urls: Sequence[str], condition: str
) -> list[str]:
    """The first rows of the objects meeting ``condition``: event id, object and row index."""
    found: list[str] = []
    numbers: dict[str, int] = {}
    rows = connection.execute(
        f"SELECT event_id, filename, {condition} FROM {read_parquet_sql(urls)}"
    )
    while len(found) < PROBLEMS_SHOWN_MAX and (chunk := rows.fetchmany(ROW_GROUP_ROWS_MAX)):
        for event_id, name, offending in chunk:
            number = numbers.get(name, 0)
            numbers[name] = number + 1
            if offending and len(found) < PROBLEMS_SHOWN_MAX:
                found.append(f"event {event_id} in {name} row {number}")
    return found


def _write(
    connection: duckdb.DuckDBPyConnection,
    storage: ArchiveStorage,
    keys: Sequence[str],
    rows_per_file_max: int,
    spill_directory: Path | None,
) -> None:
    names = ", ".join(f'"{column.name}"' for column in COLUMNS)
    reader = connection.execute(
        f"SELECT {names} FROM day_events ORDER BY stream_id, version"
    ).to_arrow_reader(ROW_GROUP_ROWS_MAX)
    batches = _rebatched(iter(reader), rows_per_file_max)
    if spill_directory is not None:
        spill_directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=spill_directory) as folder:
        for part, key in enumerate(keys):
            path = Path(folder, f"part-{part:05d}.parquet")
            with FileWriter(path) as writer:
                for batch in next(batches, []):
                    writer.write(batch)
            storage.put_file(key, path)
            path.unlink()
    assert next(batches, None) is None, "more rows than the outputs were named for"


def _rebatched(
    batches: Iterator[pa.RecordBatch], rows_per_file_max: int
) -> Iterator[list[pa.RecordBatch]]:
    """The record batches of each output file in turn, ``rows_per_file_max`` rows each."""
    current: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(batch.num_rows - offset, rows_per_file_max - rows)
            current.append(batch.slice(offset, take))
            rows += take
            offset += take
            if rows == rows_per_file_max:
                yield current
                current, rows = [], 0
    if current:
        yield current
