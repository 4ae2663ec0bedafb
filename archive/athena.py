"""Auditors' SQL on Athena, through awswrangler: the Glue table ``events`` in a workgroup.

The SQL text is sent as it is; its ``?`` placeholders are bound by Athena from the query's
execution parameters (each value is an SQL literal: a quoted, escaped string or a decimal
integer), never formatted into the text. The workgroup decides where results go and caps the
bytes a query may scan. Only the CLI imports this module (pandas and awswrangler are heavy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import awswrangler as wr
import boto3

from archive.audit import ROWS_MAX, QueryResult
from ledger.domain.errors import ValidationError


class AthenaAudit:
    def __init__(self, session: boto3.Session, database: str, workgroup: str) -> None:
        self._session = session
        self.database = database
        self.workgroup = workgroup

    @property
    def name(self) -> str:
        return f"athena ({self.database} in workgroup {self.workgroup})"

    def run(
        self, sql: str, parameters: Sequence[str | int], *, rows_max: int = ROWS_MAX
    ) -> QueryResult:
        try:
            frames = wr.athena.read_sql_query(
                sql,
                database=self.database,
                workgroup=self.workgroup,
                params=[sql_literal(value) for value in parameters] or None,
                paramstyle="qmark",
                ctas_approach=False,
                unload_approach=False,
                chunksize=rows_max + 1,
                boto3_session=self._session,
                athena_cache_settings={"max_cache_seconds": 0},
            )
        except wr.exceptions.QueryFailed as exc:
            raise ValidationError(f"the Athena query failed: {exc}") from exc
        frame = next(iter(frames), None)
        if frame is None:
            return QueryResult([], [], truncated=False)
        columns = [str(name) for name in frame.columns]
        rows = [tuple(_plain(value) for value in row) for row in frame.itertuples(index=False)]
        return QueryResult(columns, rows[:rows_max], truncated=len(rows) > rows_max)


def sql_literal(value: str | int) -> str:
    """An Athena execution parameter: the value as an SQL literal."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"unsupported parameter {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def _plain(value: Any) -> Any:
    """A pandas cell as a plain Python value (None for missing)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        moment: datetime = value.to_pydatetime()
        return moment
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
