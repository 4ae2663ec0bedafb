"""The archive's reference tables (docs/archive.md) say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from archive.reports import REPORTS
from archive.schema import ARCHIVE_SCHEMA, COLUMNS

ARCHIVE_DOC = (Path(__file__).resolve().parents[2] / "docs" / "archive.md").read_text(
    encoding="utf-8"
)


def test_the_schema_table_is_the_schema() -> None:
    rows = re.findall(
        r"^\| `([a-z_]+)` \| ([a-z0-9\[\]]+) \| ([a-z]+) \| (yes|no) \|", ARCHIVE_DOC, re.MULTILINE
    )
    documented = [(name, arrow, glue, null == "yes") for name, arrow, glue, null in rows]
    arrow_names = {"string": "string", "int64": "int64", "int32": "int32"}
    expected = [
        (
            column.name,
            arrow_names.get(str(column.arrow_type), str(column.arrow_type)),
            column.glue_type,
            column.nullable,
        )
        for column in COLUMNS
    ]
    assert documented == expected
    assert [name for name, *_ in documented] == ARCHIVE_SCHEMA.names


def test_the_report_table_is_the_reports() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| ((?:`[a-z_]+`(?:, )?)+|—) \|", ARCHIVE_DOC, re.MULTILINE)
    documented = {name: re.findall(r"`([a-z_]+)`", parameters) for name, parameters in rows}
    assert documented == {
        report.name: [parameter.name for parameter in report.parameters] for report in REPORTS
    }
