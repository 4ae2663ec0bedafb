"""The archive checked (``payledger verify --archive``): its own chains, and each event of the
events table held exactly once, as stored.

Every stored row is read (duplicates and damaged rows included) with the object key and row
number it sits at, sorted by stream and version, one stream in memory at a time. Per stream:
- the chain is recomputed from the archive alone: every stream surveyed in bulk first
  (``archive.chains``), then each stream the survey cannot call intact event by event
  (``ledger.integrity.chains.check_chain``): an altered row, a missing or reordered version is
  reported at its object and row;
- two different rows for one version are a conflict; identical copies are what a retried Lambda
  batch leaves until compaction merges the day, so they are counted (``copies``), except inside
  compacted objects, which promise each event once;
- against the events table: a version the table has and the archive does not is missing, unless
  it was recorded less than ``lag`` before the newest archived event (the Kinesis delivery and
  the batch window: ``behind``, not a problem); a row the table does not have is extra; a row
  that differs from the table's event is a mismatch, with the fields that differ.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

import pyarrow as pa

from archive.chains import ChainSurvey, survey_chains
from archive.engine import DEFAULT_ENGINE_SETTINGS, EVENTS_GLOB, EngineSettings, open_connection
from archive.layout import COMPACTED_PREFIX, EVENTS_PREFIX
from archive.schema import COLUMNS, events_from_batch
from archive.storage import ArchiveStorage, DuckDBSource
from ledger.codec import event_document
from ledger.envelope import RecordedEvent, StoredEvent
from ledger.integrity.chains import ChainCheck, Problem, StreamCheck, check_chain

ARCHIVE_MISSING = "archive_missing"
ARCHIVE_EXTRA = "archive_extra"
ARCHIVE_MISMATCH = "archive_mismatch"
ARCHIVE_CONFLICT = "archive_conflict"
ARCHIVE_DUPLICATE = "archive_duplicate"
ARCHIVE_LAG = timedelta(hours=1)
BATCH_ROWS = 10_000
# What an event is made of: the payload's copies (merchant, amount, currency) and the payment id
# are derived columns, so the sort (the bulk of reading) leaves them out.
_DERIVED = frozenset({"payment_id", "merchant_id", "amount_minor", "currency"})
_NAMES = ", ".join(f'"{column.name}"' for column in COLUMNS if column.name not in _DERIVED)


@dataclass(frozen=True, slots=True)
class ArchivedCopy:
    """One stored row of a stream: where it is, and its event (or why it is not one)."""

    version: int
    key: str
    row_number: int
    event: RecordedEvent | None
    problem: str | None = None

    @property
    def location(self) -> str:
        return f"{self.key} row {self.row_number}"


def archived_streams(
    storage: ArchiveStorage,
    settings: EngineSettings = DEFAULT_ENGINE_SETTINGS,
    *,
    only: Collection[str | None] | None = None,
) -> Iterator[tuple[str, list[ArchivedCopy]]]:
    """Every stored row (of the streams in ``only``, if given), grouped by stream (in stream id
    order), each stream's rows by version, object and row. DuckDB sorts (spilling to disk past
    its memory limit); one stream at a time is held here."""
    if not storage.list(EVENTS_PREFIX, limit=1) or (only is not None and not only):
        return
    source = storage.duckdb_source()
    # By name rather than by field id: DuckDB 1.5.5 gives no file_row_number with a field-id
    # schema, and verification must say which row of which object is wrong.
    read = _read(source, "filename = true, file_row_number = true")
    where, parameters = "", []
    if only is not None:
        where = " WHERE stream_id IN (SELECT unnest(?::VARCHAR[])) OR (stream_id IS NULL AND ?)"
        parameters = [sorted(s for s in only if s is not None), None in only]
    query = (
        f"SELECT {_NAMES}, filename, file_row_number FROM {read}{where}"
        " ORDER BY stream_id, version, filename, file_row_number"
    )
    with closing(open_connection(source, settings)) as connection:
        reader = connection.execute(query, parameters).to_arrow_reader(BATCH_ROWS)
        copies = _copies(reader, len(source.root_url))
        for stream_id, group in groupby(copies, key=lambda pair: pair[0]):
            yield stream_id, [copy for _, copy in group]


def surveyed_chains(
    storage: ArchiveStorage, settings: EngineSettings = DEFAULT_ENGINE_SETTINGS
) -> ChainSurvey:
    """``archive.chains.survey_chains`` over every stored row."""
    if not storage.list(EVENTS_PREFIX, limit=1):
        return ChainSurvey(0, 0, frozenset())
    source = storage.duckdb_source()
    with closing(open_connection(source, settings)) as connection:
        return survey_chains(connection, _read(source))


def _read(source: DuckDBSource, options: str = "") -> str:
    extra = f", {options}" if options else ""
    url = _literal(source.url(EVENTS_GLOB))
    return f"read_parquet({url}, union_by_name = true{extra})"


def _copies(reader: pa.RecordBatchReader, root_length: int) -> Iterator[tuple[str, ArchivedCopy]]:
    for batch in reader:
        streams = batch.column("stream_id").to_pylist()
        versions = batch.column("version").to_pylist()
        files = batch.column("filename").to_pylist()
        rows = batch.column("file_row_number").to_pylist()
        for index, (event, problem) in enumerate(_events(batch)):
            yield (
                streams[index],
                ArchivedCopy(
                    versions[index], files[index][root_length:], rows[index], event, problem
                ),
            )


def _events(batch: pa.RecordBatch) -> list[tuple[RecordedEvent | None, str | None]]:
    try:
        return [(event, None) for event in events_from_batch(batch)]
    except (KeyError, ValueError, TypeError):
        pass
    results: list[tuple[RecordedEvent | None, str | None]] = []
    for index in range(batch.num_rows):
        try:
            results.extend((event, None) for event in events_from_batch(batch.slice(index, 1)))
        except (KeyError, ValueError, TypeError) as exc:
            results.append((None, f"not an event row: {exc}"))
    return results


@dataclass(slots=True)
class ArchiveChains:
    streams: int = 0
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)


def verify_archive_chains(
    storage: ArchiveStorage, settings: EngineSettings = DEFAULT_ENGINE_SETTINGS
) -> ArchiveChains:
    """Every stream's chain recomputed from the archive alone (no events table): what an auditor
    holding only the Parquet objects can check. Surveyed in bulk (``archive.chains``); each
    stream the survey cannot call intact is checked event by event, which locates its problems.
    A version stored more than once is checked once (its first copy); ``ArchiveCheck`` says
    whether the copies agree."""
    survey = surveyed_chains(storage, settings)
    result = ArchiveChains(survey.streams, survey.rows)
    for stream_id, copies in archived_streams(storage, settings, only=survey.suspects):
        chosen = [next(group) for _, group in groupby(copies, key=lambda copy: copy.version)]
        stored = [
            StoredEvent(c.version, c.event, f"{storage.location}/{c.location}", c.problem)
            for c in chosen
        ]
        result.problems.extend(check_chain(stream_id, stored, check="archive").problems)
    return result


class ArchiveCheck(StreamCheck):
    """The archive for ``ledger.integrity.runner.run_verification``, fed the streams in stream
    id order (as it sorts them)."""

    name = "archive"
    check_name = "archive"

    def __init__(
        self,
        storage: ArchiveStorage,
        settings: EngineSettings = DEFAULT_ENGINE_SETTINGS,
        *,
        lag: timedelta = ARCHIVE_LAG,
    ) -> None:
        self._storage = storage
        self._settings = settings
        self.location = storage.location
        self.behind = 0  # events recorded too recently to be archived yet
        self.copies = 0  # identical copies awaiting compaction
        self.events = 0
        self._stream_ids, newest = self._survey()
        self._suspects = surveyed_chains(storage, settings).suspects
        self._horizon = None if newest is None else newest - lag
        self._streams = archived_streams(storage, settings)
        self._next: tuple[str, list[ArchivedCopy]] | None = next(self._streams, None)

    def stream_ids(self) -> set[str]:
        return set(self._stream_ids)

    def counts(self) -> dict[str, int]:
        return {"rows": self.events, "behind": self.behind, "copies": self.copies}

    def check(self, chain: ChainCheck) -> list[Problem]:
        problems: list[Problem] = []
        while self._next is not None and self._next[0] < chain.stream_id:
            problems.extend(self._stream_problems(*self._next, []))
            self._advance()
        copies: list[ArchivedCopy] = []
        if self._next is not None and self._next[0] == chain.stream_id:
            copies = self._next[1]
            self._advance()
        return problems + self._stream_problems(chain.stream_id, copies, chain.stored)

    def finish(self) -> list[Problem]:
        problems: list[Problem] = []
        while self._next is not None:
            problems.extend(self._stream_problems(*self._next, []))
            self._advance()
        return problems

    def _advance(self) -> None:
        self._next = next(self._streams, None)

    def _survey(self) -> tuple[list[str], datetime | None]:
        if not self._storage.list(EVENTS_PREFIX, limit=1):
            return [], None
        source = self._storage.duckdb_source()
        read = _read(source)
        with closing(open_connection(source, self._settings)) as connection:
            streams = connection.execute(f"SELECT DISTINCT stream_id FROM {read}").fetchall()
            newest = connection.execute(f"SELECT max(recorded_at) FROM {read}").fetchone()
        return [str(row[0]) for row in streams], None if newest is None else newest[0]

    def _stream_problems(
        self, stream_id: str, copies: Sequence[ArchivedCopy], table: Sequence[StoredEvent]
    ) -> list[Problem]:
        self.events += len(copies)
        problems: list[Problem] = []
        chosen: list[ArchivedCopy] = []
        for _, group in groupby(copies, key=lambda copy: copy.version):
            versions = list(group)
            problems.extend(self._copy_problems(stream_id, versions))
            chosen.append(versions[0])
        if stream_id in self._suspects:  # the survey found every other chain intact
            stored = [StoredEvent(c.version, c.event, self._where(c), c.problem) for c in chosen]
            problems.extend(check_chain(stream_id, stored, check="archive").problems)
        problems.extend(self._table_problems(stream_id, chosen, table))
        return problems

    def _copy_problems(self, stream_id: str, versions: Sequence[ArchivedCopy]) -> list[Problem]:
        first, problems = versions[0], []
        for copy in versions[1:]:
            if copy.event != first.event:
                detail = f"two different rows for this version: also {self._where(first)}"
                problems.append(self._problem(ARCHIVE_CONFLICT, detail, stream_id, copy))
            elif _compacted(copy.key) and _compacted(first.key):
                detail = f"held twice by compacted objects: also {self._where(first)}"
                problems.append(self._problem(ARCHIVE_DUPLICATE, detail, stream_id, copy))
            else:
                self.copies += 1
        return problems

    def _table_problems(
        self, stream_id: str, chosen: Sequence[ArchivedCopy], table: Sequence[StoredEvent]
    ) -> list[Problem]:
        problems: list[Problem] = []
        in_table = {item.version: item.event for item in table if item.event is not None}
        for copy in chosen:
            event = in_table.pop(copy.version, None)
            if copy.event is None:
                continue  # reported by the chain check
            if event is None:
                detail = "the events table has no such event"
                problems.append(self._problem(ARCHIVE_EXTRA, detail, stream_id, copy))
            elif event != copy.event:
                detail = "differs from the events table in " + _differences(event, copy.event)
                problems.append(self._problem(ARCHIVE_MISMATCH, detail, stream_id, copy))
        for version, event in sorted(in_table.items()):
            if self._horizon is None or _recorded(event) > self._horizon:
                self.behind += 1
                continue
            problems.append(
                Problem(
                    "archive",
                    ARCHIVE_MISSING,
                    "the events table has this event; the archive does not",
                    stream_id,
                    version,
                    event.event_id,
                    self.location,
                )
            )
        return problems

    def _problem(self, kind: str, detail: str, stream_id: str, copy: ArchivedCopy) -> Problem:
        event_id = None if copy.event is None else copy.event.event_id
        return Problem(
            "archive", kind, detail, stream_id, copy.version, event_id, self._where(copy)
        )

    def _where(self, copy: ArchivedCopy) -> str:
        return f"{self.location}/{copy.location}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _compacted(key: str) -> bool:
    return key.rpartition("/")[2].startswith(COMPACTED_PREFIX)


def _recorded(event: RecordedEvent) -> datetime:
    return datetime.fromisoformat(event.recorded_at).replace(tzinfo=None)


def _differences(expected: RecordedEvent, found: RecordedEvent) -> str:
    stored, archived = event_document(expected), _document(found)
    return ", ".join(name for name in stored if stored[name] != archived.get(name)) or "hash"


def _document(event: RecordedEvent) -> dict[str, Any]:
    try:
        return event_document(event)
    except ValueError:  # a payload that is not JSON
        return {"payload": event.payload}
