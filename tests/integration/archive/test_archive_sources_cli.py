"""The archive as a source for the CLI: history, replay and trace give the events table's answer
for the same payment; verify --archive and proof use it. The events table is moto's DynamoDB;
the archive a local folder of real Parquet objects (``--archive-dir``)."""

from __future__ import annotations

import json
import uuid
from itertools import groupby
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

import cli
from archive.local import LocalArchiveStorage
from handlers import bootstrap
from ledger.dynamodb import event_to_item
from ledger.envelope import RecordedEvent
from ledger.integrity.digests import write_digest
from ledger.integrity.s3 import S3DigestStore
from ledger.memory import MemoryEventStore
from tests.archive_events import LedgerHistory
from tests.integration.archive.test_verify_archive import write
from tests.verification_support import heads_of


@pytest.fixture
def setup(
    moto_endpoint: str,
    dynamodb_client: Any,
    events_table: str,
    history: LedgerHistory,
    tmp_path: Path,
) -> tuple[dict[str, str], Path]:
    """The history in the events table and in the archive (one object per day, the last day's
    last event not archived yet), with a digest bucket holding digest 1."""
    events = history.events()
    items = [event_to_item(event) for event in events]
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        dynamodb_client.batch_write_item(RequestItems={events_table: requests})
    storage = LocalArchiveStorage(tmp_path / "archive")
    for day, group in groupby(events[:-1], key=lambda event: event.recorded_at[:10]):
        write(storage, f"batch-{day}", list(group))
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"digests-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    store = MemoryEventStore()
    for stream in history.streams():
        store.append(stream)
    write_digest(S3DigestStore(s3, bucket), heads_of(store), store)
    environment = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "EVENTS_TABLE": events_table,
        "DIGEST_BUCKET": bucket,
        "PAYMENT_STATE_TABLE": "",
        "ARCHIVE_BUCKET": "",
        "PAYLEDGER_DATABASE_URL": "",
    }
    return environment, tmp_path / "archive"


def run(environment: dict[str, str], *args: str) -> Any:
    bootstrap.aws_client.cache_clear()
    result = CliRunner().invoke(cli.app, list(args), env=environment)
    bootstrap.aws_client.cache_clear()
    return result


def both(setup: tuple[dict[str, str], Path], *args: str) -> tuple[Any, Any]:
    environment, archive_dir = setup
    table = run(environment, *args, "--json")
    archived = run(
        environment, *args, "--source", "archive", "--archive-dir", str(archive_dir), "--json"
    )
    assert table.exit_code == 0, table.output
    assert archived.exit_code == 0, archived.output
    return json.loads(table.stdout), json.loads(archived.stdout)


def test_history_replay_and_trace_from_the_archive_equal_the_tables(
    setup: tuple[dict[str, str], Path], history: LedgerHistory
) -> None:
    for payment_id in ("pay-000", "pay-004", "pay-009"):
        table, archived = both(setup, "history", payment_id)
        assert table == archived
        table, archived = both(setup, "replay", payment_id)
        assert table == archived
    table, archived = both(setup, "replay", "pay-004", "--version", "2")
    assert table == archived
    assert [s["event"]["version"] for s in archived["steps"]] == [1, 2]
    as_of = history.store.load("payment#pay-000")[1].recorded_at
    table, archived = both(setup, "replay", "pay-000", "--as-of", as_of)
    assert table == archived
    correlation = history.store.load("payment#pay-006")[0].correlation_id
    table, archived = both(setup, "trace", correlation)
    assert table == archived
    assert {s["event"]["stream_id"] for s in archived["steps"]} == {"payment#pay-006"}


def test_a_payment_the_archive_does_not_have_is_not_found(
    setup: tuple[dict[str, str], Path],
) -> None:
    environment, archive_dir = setup
    result = run(environment, "replay", "nobody", "--source", "archive", "--archive-dir",
                 str(archive_dir), "--json")  # fmt: skip
    assert result.exit_code == 5
    assert json.loads(result.stdout)["error"]["code"] == "not_found"


def test_verify_archive_from_the_cli(
    setup: tuple[dict[str, str], Path], history: LedgerHistory
) -> None:
    environment, archive_dir = setup
    result = run(environment, "verify", "--archive", "--archive-dir", str(archive_dir), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["checks"] == ["archive"]
    assert report["counts"]["archive"] == {
        "rows": len(history.events()) - 1,
        "behind": 1,
        "copies": 0,
    }
    everything = run(environment, "verify", "--archive-dir", str(archive_dir), "--json")
    assert json.loads(everything.stdout)["checks"] == ["chains", "digests", "archive"]
    assert everything.exit_code == 0, everything.output


def test_proof_finds_the_stream_in_the_archive_or_the_table(
    setup: tuple[dict[str, str], Path], history: LedgerHistory
) -> None:
    environment, archive_dir = setup
    events: list[RecordedEvent] = history.events()
    archived, not_archived = events[0], events[-1]
    for event in (archived, not_archived):
        proof = run(environment, "proof", event.event_id, "--archive-dir", str(archive_dir))
        assert proof.exit_code == 0, proof.output
        assert json.loads(proof.stdout)["events"][0]["stream_id"] == event.stream_id
