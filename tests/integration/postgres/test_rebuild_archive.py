"""``rebuild --source archive``: the PostgreSQL views replayed from the Parquet archive are the
views replayed from the events table (same projection, same compare), and --swap works alike;
no events table is needed."""

from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path
from typing import Any

import psycopg
from typer.testing import CliRunner

import cli
from archive.local import LocalArchiveStorage
from projections.postgres.checksums import table_checksums
from projections.postgres.projection import PostgresProjection, connect_url
from tests.integration.archive.test_verify_archive import write
from tests.integration.postgres.conftest import apply_all, batches, drop_schema, random_history


def test_rebuild_from_the_archive_equals_the_live_views(
    postgres_url: str, schema: str, connection: psycopg.Connection[Any], tmp_path: Path
) -> None:
    history = random_history(seed=5, payments=6, count=40)
    storage = LocalArchiveStorage(tmp_path / "archive")
    events = sorted(history.events(), key=lambda event: event.recorded_at)
    for day, group in groupby(events, key=lambda event: event.recorded_at[:10]):
        day_events = list(group)
        write(storage, f"batch-{day}", day_events)
        write(storage, f"retried-{day}", day_events[:2])  # copies awaiting compaction
    live = PostgresProjection(connect_url(postgres_url), schema)
    apply_all(live, batches(history.events(), 9))
    live.close()
    environment = {"PAYLEDGER_DATABASE_URL": postgres_url, "DATABASE_SCHEMA": schema,
                   "EVENTS_TABLE": ""}  # fmt: skip
    result = CliRunner().invoke(
        cli.app,
        [
            "rebuild",
            "--source",
            "archive",
            "--archive-dir",
            str(tmp_path / "archive"),
            "--into",
            "t_rebuild_archive",
            "--json",
        ],
        env=environment,
    )
    try:
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["identical"] is True
        assert report["streams"] == len(history.stream_ids)
        assert report["events"] == len(history.events())
        assert table_checksums(connection, "t_rebuild_archive") == table_checksums(
            connection, schema
        )
    finally:
        drop_schema(connection, "t_rebuild_archive")
