"""The scheduled compaction Lambda: merge one day's archive objects (``archive.compaction``).

Compacts the previous UTC day, or the day the event names (``{"day": "YYYY-MM-DD"}``). A day with
more objects than one pass reads is compacted in further passes while time remains. DuckDB gets
half the function's memory and spills to ``/tmp`` beyond it. Corruption (the same event id with
different content…) raises ``chain_broken``: the invocation fails, nothing is deleted, and the
error names the objects.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from archive.compaction import CompactionReport, compact_day
from archive.engine import EngineSettings
from archive.layout import parse_day
from archive.storage import ArchiveStorage
from handlers.bootstrap import archive_settings_from_environment, build_archive_storage
from handlers.observability import make_logger

PASSES_MAX = 20
# A pass needs time to write and delete after reading; never start one with less left.
PASS_TIME_MIN_MS = 120_000
DUCKDB_MEMORY_SHARE = 0.5

logger = make_logger()
tracer = Tracer()
metrics = Metrics()

storage = build_archive_storage(archive_settings_from_environment())
clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731 - a seam for tests


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    day = parse_day(str(event["day"])) if event.get("day") else _yesterday()
    settings = EngineSettings(
        memory_limit=f"{int(context.memory_limit_in_mb * DUCKDB_MEMORY_SHARE)}MB",
        spill_directory=Path(tempfile.gettempdir()) / "payledger-compaction",
    )
    reports = compact(storage, day, settings, context.get_remaining_time_in_millis)
    return {"day": day.isoformat(), "passes": [report.to_dict() for report in reports]}


def compact(
    storage: ArchiveStorage,
    day: date,
    settings: EngineSettings,
    remaining_ms: Callable[[], int],
) -> list[CompactionReport]:
    reports: list[CompactionReport] = []
    for _ in range(PASSES_MAX):
        report = compact_day(storage, day, settings)
        reports.append(report)
        logger.info("compacted", extra=_summary(report))
        for name, value in (
            ("FilesRead", len(report.files_read)),
            ("FilesWritten", len(report.files_written)),
            ("FilesDeleted", len(report.files_deleted)),
            ("DuplicatesDropped", report.duplicates_dropped),
        ):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        if not report.more_files or remaining_ms() < PASS_TIME_MIN_MS:
            break
    if reports[-1].more_files:
        logger.warning("day not fully compacted; it is finished by the next run for this day")
    return reports


def _yesterday() -> date:
    return (clock() - timedelta(days=1)).date()


def _summary(report: CompactionReport) -> dict[str, Any]:
    document = report.to_dict()
    for name in ("files_read", "files_written", "files_deleted"):
        document[name] = len(document[name])
    return document
