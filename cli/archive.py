"""``payledger archive compact`` and ``payledger audit query|report|reports``.

The archive is the bucket named by ``ARCHIVE_BUCKET`` (or the stack output ``ArchiveBucketName``
with ``--stack``), on AWS or on the emulated S3 (``AWS_ENDPOINT_URL``), or a local folder with
``--archive-dir``. Auditors' SQL runs on Athena (``GLUE_DATABASE``, ``ATHENA_WORKGROUP`` or the
stack outputs ``GlueDatabaseName``, ``AthenaWorkGroupName``) when the bucket is AWS's, and on
DuckDB over the same Parquet objects otherwise; ``--engine`` chooses explicitly.
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from archive.local import LocalArchiveStorage
from archive.storage import ArchiveStorage
from cli.common import (
    HELP_MARKUP,
    GlobalOptions,
    JsonOption,
    app,
    global_options,
    print_json,
    reporting,
    resolve,
)
from handlers import bootstrap
from ledger.domain.errors import ValidationError
from ledger.domain.timestamps import format_timestamp

archive_app = typer.Typer(
    help="The Parquet archive of every event.", no_args_is_help=True, rich_markup_mode=HELP_MARKUP
)
audit_app = typer.Typer(
    help="Auditors' SQL over the archive's table events: Athena on AWS, DuckDB locally.",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)
app.add_typer(archive_app, name="archive")
app.add_typer(audit_app, name="audit")

ROWS_LIMIT_MAX = 1_000_000


class Engine(StrEnum):
    auto = "auto"
    duckdb = "duckdb"
    athena = "athena"


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


ArchiveDirOption = Annotated[
    Path | None,
    typer.Option(
        "--archive-dir",
        metavar="PATH",
        help="A local folder holding the archive (events/year=…) instead of the bucket.",
        show_default=False,
    ),
]
EngineOption = Annotated[
    Engine,
    typer.Option(help="auto: Athena when the bucket is on AWS, else DuckDB."),
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]
LimitOption = Annotated[
    int,
    typer.Option("--limit", min=1, max=ROWS_LIMIT_MAX, help="Print at most this many rows."),
]


def archive_storage(options: GlobalOptions, archive_dir: Path | None) -> ArchiveStorage:
    if archive_dir is not None:
        if not archive_dir.is_dir():
            raise ValidationError(f"--archive-dir {archive_dir} is not a folder")
        return LocalArchiveStorage(archive_dir)
    return bootstrap.build_archive_storage(resolve(options).archive_settings())


def audit_engine(options: GlobalOptions, engine: Engine, archive_dir: Path | None) -> Any:
    """The engine the query runs on (``archive.audit.AuditEngine``)."""
    from archive.audit import DuckDBAudit

    if archive_dir is not None:
        if engine is Engine.athena:
            raise ValidationError("--archive-dir is read with DuckDB, not Athena")
        return DuckDBAudit(archive_storage(options, archive_dir))
    settings = resolve(options).archive_settings()
    if engine is not Engine.athena:
        storage = bootstrap.build_archive_storage(settings)
        if engine is Engine.duckdb or not storage.on_aws:
            return DuckDBAudit(storage)
    database, workgroup = bootstrap.athena_target(settings)
    from archive.athena import AthenaAudit  # pandas and awswrangler load only for Athena

    return AthenaAudit(bootstrap.aws_session(settings.aws), database, workgroup)


# ── archive ───────────────────────────────────────────────────────────────────────────────────


@archive_app.command("compact")
def compact(
    ctx: typer.Context,
    day: Annotated[
        str, typer.Option("--day", metavar="YYYY-MM-DD", help="The UTC day to compact.")
    ],
    archive_dir: ArchiveDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Merge a day's objects into large ones, each event once (write new, then delete old).

    Refuses (chain_broken, exit 1) when one event id has two different contents. Running it
    again does nothing.
    """
    options = global_options(ctx)
    with reporting(options, json_output):
        from archive.compaction import compact_day
        from archive.layout import parse_day

        parsed = parse_day(day)
        report = compact_day(archive_storage(options, archive_dir), parsed)
        if json_output:
            print_json(report.to_dict())
        elif not report.files_read:
            typer.echo(f"{day}: no objects in {report.location}")
        elif report.unchanged:
            typer.echo(f"{day}: already compacted ({report.events:,} events), nothing to do")
        else:
            typer.echo(
                f"{day}: read {len(report.files_read):,} objects ({report.rows_read:,} rows),"
                f" {report.events:,} events, dropped {report.duplicates_dropped:,} duplicates;"
                f" wrote {len(report.files_written):,}, deleted {len(report.files_deleted):,}"
            )
        if report.more_files:
            typer.echo(f"{day}: more objects remain; run it again", err=True)


