"""The projection Lambda (handlers/project.py) on Lambda-shaped DynamoDB Streams events.

No network: the projections are an in-memory fake implementing ``projections.core.Projection``
with its exact semantics (duplicates skipped, next version applied, a gap fails the stream), plus
failures injected per stream. Events come from the real service, records from
``tests.stream_events`` (validated with Powertools' own model), and the response is built by
Powertools' ``BatchProcessor``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from ledger.domain.payment import (
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    InitiatePayment,
    SettlePayment,
)
from ledger.dynamodb import event_to_item
from ledger.envelope import RecordedEvent, payment_stream_id
from ledger.service import PaymentService
from projections.core import ApplyResult
from tests.lambda_context import FakeLambdaContext
from tests.stream_events import (
    Shard,
    insert_event,
    insert_record,
    modify_record,
    remove_record,
    sequence_number,
    stream_event,
    stream_record,
)
from tests.unit.conftest import context

with pytest.MonkeyPatch.context() as _patch:
    # handlers.project wires its projections at import (a client, no call); tests pass fakes.
    _patch.setenv("EVENTS_TABLE", "payledger-unit-tests-never-called")
    _patch.setenv("PAYMENT_STATE_TABLE", "payledger-unit-tests-never-called")
    from handlers import project

A = payment_stream_id("pay-a")
B = payment_stream_id("pay-b")


class FakeProjection:
    """An in-memory ``Projection``: last applied version per stream, failures injected."""

    def __init__(self, name: str = "fake", *, fail_at: Mapping[str, int] | None = None) -> None:
        self.name = name
        self.fail_at = dict(fail_at or {})
        self.versions: dict[str, int] = {}
        self.calls: list[list[RecordedEvent]] = []

    def apply(self, events: Sequence[RecordedEvent]) -> ApplyResult:
        self.calls.append(list(events))
        result = ApplyResult()
        for event in events:
            if event.stream_id in result.failures:
                continue
            current = self.versions.get(event.stream_id, 0)
            if event.version <= current:
                result.duplicates += 1
            elif event.version > current + 1:
                result.fail(event, "version gap")
            elif self.fail_at.get(event.stream_id) == event.version:
                result.fail(event, "injected failure")
            else:
                self.versions[event.stream_id] = event.version
                result.applied += 1
        return result


class ExplodingProjection:
    name = "exploding"

    def apply(self, events: Sequence[RecordedEvent]) -> ApplyResult:
        raise ConnectionError("database connection lost")


# ── Histories and batches ────────────────────────────────────────────────────────────────────


def lifecycle(service: PaymentService, payment_id: str) -> list[RecordedEvent]:
    """Five events: initiated, approved, authorized, captured, settled."""
    for index, command in enumerate(
        [
            InitiatePayment(payment_id, "10.00", "EUR", "m-1", "c-1"),
            AssessRisk(payment_id, "approve", "0.1", "low risk"),
            AuthorizePayment(payment_id),
            CapturePayment(payment_id, "10.00"),
            SettlePayment(payment_id),
        ]
    ):
        service.execute(command, context(f"{payment_id}-{index}"))
    return service.load(payment_id)


def interleave(*streams: Sequence[RecordedEvent]) -> list[RecordedEvent]:
    """a1 b1 a2 b2 …: the order in which concurrent payments reach one shard."""
    merged: list[RecordedEvent] = []
    for position in range(max(len(stream) for stream in streams)):
        merged.extend(stream[position] for stream in streams if position < len(stream))
    return merged


@pytest.fixture
def histories(service: PaymentService) -> dict[str, list[RecordedEvent]]:
    return {A: lifecycle(service, "pay-a"), B: lifecycle(service, "pay-b")}


def failed_identifiers(response: Mapping[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def records_of(event: Mapping[str, Any], *keys: tuple[str, int]) -> list[str]:
    """Sequence numbers of the INSERT records of (stream id, version) ``keys``, in batch order."""
    wanted = set(keys)
    return [
        sequence_number(record)
        for record in event["Records"]
        if record["eventName"] == "INSERT"
        and (record["dynamodb"]["Keys"]["pk"]["S"], int(record["dynamodb"]["Keys"]["sk"]["N"]))
        in wanted
    ]


def versions(stream_id: str, numbers: Iterable[int]) -> list[tuple[str, int]]:
    return [(stream_id, number) for number in numbers]


# ── Ordering ─────────────────────────────────────────────────────────────────────────────────


def test_a_clean_batch_is_applied_in_one_call_in_batch_order(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    events = interleave(histories[A], histories[B])
    fake = FakeProjection()

    response = project.process(insert_event(events), [fake])

    assert response == {"batchItemFailures": []}
    assert fake.calls == [events]
    assert fake.versions == {A: 5, B: 5}


def test_a_failed_version_fails_it_and_every_later_record_of_its_stream_only(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    event = insert_event(interleave(histories[A], histories[B]))
    fake = FakeProjection(fail_at={A: 3})

    response = project.process(event, [fake])

    assert failed_identifiers(response) == records_of(event, *versions(A, [3, 4, 5]))
    assert len(fake.calls) == 1
    assert fake.versions == {A: 2, B: 5}


def test_failures_of_every_projection_hold_the_stream_from_the_earliest(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    event = insert_event(interleave(histories[A], histories[B]))
    first = FakeProjection("first", fail_at={A: 4})
    second = FakeProjection("second", fail_at={A: 2, B: 5})

    response = project.process(event, [first, second])

    expected = records_of(event, *versions(A, [2, 3, 4, 5]), (B, 5))
    assert failed_identifiers(response) == expected
    assert len(first.calls) == len(second.calls) == 1
    assert first.calls == second.calls


def test_lambda_redelivery_from_the_checkpoint_completes_the_streams(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    """Lambda resumes at the lowest failed sequence number; the rest are duplicates."""
    shard = Shard()
    records = [insert_record(e, shard) for e in interleave(histories[A], histories[B])]
    fake = FakeProjection(fail_at={B: 2})

    first = project.process(stream_event(records), [fake])
    checkpoint = min(int(number) for number in failed_identifiers(first))
    fake.fail_at.clear()
    redelivered = [record for record in records if int(sequence_number(record)) >= checkpoint]
    second = project.process(stream_event(redelivered), [fake])

    assert failed_identifiers(second) == []
    assert fake.versions == {A: 5, B: 5}


def test_duplicates_are_reported_as_success(histories: dict[str, list[RecordedEvent]]) -> None:
    fake = FakeProjection()
    fake.versions = {A: 3}

    response = project.process(insert_event(histories[A]), [fake])

    assert response == {"batchItemFailures": []}
    assert fake.versions == {A: 5}


def test_a_batch_whose_every_record_fails_is_reported_not_raised(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    event = insert_event(histories[A])

    response = project.process(event, [FakeProjection(fail_at={A: 1})])

    assert failed_identifiers(response) == records_of(event, *versions(A, range(1, 6)))


def test_an_exception_from_a_projection_fails_the_invocation(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    """Not a stream failure: Lambda retries (and bisects) the whole batch."""
    with pytest.raises(ConnectionError):
        project.process(insert_event(histories[A]), [FakeProjection(), ExplodingProjection()])


# ── Poison records ───────────────────────────────────────────────────────────────────────────


def _without_actor(item: dict[str, Any]) -> None:
    del item["actor"]


def _unknown_actor_kind(item: dict[str, Any]) -> None:
    item["actor"]["M"]["kind"] = {"S": "robot"}


def _unknown_event_type(item: dict[str, Any]) -> None:
    item["event_type"] = {"S": "PaymentTeleported"}


def _unknown_schema_version(item: dict[str, Any]) -> None:
    item["schema_version"] = {"N": "99"}


def _invalid_payload(item: dict[str, Any]) -> None:
    item["payload"] = {"S": json.dumps({"merchant_id": "m-1", "decision": "maybe"})}


def _not_json_payload(item: dict[str, Any]) -> None:
    item["payload"] = {"S": "{not json"}


def _mistyped_version(item: dict[str, Any]) -> None:
    item["schema_version"] = {"S": "1"}


def _image_of_another_version(item: dict[str, Any]) -> None:
    item["sk"] = {"N": "4"}


@pytest.mark.parametrize(
    "corrupt",
    [
        _without_actor,
        _unknown_actor_kind,
        _unknown_event_type,
        _unknown_schema_version,
        _invalid_payload,
        _not_json_payload,
        _mistyped_version,
        _image_of_another_version,
    ],
)
def test_a_poison_record_holds_only_its_own_stream(
    histories: dict[str, list[RecordedEvent]], corrupt: Any
) -> None:
    shard = Shard()
    records = []
    for event in interleave(histories[A], histories[B]):
        image = event_to_item(event)
        if (event.stream_id, event.version) == (A, 2):
            corrupt(image)
        records.append(insert_record(event, shard, new_image=image))
    event = stream_event(records)
    fake = FakeProjection()

    response = project.process(event, [fake])

    assert failed_identifiers(response) == records_of(event, *versions(A, [2, 3, 4, 5]))
    [applied] = fake.calls
    assert [(e.stream_id, e.version) for e in applied] == [(A, 1), *versions(B, range(1, 6))]
    assert fake.versions == {A: 1, B: 5}


def test_a_record_whose_key_is_unreadable_holds_every_later_record(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    shard = Shard()
    events = interleave(histories[A], histories[B])
    records = [insert_record(event, shard) for event in events]
    unreadable = stream_record("INSERT", {"pk": {"N": "1"}}, shard.next_sequence_number())
    records.insert(4, unreadable)  # after a1 b1 a2 b2
    event = stream_event(records)
    fake = FakeProjection()

    response = project.process(event, [fake])

    assert failed_identifiers(response) == [sequence_number(r) for r in records[4:]]
    assert fake.calls == [events[:4]]


# ── Records that are not events ──────────────────────────────────────────────────────────────


def test_remove_and_modify_records_are_ignored(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    shard = Shard()
    a1, b1 = histories[A][0], histories[B][0]
    records = [
        insert_record(a1, shard),
        remove_record(a1, shard),
        modify_record(b1, shard),
        insert_record(b1, shard),
    ]
    fake = FakeProjection()

    response = project.process(stream_event(records), [fake])

    assert response == {"batchItemFailures": []}
    assert fake.calls == [[a1, b1]]


def test_a_later_non_insert_record_of_a_held_stream_fails_too(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    """Never report a later record of a stream succeeded after an earlier one failed."""
    shard = Shard()
    a1, a2 = histories[A][:2]
    records = [insert_record(a1, shard), insert_record(a2, shard), remove_record(a1, shard)]

    response = project.process(stream_event(records), [FakeProjection(fail_at={A: 2})])

    assert failed_identifiers(response) == [sequence_number(r) for r in records[1:]]


# ── The Lambda entry point ───────────────────────────────────────────────────────────────────


def test_the_handler_reports_failures_and_emits_metrics(
    histories: dict[str, list[RecordedEvent]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shard = Shard()
    records = [insert_record(e, shard) for e in interleave(histories[A], histories[B])]
    records.append(remove_record(histories[A][0], shard))
    event = stream_event(records)
    fake = FakeProjection(fail_at={B: 4})
    monkeypatch.setattr(project, "projections", [fake])
    project.metrics.clear_metrics()  # counts left by the tests calling process() directly
    capsys.readouterr()

    response = project.handler(event, FakeLambdaContext("payledger-project", timeout_ms=60000))  # type: ignore[arg-type]

    assert failed_identifiers(response) == records_of(event, (B, 4), (B, 5))
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    batch = next(blob for blob in blobs if "RecordsReceived" in blob)
    counts = {name: batch[name] for name in ("RecordsReceived", "RecordsIgnored", "RecordsFailed")}
    assert counts == {"RecordsReceived": [11], "RecordsIgnored": [1], "RecordsFailed": [2]}
    applied = next(blob for blob in blobs if "EventsApplied" in blob)
    assert (applied["EventsApplied"], applied["projection"]) == ([8], "fake")


def test_the_module_wires_the_payment_state_projection() -> None:
    assert [projection.name for projection in project.projections] == ["payment_state"]


def test_built_events_match_what_lambda_delivers(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    event = insert_event(histories[A])
    record = event["Records"][0]
    assert record["eventSource"] == "aws:dynamodb"
    assert record["dynamodb"]["StreamViewType"] == "NEW_IMAGE"
    assert record["dynamodb"]["NewImage"] == event_to_item(histories[A][0])
    numbers = [int(sequence_number(r)) for r in event["Records"]]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)


def test_a_duplicate_stream_image_in_one_batch_is_a_duplicate(
    histories: dict[str, list[RecordedEvent]],
) -> None:
    """A retried write never produces two INSERTs, but the projection must not care."""
    a1, a2 = histories[A][:2]
    fake = FakeProjection()

    response = project.process(insert_event([a1, a2, replace(a2)]), [fake])

    assert response == {"batchItemFailures": []}
    assert fake.versions == {A: 2}
