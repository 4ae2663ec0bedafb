"""``payledger history``, ``replay`` and ``trace``: what happened, who did it, when and why.

``--source`` says where the events are read from: the events table (``dynamodb``, the default)
or the Parquet archive; both give the same events for the same payment.

``trace CORRELATION_ID`` finds the flow's events with a filtered Scan of the events table, or a
query of the archive's correlation_id column (a debugging question: there is no index on
correlation ids, which would cost a write unit on every append), then loads each payment it
touches from the same source to show the state after each event.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli import common
from cli.archive import ArchiveDirOption, archive_storage
from cli.common import (
    JsonOption,
    PaymentIdArgument,
    app,
    global_options,
    print_json,
    reporting,
)
from cli.render import (
    chain_report,
    changed_fields,
    history_table,
    replay_table,
    trace_table,
)
from ledger.codec import event_document
from ledger.domain.errors import NotFoundError, ValidationError
from ledger.domain.validation import check_id
from ledger.envelope import PAYMENT_STREAM_PREFIX, RecordedEvent
from ledger.service import PaymentSnapshot, recorded_by, replay_steps, up_to_version
from ledger.store import EventReader

TRACE_EVENTS_MAX = 10_000
# Why an event the table has may be missing from the archive, said with every archive not_found.
ARCHIVE_LAG = (
    "the archive lags the events table by up to its Kinesis batching window (5 minutes on AWS),"
    " and an event is archived only once its batch is written; --source dynamodb reads the table"
)

Loader = Callable[[str, int | None], list[RecordedEvent]]  # (payment id, version max) -> events


class HistorySource(StrEnum):
    dynamodb = "dynamodb"
    archive = "archive"


SourceOption = Annotated[
    HistorySource, typer.Option("--source", help="Where the events are read from.")
]


def history_loader(
    source: HistorySource, options: common.GlobalOptions, archive_dir: Path | None
) -> Loader:
    """The payment's events from ``source``, versions 1..version max; ``not_found`` if none."""
    if source is HistorySource.dynamodb:
        service = common.service_factory(common.resolve(options))
        return lambda payment_id, version_max: service.load(payment_id, version_max=version_max)
    from archive.reader import ArchiveReader

    reader = ArchiveReader(archive_storage(options, archive_dir))

    def load(payment_id: str, version_max: int | None) -> list[RecordedEvent]:
        check_id(payment_id, "payment_id")
        events = reader.payment_events(payment_id)
        if not events:
            raise NotFoundError(f"payment {payment_id} not found in the archive: {ARCHIVE_LAG}")
        if version_max is None:
            return events
        try:
            return up_to_version(events, version_max)
        except NotFoundError as exc:
            raise NotFoundError(f"{exc.message} in the archive: {ARCHIVE_LAG}") from exc

    return load


@app.command("history")
def history(
    ctx: typer.Context,
    payment_id: PaymentIdArgument,
    source: SourceOption = HistorySource.dynamodb,
    archive_dir: ArchiveDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a payment's events (who, when, why) and verify their hash chain."""
    options = global_options(ctx)
    with reporting(options, json_output):
        events = history_loader(source, options, archive_dir)(payment_id, None)
        if json_output:
            print_json({"events": [event_document(event) for event in events]})
            return
        console = Console()
        console.print(history_table(events))
        console.print(chain_report(events))


@app.command("replay")
def replay(
    ctx: typer.Context,
    payment_id: PaymentIdArgument,
    version: Annotated[
        int | None,
        typer.Option("--version", help="Replay up to this version.", show_default=False),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="TIMESTAMP",
            help="Replay the events recorded up to this ISO-8601 time.",
            show_default=False,
        ),
    ] = None,
    source: SourceOption = HistorySource.dynamodb,
    archive_dir: ArchiveDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show every event (who, when, why) with the payment's state after it, the fields it
    changed highlighted."""
    options = global_options(ctx)
    with reporting(options, json_output):
        if version is not None and version < 1:
            raise ValidationError("version must be 1 or more")
        check_id(payment_id, "payment_id")
        events = history_loader(source, options, archive_dir)(payment_id, version)
        if as_of is not None:
            events = recorded_by(events, as_of)
        steps = replay_steps(events)
        if json_output:
            print_json({"payment": steps[-1][1].to_dict(), "steps": replay_documents(steps)})
            return
        Console().print(replay_table(steps))


def replay_documents(
    steps: Sequence[tuple[RecordedEvent, PaymentSnapshot]],
) -> list[dict[str, object]]:
    documents: list[dict[str, object]] = []
    previous = None
    for event, snapshot in steps:
        current = snapshot.to_dict()
        documents.append(
            {
                "event": event_document(event),
                "payment": current,
                "changed": changed_fields(previous, current),
            }
        )
        previous = current
    return documents


@app.command("trace")
def trace(
    ctx: typer.Context,
    correlation_id: Annotated[
        str, typer.Argument(help="The flow's correlation id.", show_default=False)
    ],
    source: SourceOption = HistorySource.dynamodb,
    archive_dir: ArchiveDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show every event of one flow, across payments and agents, in the order recorded, with
    each payment's status after it."""
    options = global_options(ctx)
    with reporting(options, json_output):
        check_id(correlation_id, "correlation id")
        if source is HistorySource.dynamodb:
            store = common.service_factory(common.resolve(options)).store
            assert isinstance(store, EventReader), "every event store backend is its own reader"
            found = store.events_with(correlation_id=correlation_id, limit=TRACE_EVENTS_MAX)
        else:
            from archive.lookup import find_events

            storage = archive_storage(options, archive_dir)
            found = find_events(storage, correlation_id=correlation_id, limit=TRACE_EVENTS_MAX)
        if not found:
            lag = f" in the archive: {ARCHIVE_LAG}" if source is HistorySource.archive else ""
            raise NotFoundError(f"no event has correlation id {correlation_id}{lag}")
        load = history_loader(source, options, archive_dir)
        steps = trace_steps(
            found,
            lambda stream_id, version: load(stream_id.removeprefix(PAYMENT_STREAM_PREFIX), version),
        )
        if json_output:
            print_json(
                {
                    "correlation_id": correlation_id,
                    "steps": [
                        {"event": event_document(event), "payment": snapshot.to_dict()}
                        for event, snapshot in steps
                    ],
                }
            )
            return
        Console().print(trace_table(correlation_id, steps))


def trace_steps(
    found: Sequence[RecordedEvent], load: Callable[[str, int], list[RecordedEvent]]
) -> list[tuple[RecordedEvent, PaymentSnapshot]]:
    """The events ``found`` with their payment's state after each, in recorded order: streams
    merged by ``recorded_at``, each stream kept in version order whatever the writers' clocks."""
    wanted = {event.event_id for event in found}
    per_stream: dict[str, list[tuple[RecordedEvent, PaymentSnapshot]]] = {}
    for stream_id in sorted({event.stream_id for event in found}):
        version_max = max(event.version for event in found if event.stream_id == stream_id)
        per_stream[stream_id] = [
            step
            for step in replay_steps(load(stream_id, version_max))
            if step[0].event_id in wanted
        ]
    merged = heapq.merge(
        *per_stream.values(), key=lambda step: (step[0].recorded_at, step[0].event_id)
    )
    return list(merged)
