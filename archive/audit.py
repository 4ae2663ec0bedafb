"""Running auditors' SQL: the engine port, and DuckDB over the archive's Parquet objects.

``AuditEngine.run`` takes SQL over the table ``events`` with ``?`` placeholders and the values to
bind, and returns at most ``rows_max`` rows (saying whether there were more). Engines:
``DuckDBAudit`` (a local folder or the emulated S3, ``archive.engine``) and
``archive.athena.AthenaAudit`` (Athena through awswrangler). A query the engine refuses (syntax,
unknown column, a file it may not read) is a ``ValidationError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Protocol

import duckdb

from archive.engine import DEFAULT_ENGINE_SETTINGS, EngineSettings, connect
from archive.storage import ArchiveStorage
from ledger.domain.errors import ValidationError

ROWS_MAX = 10_000
# What DuckDB raises for a query that is wrong rather than for a failing machine.
_QUERY_ERRORS = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.ConversionException,
    duckdb.InvalidInputException,
    duckdb.PermissionException,
    duckdb.NotImplementedException,
)


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # the query had more than rows_max rows


class AuditEngine(Protocol):
    @property
    def name(self) -> str: ...

    def run(
        self, sql: str, parameters: Sequence[str | int], *, rows_max: int = ROWS_MAX
    ) -> QueryResult: ...


class DuckDBAudit:
    """The archive's Parquet objects queried in-process with DuckDB."""

    def __init__(
        self, storage: ArchiveStorage, settings: EngineSettings = DEFAULT_ENGINE_SETTINGS
    ) -> None:
        self._storage = storage
        self._settings = settings

    @property
    def name(self) -> str:
        return f"duckdb ({self._storage.location})"

    def run(
        self, sql: str, parameters: Sequence[str | int], *, rows_max: int = ROWS_MAX
    ) -> QueryResult:
        with closing(connect(self._storage, self._settings)) as connection:
            try:
                cursor = connection.execute(sql, list(parameters))
            except _QUERY_ERRORS as exc:
                raise ValidationError(f"the query failed: {exc}") from exc
            columns = [str(column[0]) for column in cursor.description or []]
            rows = cursor.fetchmany(rows_max + 1)
        return QueryResult(columns, rows[:rows_max], truncated=len(rows) > rows_max)