# ── audit ─────────────────────────────────────────────────────────────────────────────────────


@audit_app.command("query")
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="SQL over the table events.", show_default=False)],
    engine: EngineOption = Engine.auto,
    archive_dir: ArchiveDirOption = None,
    output: FormatOption = OutputFormat.table,
    limit: LimitOption = 10_000,
) -> None:
    """Run one SQL query over the archive (the same text runs on Athena and DuckDB)."""
    options = global_options(ctx)
    with reporting(options, output is OutputFormat.json):
        runner = audit_engine(options, engine, archive_dir)
        result = runner.run(sql, [], rows_max=limit)
        _print_result("query", runner.name, result, output)


@audit_app.command("report")
def report(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The report's name (see audit reports).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", metavar="NAME=VALUE", help="A report parameter (repeatable)."),
    ] = None,
    engine: EngineOption = Engine.auto,
    archive_dir: ArchiveDirOption = None,
    output: FormatOption = OutputFormat.table,
    limit: LimitOption = 10_000,
) -> None:
    """Run a named report with its parameters (unknown, missing or ill-typed: exit 2)."""
    options = global_options(ctx)
    with reporting(options, output is OutputFormat.json):
        from archive.reports import parse_arguments, report_named

        chosen = report_named(name)
        values = chosen.bind(parse_arguments(param or []))
        runner = audit_engine(options, engine, archive_dir)
        result = runner.run(chosen.sql, values, rows_max=limit)
        _print_result(chosen.name, runner.name, result, output)


@audit_app.command("reports")
def reports(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List the named reports and their parameters."""
    with reporting(global_options(ctx), json_output):
        from archive.reports import REPORTS

        if json_output:
            print_json(
                {
                    "reports": [
                        {
                            "name": item.name,
                            "description": item.description,
                            "parameters": [
                                {"name": p.name, "type": str(p.kind), "description": p.description}
                                for p in item.parameters
                            ],
                            "sql": item.sql,
                        }
                        for item in REPORTS
                    ]
                }
            )
            return
        table = Table(title="reports", title_justify="left")
        for column in ("name", "parameters", "description"):
            table.add_column(column, overflow="fold")
        for item in REPORTS:
            parameters = ", ".join(f"{p.name}={p.kind}" for p in item.parameters) or "—"
            table.add_row(item.name, parameters, item.description)
        Console().print(table)


def _print_result(title: str, engine: str, result: Any, output: OutputFormat) -> None:
    rows = [[_cell(value) for value in row] for row in result.rows]
    if output is OutputFormat.json:
        print_json(
            {
                "engine": engine,
                "columns": result.columns,
                "rows": [dict(zip(result.columns, row, strict=True)) for row in rows],
                "truncated": result.truncated,
            }
        )
    elif output is OutputFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(["" if value is None else value for value in row] for row in rows)
    else:
        table = Table(title=f"{title} ({engine})", title_justify="left")
        for column in result.columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if value is None else str(value) for value in row))
        table.caption = f"{len(rows):,} rows" + (" (truncated)" if result.truncated else "")
        Console().print(table)
    if result.truncated:
        typer.echo(f"{title}: more rows than --limit {len(rows):,}", err=True)


def _cell(value: Any) -> Any:
    """A result value as JSON and CSV write it: timestamps (UTC) in the events' canonical form."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return format_timestamp(moment)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
