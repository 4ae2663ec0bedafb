"""``payledger db migrate`` and ``payledger rebuild``: the PostgreSQL views."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cli import common
from cli.archive import ArchiveDirOption, archive_storage
from cli.common import (
    HELP_MARKUP,
    JsonOption,
    app,
    global_options,
    print_json,
    reporting,
    resolve_database,
)
from ledger.domain.errors import EXIT_OTHER

if TYPE_CHECKING:
    from ledger.store import EventStore
    from projections.rebuild import RebuildReport, StreamSource

db_app = typer.Typer(
    help="The PostgreSQL views' schema.", no_args_is_help=True, rich_markup_mode=HELP_MARKUP
)
app.add_typer(db_app, name="db")


class RebuildSource(StrEnum):
    dynamodb = "dynamodb"
    archive = "archive"


@db_app.command("migrate")
def db_migrate(
    ctx: typer.Context,
    schema: Annotated[
        str | None,
        typer.Option(help="Schema to migrate. Default: the configured one.", show_default=False),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Apply the pending SQL migrations (idempotent; refuses edited ones): the views into the
    schema, the analytics windows into `<schema>_analytics`."""
    options = global_options(ctx)
    with reporting(options, json_output):
        from handlers.database import database_connector
        from projections.postgres.migrate import migrate_database

        database = resolve_database()
        target = schema or database.schema
        with database_connector(database)() as connection:
            applied = migrate_database(connection, target)
        names = {
            name: [f"{migration.version:04d}_{migration.name}" for migration in migrations]
            for name, migrations in applied.items()
        }
        if json_output:
            print_json(
                {"schemas": [{"schema": name, "applied": done} for name, done in names.items()]}
            )
        else:
            for name, done in names.items():
                typer.echo(f"{name}: applied {', '.join(done)}" if done else f"{name}: up to date")


@app.command("rebuild")
def rebuild(
    ctx: typer.Context,
    source: Annotated[
        RebuildSource, typer.Option("--source", help="Where the events are read from.")
    ] = RebuildSource.dynamodb,
    into: Annotated[
        str | None,
        typer.Option(
            "--into",
            metavar="SCHEMA",
            help="New schema to build. Default: `<schema>_rebuild_<timestamp>`.",
            show_default=False,
        ),
    ] = None,
    swap: Annotated[
        bool, typer.Option("--swap", help="Make the rebuilt schema the live one.")
    ] = False,
    archive_dir: ArchiveDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Replay every event through the projection into a fresh schema, compare it with the live
    one (rows and checksum per table) and, with --swap, replace the live schema by it."""
    options = global_options(ctx)
    with reporting(options, json_output):
        from handlers.database import database_connector
        from projections.rebuild import default_rebuild_schema, rebuild_postgres, swap_schemas

        database = resolve_database()
        source_streams, events = _rebuild_source(options, source, archive_dir)
        connect = database_connector(database)
        target = into or default_rebuild_schema(database.schema)
        with _rebuild_progress(json_output) as progress:
            report = rebuild_postgres(
                source_streams,
                connect,
                live_schema=database.schema,
                into_schema=target,
                events=events,
                progress=progress,
            )
        if swap and not report.failures:
            report.swapped_out = swap_schemas(
                connect, live_schema=database.schema, rebuilt_schema=target
            )
        if json_output:
            print_json(report.to_dict())
        else:
            Console().print(rebuild_table(report))
        if report.failures:
            raise typer.Exit(EXIT_OTHER)


def _rebuild_source(
    options: common.GlobalOptions, source: RebuildSource, archive_dir: Path | None
) -> tuple[StreamSource, EventStore | None]:
    """The streams to replay and the event store gaps are filled from (none for the archive:
    its streams are whole, and it must not need the events table)."""
    from projections.rebuild import StoreStreams

    if source is RebuildSource.archive:
        from archive.reader import ArchiveReader

        return ArchiveReader(archive_storage(options, archive_dir)), None
    store = common.service_factory(common.resolve(options)).store
    return StoreStreams(store), store


@contextmanager
def _rebuild_progress(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    if quiet:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[streams]:,} payments, {task.fields[events]:,} events"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task("rebuilding", total=None, streams=0, events=0)

        def advance(streams: int, events: int) -> None:
            bar.update(task, streams=streams, events=events)

        yield advance


def rebuild_table(report: RebuildReport) -> Table:
    verdict = "identical to" if report.identical else "differs from"
    table = Table(
        title=f"{report.schema}: {report.streams:,} payments, {report.events:,} events, "
        f"{verdict} {report.live_schema}"
    )
    for column in ("table", "live rows", "rebuilt rows", "checksum"):
        table.add_column(column, overflow="fold")
    for name, rebuilt in report.rebuilt.items():
        live = report.live.get(name)
        same = live == rebuilt
        table.add_row(
            name,
            "—" if live is None else f"{live.rows:,}",
            f"{rebuilt.rows:,}",
            Text("same", style="green") if same else Text("differs", style="bold red"),
        )
    for failure in report.failures:
        table.add_row(
            Text(f"failed {failure.stream_id} v{failure.version}", style="bold red"),
            "",
            "",
            failure.reason,
        )
    if report.swapped_out:
        table.caption = (
            f"swapped: {report.schema} is now {report.live_schema};"
            f" the replaced views are kept in {report.swapped_out}"
        )
    return table
