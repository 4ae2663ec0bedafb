"""``payledger archive compact`` and ``payledger audit``: on the emulated S3 as real processes, on
a local folder in-process, and every way to get them wrong (typed errors, documented exit codes)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import boto3
import pytest
from typer.testing import CliRunner

from archive.layout import day_prefix
from archive.local import LocalArchiveStorage
from archive.parquet import encode
from archive.reports import REPORTS
from archive.s3 import S3ArchiveStorage
from archive.schema import events_to_table
from cli import app
from cli.common import GlobalOptions, resolve
from handlers import bootstrap
from ledger.decoding import decode_event
from tests.archive_events import LedgerHistory
from tests.integration.test_cli import PAYLEDGER, PROCESS_TIMEOUT_S
from tests.kinesis_events import KinesisShard, change_record, kinesis_event

PERIOD = ["--param", "start_day=2026-11-01", "--param", "end_day=2026-11-30"]


def _archive(storage: object, history: LedgerHistory, handler: ModuleType) -> None:
    shard = KinesisShard()
    records = [change_record(event, shard) for event in history.events()]
    for start in range(0, len(records), 10):
        handler.process(kinesis_event(records[start : start + 10]), storage)
    handler.process(kinesis_event(records[:10]), storage)
    handler.process(kinesis_event(records[3:8]), storage)  # copies under another key


def _run(arguments: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PAYLEDGER, *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        check=False,
    )


def test_a_report_on_the_emulated_s3_as_a_process(
    moto_endpoint: str,
    s3_storage: S3ArchiveStorage,
    history: LedgerHistory,
    archive_handler: ModuleType,
) -> None:
    _archive(s3_storage, history, archive_handler)
    environment = dict(os.environ, AWS_ENDPOINT_URL=moto_endpoint, ARCHIVE_BUCKET=s3_storage.bucket)
    report = _run(["audit", "report", "events_per_day", *PERIOD, "--format", "json"], environment)
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)
    assert document["engine"].startswith("duckdb (s3://")
    assert sum(row["events"] for row in document["rows"]) == len(history.events())
    assert sum(row["rows_stored"] for row in document["rows"]) > len(history.events())


@pytest.fixture
def emulated_bucket(
    moto_endpoint: str, s3_storage: S3ArchiveStorage, monkeypatch: pytest.MonkeyPatch
) -> Iterator[S3ArchiveStorage]:
    """The environment of a CLI pointed at the emulated S3, with fresh clients."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("ARCHIVE_BUCKET", s3_storage.bucket)
    caches = (bootstrap.aws_client, bootstrap.aws_session)
    for cached in caches:
        cached.cache_clear()
    yield s3_storage
    for cached in caches:
        cached.cache_clear()


def test_compaction_then_a_query_on_the_emulated_s3(
    emulated_bucket: S3ArchiveStorage, history: LedgerHistory, archive_handler: ModuleType
) -> None:
    _archive(emulated_bucket, history, archive_handler)
    code, output = _invoke(["archive", "compact", "--day", "2026-11-01", "--json"])
    assert code == 0, output
    compacted = json.loads(output)
    assert compacted["duplicates_dropped"] > 0
    assert len(compacted["files_written"]) == 1
    assert set(compacted["files_deleted"]) == set(compacted["files_read"])
    code, output = _invoke(["archive", "compact", "--day", "2026-11-01"])
    assert (code, output.strip()) == (
        0,
        f"2026-11-01: already compacted ({compacted['events']} events), nothing to do",
    )

    sql = "SELECT count(*) AS n FROM events WHERE day = '01'"
    code, output = _invoke(["audit", "query", sql, "--format", "csv"])
    assert code == 0, output
    per_day = sum(1 for event in history.events() if event.recorded_at.startswith("2026-11-01"))
    assert list(csv.reader(io.StringIO(output))) == [["n"], [str(per_day)]]


@pytest.fixture
def archive_dir(
    local_storage: LocalArchiveStorage, history: LedgerHistory, archive_handler: ModuleType
) -> Path:
    _archive(local_storage, history, archive_handler)
    return local_storage.root


def _invoke(arguments: list[str]) -> tuple[int, str]:
    done = CliRunner().invoke(app, arguments)
    return done.exit_code, done.output


def test_a_report_on_a_local_folder_in_each_format(archive_dir: Path) -> None:
    base = [
        "audit",
        "report",
        "declined_risk_assessments",
        *PERIOD,
        "--archive-dir",
        str(archive_dir),
    ]
    code, output = _invoke([*base, "--format", "json"])
    assert code == 0, output
    rows = json.loads(output)["rows"]
    assert rows
    assert all(row["recorded_at"].endswith("Z") for row in rows)
    code, output = _invoke([*base, "--format", "csv"])
    assert code == 0
    assert len(list(csv.reader(io.StringIO(output)))) == len(rows) + 1
    code, output = _invoke([*base, "--limit", "1"])
    assert code == 0
    assert "declined_risk_assessments" in output


