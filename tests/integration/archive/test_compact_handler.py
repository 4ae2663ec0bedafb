"""The scheduled compaction Lambda: the previous UTC day by default, or the day it is given."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from types import ModuleType

import pytest

from archive.layout import EVENTS_PREFIX
from archive.s3 import S3ArchiveStorage
from tests.archive_events import LedgerHistory
from tests.kinesis_events import KinesisShard, change_record, kinesis_event
from tests.lambda_context import FakeLambdaContext


@pytest.fixture
def compact_handler(s3_storage: S3ArchiveStorage, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("ARCHIVE_BUCKET", s3_storage.bucket)
    module = importlib.import_module("handlers.compact")
    monkeypatch.setattr(module, "storage", s3_storage)
    monkeypatch.setattr(module, "clock", lambda: datetime(2026, 11, 3, 0, 5, tzinfo=UTC))
    return module


def test_yesterday_is_compacted_by_default_and_a_named_day_on_demand(
    s3_storage: S3ArchiveStorage,
    history: LedgerHistory,
    archive_handler: ModuleType,
    compact_handler: ModuleType,
) -> None:
    shard = KinesisShard()
    records = [change_record(event, shard) for event in history.events()]
    for start in range(0, len(records), 6):
        archive_handler.process(kinesis_event(records[start : start + 6]), s3_storage)
    context = FakeLambdaContext("payledger-compact", memory_limit_in_mb=1024)

    done = compact_handler.handler({}, context)
    assert done["day"] == "2026-11-02"
    (report,) = done["passes"]
    assert report["files_written"]
    assert report["files_deleted"]

    done = compact_handler.handler({"day": "2026-11-02"}, context)
    assert done["passes"][0]["unchanged"] is True
    keys = [item.key for item in s3_storage.list(EVENTS_PREFIX, limit=1000)]
    assert sum("/day=02/" in key for key in keys) == 1
    assert not any("compacted-" in key for key in keys if "/day=02/" not in key)  # untouched
