"""Tamper tests on the real thing: the moto server's DynamoDB and versioned S3 with Object Lock,
``payledger verify``, ``proof``, ``verify-proof`` and ``digest`` in-process, and the digest
Lambda. Every alteration is written straight to the table or bucket with boto3 (the only place
anything changes an event is a test proving it is caught), then found and located."""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

import cli
from devstack.template import create_bucket, create_table
from handlers import bootstrap
from ledger.codec import canonical_json, chain_hash, hash_document
from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    InitiatePayment,
    RefundPayment,
)
from ledger.dynamodb import DynamoDBEventStore, event_to_item, item_to_event
from ledger.envelope import Actor, RecordedEvent, payment_stream_id
from ledger.integrity.digests import digest_key
from ledger.integrity.s3 import S3DigestStore
from ledger.memory import MemoryEventStore
from ledger.service import CommandContext, PaymentService
from projections.payment_state import PaymentStateProjection
from tests.lambda_context import FakeLambdaContext

ACTOR = Actor("agent", "capture-agent", model="m", version="1")
PAYMENTS = ("alpha", "bravo", "charlie")


@dataclass
class Ledger:
    """Three payments in a fresh events table, projected, with digest 1 written."""

    client: Any
    s3: Any
    table: str
    state_table: str
    bucket: str
    environment: dict[str, str]
    events: dict[str, list[RecordedEvent]] = field(default_factory=dict)

    @property
    def store(self) -> DynamoDBEventStore:
        return DynamoDBEventStore(self.client, self.table)

    def run(self, *args: str) -> Any:
        bootstrap.aws_client.cache_clear()
        return CliRunner().invoke(cli.app, list(args), env=self.environment)

    def verify(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.run("verify", *args, "--json")
        return result.exit_code, json.loads(result.stdout)

    def item(self, payment: str, version: int) -> dict[str, Any]:
        key = {"pk": {"S": payment_stream_id(payment)}, "sk": {"N": str(version)}}
        response = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        item: dict[str, Any] = response["Item"]
        return item

    def put(self, item: dict[str, Any]) -> None:
        self.client.put_item(TableName=self.table, Item=item)

    def delete(self, payment: str, version: int) -> None:
        key = {"pk": {"S": payment_stream_id(payment)}, "sk": {"N": str(version)}}
        self.client.delete_item(TableName=self.table, Key=key)


def _history() -> dict[str, list[RecordedEvent]]:
    """Three payments of five events, decided once by the real service (in memory) and copied
    into each test's table in one request: far cheaper than 15 commands per test."""
    service = PaymentService(MemoryEventStore())
    for payment in PAYMENTS:
        commands = [
            InitiatePayment(payment, "20.00", "EUR", "m-1", "c-1"),
            AssessRisk(payment, "approve", "0.2", "fine"),
            AuthorizePayment(payment),
            CapturePayment(payment, "15.00"),
            RefundPayment(payment, "2.00"),
        ]
        for number, command in enumerate(commands):
            context = CommandContext(f"{payment}-{number}", ACTOR, correlation_id=f"flow-{payment}")
            service.execute(command, context)
    return {payment: service.load(payment) for payment in PAYMENTS}


HISTORY = _history()


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    bootstrap.aws_client.cache_clear()
    yield
    bootstrap.aws_client.cache_clear()


@pytest.fixture
def digest_bucket(moto_endpoint: str) -> tuple[Any, str]:
    """A bucket shaped as template.yaml's DigestBucket: versioned, Object Lock in compliance
    mode."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = f"digests-{uuid.uuid4().hex[:12]}"
    create_bucket(s3, "DigestBucket", name)
    return s3, name


@pytest.fixture
def ledger(
    moto_endpoint: str, dynamodb_client: Any, events_table: str, digest_bucket: tuple[Any, str]
) -> Ledger:
    state_table = f"state-{uuid.uuid4().hex[:12]}"
    create_table(dynamodb_client, "PaymentStateTable", state_table)
    s3, bucket = digest_bucket
    environment = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "EVENTS_TABLE": events_table,
        "PAYMENT_STATE_TABLE": state_table,
        "DIGEST_BUCKET": bucket,
        "PAYLEDGER_DATABASE_URL": "",
        "DATABASE_SECRET_ARN": "",
        "DATABASE_HOST": "",
    }
    ledger = Ledger(dynamodb_client, s3, events_table, state_table, bucket, environment)
    ledger.events = HISTORY
    items = [event_to_item(event) for events in HISTORY.values() for event in events]
    for start in range(0, len(items), 25):  # BatchWriteItem's limit
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        dynamodb_client.batch_write_item(RequestItems={events_table: requests})
    projection = PaymentStateProjection(dynamodb_client, state_table, ledger.store)
    applied = projection.apply([e for events in ledger.events.values() for e in events])
    assert not applied.failures
    written = ledger.run("digest", "write", "--json")
    assert written.exit_code == 0, written.output
    return ledger


def problems(document: dict[str, Any]) -> list[tuple[str, str | None, int | None]]:
    return [(p["kind"], p["stream_id"], p["version"]) for p in document["problems"]]


# ── A clean ledger ───────────────────────────────────────────────────────────────────────────


def test_a_clean_ledger_verifies(ledger: Ledger) -> None:
    code, report = ledger.verify()
    assert code == 0, report
    assert report["ok"] is True
    assert report["checks"] == ["chains", "digests", "projections"]
    assert (report["streams"], report["events"], report["digests"]) == (3, 15, 1)
    text = ledger.run("verify")
    assert text.exit_code == 0
    assert "verified" in text.stdout


def test_proof_round_trip_and_wrong_digest(ledger: Ledger, tmp_path: Path) -> None:
    event = ledger.events["bravo"][1]
    by_scan = ledger.run("proof", event.event_id)
    by_query = ledger.run("proof", event.event_id, "--payment", "bravo")
    assert by_scan.exit_code == 0, by_scan.output
    assert json.loads(by_scan.stdout) == json.loads(by_query.stdout)
    (tmp_path / "proof.json").write_text(by_scan.stdout)
    first = ledger.run("digest", "get", "1")
    (tmp_path / "digest-1.json").write_bytes(first.stdout_bytes)
    stored = S3DigestStore(ledger.s3, ledger.bucket).read(digest_key(1))
    assert stored is not None
    assert first.stdout_bytes == stored.data

    checked = CliRunner().invoke(
        cli.app,
        ["verify-proof", str(tmp_path / "proof.json"), "--digest", str(tmp_path / "digest-1.json")],
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "EVENTS_TABLE": ""},  # offline
    )
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith(f"verified: event {event.event_id} (payment#bravo v2)")

    assert ledger.run("digest", "write").exit_code == 0
    (tmp_path / "digest-2.json").write_bytes(ledger.run("digest", "get").stdout_bytes)
    wrong = CliRunner().invoke(
        cli.app,
        [
            "verify-proof",
            str(tmp_path / "proof.json"),
            "--digest",
            str(tmp_path / "digest-2.json"),
            "--json",
        ],
    )
    assert wrong.exit_code == 6, wrong.output
    assert json.loads(wrong.stdout)["error"]["code"] == "verification_failed"


def test_proof_of_an_unknown_event_is_not_found(ledger: Ledger) -> None:
    result = ledger.run("proof", "0190b2f0-0000-7000-8000-000000000000")
    assert result.exit_code == 5
    assert json.loads(result.stdout)["error"]["code"] == "not_found"


# ── Alterations of the events table ──────────────────────────────────────────────────────────


def _edit(
    ledger: Ledger, payment: str, version: int, change: Callable[[dict[str, Any]], None]
) -> str:
    item = ledger.item(payment, version)
    change(item)
    ledger.put(item)
    return str(item["event_id"]["S"]) if "event_id" in item else ""


def _flip_one_byte(text: str) -> str:
    """The text with one character changed (a byte of its UTF-8 encoding)."""
    index = len(text) // 2
    return text[:index] + chr(ord(text[index]) ^ 1) + text[index + 1 :]


def test_one_byte_of_a_payload_changed(ledger: Ledger) -> None:
    event_id = _edit(
        ledger,
        "bravo",
        4,
        lambda item: item["payload"].update(S=_flip_one_byte(item["payload"]["S"])),
    )
    code, report = ledger.verify("--chains")
    assert code == 6
    [problem] = report["problems"]
    assert (problem["kind"], problem["stream_id"], problem["version"], problem["event_id"]) == (
        "hash_mismatch",
        "payment#bravo",
        4,
        event_id,
    )
    assert problem["location"] == f"dynamodb://{ledger.table}"


def test_one_byte_of_metadata_changed(ledger: Ledger) -> None:
    def change(item: dict[str, Any]) -> None:
        item["actor"]["M"]["id"]["S"] = _flip_one_byte(item["actor"]["M"]["id"]["S"])

    _edit(ledger, "alpha", 2, change)
    code, report = ledger.verify()
    assert code == 6
    assert ("hash_mismatch", "payment#alpha", 2) in problems(report)
    # The read model was projected from the genuine event and the digest attests the genuine
    # chain: both disagree with the altered history now.
    assert ("projection_unverifiable", "payment#alpha", 5) in problems(report)
    assert ("digest_head_mismatch", "payment#alpha", 5) in problems(report)


def test_one_byte_of_a_hash_changed(ledger: Ledger) -> None:
    _edit(
        ledger, "charlie", 3, lambda item: item["hash"].update(S=_flip_one_byte(item["hash"]["S"]))
    )
    _, report = ledger.verify("--chains")
    assert problems(report) == [
        ("hash_mismatch", "payment#charlie", 3),
        ("prev_hash_mismatch", "payment#charlie", 4),
    ]


def test_an_unreadable_item(ledger: Ledger) -> None:
    _edit(ledger, "alpha", 3, lambda item: item.pop("actor"))
    _, report = ledger.verify("--chains")
    assert problems(report) == [("unreadable_event", "payment#alpha", 3)]
    assert "actor" in report["problems"][0]["detail"]


def test_an_event_deleted(ledger: Ledger) -> None:
    ledger.delete("bravo", 3)
    code, report = ledger.verify("--chains")
    assert code == 6
    assert problems(report) == [("version_gap", "payment#bravo", 4)]
    assert report["problems"][0]["event_id"] == ledger.events["bravo"][3].event_id


def test_the_first_event_deleted(ledger: Ledger) -> None:
    """The stream no longer has a version 1; it is still found and checked."""
    ledger.delete("charlie", 1)
    _, report = ledger.verify("--chains")
    assert problems(report) == [("version_gap", "payment#charlie", 2)]


def test_the_last_event_deleted(ledger: Ledger) -> None:
    ledger.delete("alpha", 5)
    _, report = ledger.verify()
    found = problems(report)
    assert ("digest_head_mismatch", "payment#alpha", 5) in found
    assert ("projection_ahead", "payment#alpha", 5) in found
    assert not any(check == "chains" for check in (p["check"] for p in report["problems"]))


def test_two_events_reordered(ledger: Ledger) -> None:
    """The contents of versions 2 and 3 swapped between their items."""
    second, third = ledger.item("bravo", 2), ledger.item("bravo", 3)
    second["sk"], third["sk"] = third["sk"], second["sk"]
    ledger.put(second)
    ledger.put(third)
    _, report = ledger.verify("--chains")
    found = problems(report)
    assert ("prev_hash_mismatch", "payment#bravo", 2) in found
    assert ("hash_mismatch", "payment#bravo", 2) in found
    assert ("hash_mismatch", "payment#bravo", 3) in found
    assert {p["stream_id"] for p in report["problems"]} == {"payment#bravo"}


def test_history_rewritten_with_valid_hashes_is_caught_by_the_digest(ledger: Ledger) -> None:
    """A forger with write access alters version 2 and recomputes every later hash: the chains
    verify, the digest does not."""
    events = ledger.store.load(payment_stream_id("charlie"))
    previous = events[0].hash
    for event in events[1:]:
        payload = json.loads(event.payload)
        if event.version == 2:
            payload["reason"] = "rewritten"
        forged = RecordedEvent(
            **{**_fields(event), "payload": canonical_json(payload), "prev_hash": previous}
        )
        forged = RecordedEvent(
            **{**_fields(forged), "hash": chain_hash(previous, hash_document(forged))}
        )
        ledger.put(event_to_item(forged))
        previous = forged.hash
    code, report = ledger.verify("--chains", "--digests")
    assert code == 6
    assert problems(report) == [("digest_head_mismatch", "payment#charlie", 5)]
    assert report["problems"][0]["location"] == f"s3://{ledger.bucket}/{digest_key(1)}"
    proof = ledger.run("proof", events[1].event_id, "--payment", "charlie")
    assert proof.exit_code == 1
    assert json.loads(proof.stdout)["error"]["code"] == "chain_broken"


def test_unbalanced_postings_with_a_valid_chain(ledger: Ledger) -> None:
    """An event appended with a valid hash whose postings credit less than they debit: every
    chain verifies, debits == credits does not."""
    refunded = ledger.store.load(payment_stream_id("alpha"))[-1]
    payload = json.loads(refunded.payload)
    for line in payload["postings"]:
        if line["direction"] == "credit":
            line["amount_minor"] -= 1
    appended = _next_event([replace(refunded, payload=canonical_json(payload))])
    ledger.store.append([appended])
    code, report = ledger.verify("--chains")
    assert code == 6
    [problem] = report["problems"]
    assert (problem["check"], problem["kind"]) == ("chains", "unbalanced_postings")
    assert (problem["stream_id"], problem["version"], problem["event_id"]) == (
        "payment#alpha",
        6,
        appended.event_id,
    )
    assert "EUR posted: debits 800 but credits 799" in problem["detail"]


def _fields(event: RecordedEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in RecordedEvent.__dataclass_fields__}


# ── Alterations of the read model and the digests ────────────────────────────────────────────


def test_a_read_model_item_altered(ledger: Ledger) -> None:
    ledger.client.update_item(
        TableName=ledger.state_table,
        Key={"payment_id": {"S": "bravo"}},
        UpdateExpression="SET amount_refunded_minor = :v",
        ExpressionAttributeValues={":v": {"N": "1"}},
    )
    code, report = ledger.verify("--projections")
    assert code == 6
    [problem] = report["problems"]
    assert (problem["kind"], problem["stream_id"], problem["version"]) == (
        "projection_mismatch",
        "payment#bravo",
        5,
    )
    assert "amount_refunded_minor 1 (replay: 200)" in problem["detail"]
    assert problem["location"] == f"dynamodb://{ledger.state_table}"


def test_a_lagging_read_model_is_not_a_problem(ledger: Ledger) -> None:
    service = PaymentService(ledger.store)
    service.execute(RefundPayment("alpha", "1.00"), CommandContext("late", ACTOR))
    code, report = ledger.verify()
    assert code == 0, report
    assert report["counts"] == {"payment_state": {"behind": 1}}


def test_a_digest_overwritten(ledger: Ledger) -> None:
    assert ledger.run("digest", "write").exit_code == 0
    ledger.s3.put_object(Bucket=ledger.bucket, Key=digest_key(1), Body=b'{"forged": true}')
    code, report = ledger.verify("--digests")
    assert code == 6
    [problem] = report["problems"]
    assert problem["kind"] == "digest_overwritten"
    assert problem["location"] == f"s3://{ledger.bucket}/{digest_key(1)}"
    # The first version, the one Object Lock keeps, is still what is read.
    stored = S3DigestStore(ledger.s3, ledger.bucket).read(digest_key(1))
    assert stored is not None
    assert stored.data.startswith(b'{"created_at"')


def test_a_digest_deleted(ledger: Ledger) -> None:
    assert ledger.run("digest", "write").exit_code == 0
    ledger.s3.delete_object(Bucket=ledger.bucket, Key=digest_key(1))  # a delete marker
    _, report = ledger.verify("--digests")
    assert [p["kind"] for p in report["problems"]] == ["digest_overwritten"]


def test_object_lock_refuses_to_delete_a_digest_version(ledger: Ledger) -> None:
    versions = ledger.s3.list_object_versions(Bucket=ledger.bucket, Prefix=digest_key(1))
    [version] = versions["Versions"]
    with pytest.raises(ledger.s3.exceptions.ClientError, match="AccessDenied"):
        ledger.s3.delete_object(
            Bucket=ledger.bucket, Key=digest_key(1), VersionId=version["VersionId"]
        )


def test_a_digest_number_is_written_once(ledger: Ledger) -> None:
    store = S3DigestStore(ledger.s3, ledger.bucket)
    assert store.put_new(digest_key(2), b"first") is True
    assert store.put_new(digest_key(2), b"second") is False
    stored = store.read(digest_key(2))
    assert stored is not None
    assert (stored.data, stored.versions) == (b"first", 1)
    assert store.numbers() == [1, 2]


# ── The digest function ──────────────────────────────────────────────────────────────────────


def test_the_digest_lambda_writes_the_next_digest(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ledger.environment.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("handlers.digest", None)
    try:
        digest = importlib.import_module("handlers.digest")
        result = digest.handler({"source": "aws.events"}, FakeLambdaContext("DigestFunction"))
    finally:
        sys.modules.pop("handlers.digest", None)
    assert result["digest"]["number"] == 2
    assert result["DigestsWritten"] == 1
    assert (result["HeadsAttested"], result["HeadsCarried"], result["HeadsRefused"]) == (0, 3, 0)
    code, report = ledger.verify("--digests")
    assert code == 0, report
    assert report["digests"] == 2


def test_a_forged_read_model_head_is_refused(ledger: Ledger) -> None:
    ledger.client.update_item(
        TableName=ledger.state_table,
        Key={"payment_id": {"S": "alpha"}},
        UpdateExpression="SET version = :v, head_hash = :h",
        ExpressionAttributeValues={":v": {"N": "6"}, ":h": {"S": "ab" * 32}},
    )
    ledger.store.append([_next_event(ledger.store.load(payment_stream_id("alpha")))])
    written = ledger.run("digest", "write", "--json")
    assert written.exit_code == 6
    run = json.loads(written.stdout)
    assert [head["stream_id"] for head in run["refused"]] == ["payment#alpha"]
    assert run["digest"]["number"] == 2
    assert ledger.verify("--digests")[0] == 0


def _next_event(stream: list[RecordedEvent]) -> RecordedEvent:
    last = stream[-1]
    event = RecordedEvent(
        **{
            **_fields(last),
            "version": last.version + 1,
            "event_id": str(uuid.uuid4()),
            "prev_hash": last.hash,
        }
    )
    return item_to_event(
        event_to_item(
            RecordedEvent(
                **{**_fields(event), "hash": chain_hash(event.prev_hash, hash_document(event))}
            )
        )
    )


def test_verify_checks_what_is_configured(ledger: Ledger) -> None:
    events_only = ledger.environment | {"DIGEST_BUCKET": "", "PAYMENT_STATE_TABLE": ""}
    result = CliRunner().invoke(cli.app, ["verify", "--json"], env=events_only)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checks"] == ["chains"]
    asked = CliRunner().invoke(cli.app, ["verify", "--digests", "--json"], env=events_only)
    assert asked.exit_code == 1
    assert json.loads(asked.stdout)["error"]["code"] == "configuration_error"