def test_the_reports_are_listed(archive_dir: Path) -> None:
    code, output = _invoke(["audit", "reports", "--json"])
    assert code == 0
    listed = json.loads(output)["reports"]
    assert [item["name"] for item in listed] == [report.name for report in REPORTS]
    assert listed[0]["parameters"][0] == {
        "name": "actor_id",
        "type": "id",
        "description": "the agent's id (actor.id)",
    }


@pytest.mark.parametrize(
    ("arguments", "code", "error"),
    [
        (["audit", "report", "payment_history"], 2, "needs payment_id"),
        (["audit", "report", "payment_history", "--param", "payment_id=p", "--param", "x=1"],
         2, "no parameter x"),
        (["audit", "report", "events_per_day", "--param", "start_day=today",
          "--param", "end_day=2026-11-02"], 2, "YYYY-MM-DD"),
        (["audit", "report", "everything"], 2, "no report named"),
        (["audit", "query", "SELEC 1"], 2, "the query failed"),
        (["audit", "query", "SELECT * FROM read_csv('/etc/passwd')"], 2, "the query failed"),
        (["audit", "query", "SELECT 1", "--engine", "athena"],
         2, "--archive-dir is read with DuckDB"),
        (["archive", "compact", "--day", "2026-11-31"], 2, "not a valid day"),
    ],
)  # fmt: skip
def test_wrong_use_is_a_typed_error_with_its_exit_code(
    archive_dir: Path, arguments: list[str], code: int, error: str
) -> None:
    exit_code, output = _invoke([*arguments, "--archive-dir", str(archive_dir)])
    assert exit_code == code, output
    assert error in output
    assert output.startswith("error[validation_error]: ")


def test_errors_are_json_documents_with_json_output(archive_dir: Path) -> None:
    code, output = _invoke(
        ["audit", "report", "nothing", "--archive-dir", str(archive_dir), "--format", "json"]
    )
    assert code == 2
    assert json.loads(output)["error"]["code"] == "validation_error"


def test_compaction_refuses_corruption_with_exit_1(
    archive_dir: Path, history: LedgerHistory
) -> None:
    storage = LocalArchiveStorage(archive_dir)
    forged = dataclasses.replace(history.events()[0], correlation_id="forged")
    key = f"{day_prefix(date(2026, 11, 1))}forged.parquet"
    storage.put_bytes(key, encode(events_to_table([forged], [decode_event(forged)])))
    code, output = _invoke(
        ["archive", "compact", "--day", "2026-11-01", "--archive-dir", str(archive_dir), "--json"]
    )
    assert code == 1
    assert json.loads(output)["error"]["code"] == "chain_broken"
    assert "forged.parquet" in output


def test_missing_configuration_is_exit_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ARCHIVE_BUCKET", raising=False)
    code, output = _invoke(["archive", "compact", "--day", "2026-11-01"])
    assert code == 1
    assert output.startswith("error[configuration_error]: set ARCHIVE_BUCKET")
    code, output = _invoke(["audit", "query", "SELECT 1", "--archive-dir", str(tmp_path / "no")])
    assert code == 2
    assert "is not a folder" in output


def test_the_archive_is_found_from_a_stacks_outputs(
    moto_endpoint: str, s3_storage: S3ArchiveStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.delenv("ARCHIVE_BUCKET", raising=False)
    caches = (bootstrap.aws_client, bootstrap.aws_session)
    for cached in caches:
        cached.cache_clear()
    stack = f"payledger-{s3_storage.bucket}"
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "ArchiveBucketName": {"Value": s3_storage.bucket},
            "GlueDatabaseName": {"Value": "payledger_archive"},
            "AthenaWorkGroupName": {"Value": "auditors"},
        },
    }
    cloudformation = boto3.client("cloudformation", endpoint_url=moto_endpoint)
    cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    settings = resolve(GlobalOptions(stack=stack, debug=False)).archive_settings()
    assert settings == bootstrap.ArchiveSettings(s3_storage.bucket, "payledger_archive", "auditors")
    code, output = _invoke(["--stack", stack, "archive", "compact", "--day", "2026-11-01"])
    assert (code, output.strip()) == (0, f"2026-11-01: no objects in s3://{s3_storage.bucket}")
    code, output = _invoke(
        ["--stack", "no-such-stack", "archive", "compact", "--day", "2026-11-01"]
    )
    assert code == 5
    assert output.startswith("error[not_found]")
    for cached in caches:
        cached.cache_clear()
