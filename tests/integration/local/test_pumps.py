"""The local runtime's event source mappings against real DynamoDB Streams and Kinesis shards on
the moto server, with Lambda's rules: batch size and window, partial batch responses, retries,
bisect, the OnFailure queue, record age, order per shard, tumbling windows."""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamLambdaOnFailureDestinationModel,
    DynamoDBStreamModel,
    KinesisDataStreamModel,
)

from devstack.checkpoints import CheckpointStore
from devstack.functions import Invocation
from devstack.mappings import EventSourceMapping
from devstack.pump import RECORD_AGE_EXCEEDED, RETRY_ATTEMPTS_EXHAUSTED, ShardPump
from tests.integration.local.conftest import (
    FUNCTION_ARN,
    Aws,
    FakeClock,
    RecordingFunction,
    drain,
    pumps,
    sequence_number,
    source_for,
)

BILLION_S = 10**9  # a window every record of a test falls in (2001-09-09 to 2033-05-18)


def mapping(source_arn: str, **settings: Any) -> EventSourceMapping:
    return EventSourceMapping(
        name="consumer", function="consumer", source_arn=source_arn, **settings
    )


def fail_with(error_type: str = "RuntimeError") -> Invocation:
    return Invocation(error={"errorType": error_type, "errorMessage": "boom", "stackTrace": []})


def failures(*sequence_numbers: str) -> Invocation:
    return Invocation(
        result={"batchItemFailures": [{"itemIdentifier": number} for number in sequence_numbers]}
    )


def test_batches_follow_the_batch_size_in_shard_order(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    aws.put_items(table, 25)
    function = RecordingFunction()

    (pump,) = pumps(aws, mapping(stream_arn, batch_size=10), function, checkpoints)
    drain([pump])

    assert [len(batch) for batch in function.batches()] == [10, 10, 5]
    numbers = [int(number) for batch in function.batches() for number in batch]
    assert numbers == sorted(set(numbers))
    assert len(numbers) == 25
    for event in function.events:
        DynamoDBStreamModel.model_validate(event)
        assert {record["eventSourceARN"] for record in event["Records"]} == {stream_arn}
        assert {record["eventName"] for record in event["Records"]} == {"INSERT"}
    assert checkpoints.load("consumer", pump.shard_id).checkpoint == str(numbers[-1])


def test_the_batching_window_waits_for_the_batch_to_fill(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    clock = FakeClock(time.time())
    function = RecordingFunction()
    settings = mapping(stream_arn, batch_size=100, batching_window_s=5)
    (pump,) = pumps(aws, settings, function, checkpoints, clock=clock)

    aws.put_items(table, 3)
    assert not pump.step()
    clock.now += 4.9
    aws.put_items(table, 2, start=3)
    assert not pump.step()
    clock.now += 0.2
    assert pump.step()

    assert [len(batch) for batch in function.batches()] == [5]


def test_a_full_batch_does_not_wait_for_the_window(aws: Aws, checkpoints: CheckpointStore) -> None:
    table, stream_arn = aws.events_table()
    function = RecordingFunction()
    settings = mapping(stream_arn, batch_size=4, batching_window_s=300)
    (pump,) = pumps(aws, settings, function, checkpoints, clock=FakeClock(time.time()))
    aws.put_items(table, 6)

    drain([pump])

    assert [len(batch) for batch in function.batches()] == [4]
    assert len(pump.buffer) == 2


def test_while_draining_a_batch_does_not_wait_out_its_window(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    function = RecordingFunction()
    settings = mapping(stream_arn, batch_size=100, batching_window_s=300)
    source = source_for(aws, stream_arn)
    (shard_id,) = source.shard_ids()
    draining = False
    pump = ShardPump(
        settings,
        source,
        shard_id,
        function,
        checkpoints,
        clock=FakeClock(time.time()),
        draining=lambda: draining,
    )
    aws.put_items(table, 3)

    assert not pump.step()
    draining = True
    assert pump.step()

    assert [len(batch) for batch in function.batches()] == [3]


def test_a_partial_failure_checkpoints_before_the_lowest_failed_record(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    aws.put_items(table, 10)
    answers = iter([])

    def behaviour(event: dict[str, Any]) -> Invocation:
        return next(answers, Invocation(result={"batchItemFailures": []}))

    function = RecordingFunction(behaviour)
    settings = mapping(stream_arn, batch_size=10, report_batch_item_failures=True)
    (pump,) = pumps(aws, settings, function, checkpoints)
    pump._fill()
    numbers = [record.sequence_number for record in pump.buffer]
    answers = iter([failures(numbers[7], numbers[4])])

    assert pump.step()
    assert checkpoints.load("consumer", pump.shard_id).checkpoint == numbers[3]
    aws.put_items(table, 5, start=10)  # a retried batch never grows: these come after it
    drain([pump])

    batches = function.batches()
    assert batches[0] == numbers
    assert batches[1] == numbers[4:]
    assert len(batches[2]) == 5
    assert int(batches[2][0]) > int(numbers[-1])
    assert checkpoints.load("consumer", pump.shard_id).checkpoint == batches[2][-1]


def test_without_report_batch_item_failures_a_reported_failure_is_ignored(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    aws.put_items(table, 3)
    function = RecordingFunction(lambda event: failures(sequence_number(event["Records"][0])))

    (pump,) = pumps(aws, mapping(stream_arn), function, checkpoints)
    drain([pump])

    assert len(function.events) == 1
    assert checkpoints.load("consumer", pump.shard_id).checkpoint == function.batches()[0][-1]


def test_an_unknown_or_empty_item_identifier_fails_the_whole_batch(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    aws.put_items(table, 3)
    answers = iter(
        [
            Invocation(result={"batchItemFailures": [{"itemIdentifier": "42"}]}),
            Invocation(result={"batchItemFailures": [{"itemIdentifier": ""}]}),
            Invocation(result={"batchItemFailures": [{"wrongKey": "x"}]}),
        ]
    )
    function = RecordingFunction(lambda event: next(answers, Invocation(result=None)))
    settings = mapping(stream_arn, report_batch_item_failures=True)

    (pump,) = pumps(aws, settings, function, checkpoints)
    drain([pump])

    assert len(function.events) == 4
    assert len({tuple(batch) for batch in function.batches()}) == 1


def test_retries_exhausted_are_described_on_the_on_failure_queue(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    queue_url, queue_arn = aws.queue()
    aws.put_items(table, 4)
    failing = True
    function = RecordingFunction(lambda event: fail_with() if failing else Invocation())
    settings = mapping(
        stream_arn, batch_size=10, maximum_retry_attempts=2, on_failure_arn=queue_arn
    )
    (pump,) = pumps(aws, settings, function, checkpoints)

    drain([pump])
    failing = False
    aws.put_items(table, 2, start=4)
    drain([pump])

    batches = function.batches()
    assert batches[:3] == [batches[0]] * 3  # the first try and two retries
    assert [len(batch) for batch in batches[3:]] == [2]
    (message,) = aws.messages(queue_url)
    record = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(message)
    assert record.request_context.condition == RETRY_ATTEMPTS_EXHAUSTED
    assert record.request_context.approximate_invoke_count == 3
    assert record.request_context.function_arn == FUNCTION_ARN
    assert record.response_context.function_error == "Unhandled"
    info = record.ddb_stream_batch_info
    assert (info.start_sequence_number, info.end_sequence_number) == (
        batches[0][0],
        batches[0][-1],
    )
    assert (info.batch_size, info.shard_id, info.stream_arn) == (4, pump.shard_id, stream_arn)
    assert checkpoints.load("consumer", pump.shard_id).discarded == 4


def test_bisect_isolates_the_failing_record_and_delivers_the_rest_once(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    queue_url, queue_arn = aws.queue()
    aws.put_items(table, 8, streams=8)
    poison = "payment#p5"

    def behaviour(event: dict[str, Any]) -> Invocation:
        keys = {record["dynamodb"]["Keys"]["pk"]["S"] for record in event["Records"]}
        return fail_with() if poison in keys else Invocation()

    function = RecordingFunction(behaviour)
    settings = mapping(
        stream_arn,
        batch_size=8,
        bisect_on_error=True,
        maximum_retry_attempts=1,
        on_failure_arn=queue_arn,
    )
    (pump,) = pumps(aws, settings, function, checkpoints)
    drain([pump])

    sizes = [len(batch) for batch in function.batches()]
    # Halves cost no retry; the failing record alone is retried once, then the other half of its
    # half goes on as one batch.
    assert sizes == [8, 4, 4, 2, 1, 1, 1, 2]
    delivered = [
        record["dynamodb"]["Keys"]["pk"]["S"]
        for event in function.events
        if poison not in {r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]}
        for record in event["Records"]
    ]
    assert sorted(delivered) == sorted(f"payment#p{index}" for index in range(8) if index != 5)
    (message,) = aws.messages(queue_url)
    info = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(
        message
    ).ddb_stream_batch_info
    assert info.batch_size == 1
    assert info.start_sequence_number == info.end_sequence_number == function.batches()[5][0]


def test_bisect_with_a_partial_failure_retries_only_the_remaining_records(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    aws.put_items(table, 6)
    answers = iter([])
    function = RecordingFunction(lambda event: next(answers, Invocation()))
    settings = mapping(stream_arn, bisect_on_error=True, report_batch_item_failures=True)
    (pump,) = pumps(aws, settings, function, checkpoints)
    pump._fill()
    numbers = [record.sequence_number for record in pump.buffer]
    answers = iter([failures(numbers[2])])

    drain([pump])

    assert function.batches() == [numbers, numbers[2:]]


def test_records_older_than_the_maximum_age_are_discarded_unread(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    queue_url, queue_arn = aws.queue()
    aws.put_items(table, 3)
    clock = FakeClock(time.time() + 120)
    function = RecordingFunction()
    settings = mapping(stream_arn, maximum_record_age_s=60, on_failure_arn=queue_arn)
    (pump,) = pumps(aws, settings, function, checkpoints, clock=clock)

    drain([pump])
    clock.now = time.time()
    aws.put_items(table, 2, start=3)
    drain([pump])

    assert [len(batch) for batch in function.batches()] == [2]
    (message,) = aws.messages(queue_url)
    record = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(message)
    assert record.request_context.condition == RECORD_AGE_EXCEEDED
    assert record.ddb_stream_batch_info.batch_size == 3
    assert record.response_context.function_error is None


def test_kinesis_keeps_order_per_shard_and_partition_key(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    stream_arn = aws.kinesis_stream(shards=2)
    aws.put_kinesis(stream_arn, 40, keys=5)
    function = RecordingFunction()

    shard_pumps = pumps(aws, mapping(stream_arn, batch_size=7), function, checkpoints)
    drain(shard_pumps)

    per_shard: dict[str, list[int]] = defaultdict(list)
    per_key: dict[str, list[int]] = defaultdict(list)
    for event in function.events:
        assert 1 <= len(event["Records"]) <= 7
        for record in KinesisDataStreamModel.model_validate(event).Records:
            shard, _, number = record.eventID.partition(":")
            assert number == record.kinesis.sequenceNumber
            assert record.eventSourceARN == stream_arn
            per_shard[shard].append(int(number))
            per_key[record.kinesis.partitionKey].append(json.loads(record.kinesis.data)["n"])
    assert len(shard_pumps) == len(per_shard) == 2
    assert all(numbers == sorted(set(numbers)) for numbers in per_shard.values())
    assert sorted(n for numbers in per_key.values() for n in numbers) == list(range(40))
    assert all(numbers == sorted(numbers) for numbers in per_key.values())


# ── Tumbling windows ─────────────────────────────────────────────────────────────────────────


def counting(event: dict[str, Any]) -> Invocation:
    """A windowed function: counts the window's records and notes each invocation."""
    state = dict(event["state"])
    state["count"] = state.get("count", 0) + len(event["Records"])
    state["invocations"] = state.get("invocations", 0) + 1
    return Invocation(result={"state": state, "batchItemFailures": []})


def test_a_tumbling_window_carries_its_state_and_ends_with_a_final_invoke(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    stream_arn = aws.kinesis_stream()
    aws.put_kinesis(stream_arn, 5)
    clock = FakeClock(time.time())
    function = RecordingFunction(counting)
    settings = mapping(stream_arn, batch_size=2, tumbling_window_s=BILLION_S)
    (pump,) = pumps(aws, settings, function, checkpoints, clock=clock)

    drain([pump])
    assert [event["isFinalInvokeForWindow"] for event in function.events] == [False] * 3
    clock.now = 2 * BILLION_S  # the window's end
    drain([pump])

    events = function.events
    assert [len(event["Records"]) for event in events] == [2, 2, 1, 0]
    assert [event["isFinalInvokeForWindow"] for event in events] == [False, False, False, True]
    assert [event["state"] for event in events] == [
        {},
        {"count": 2, "invocations": 1},
        {"count": 4, "invocations": 2},
        {"count": 5, "invocations": 3},
    ]
    for event in events:
        assert event["window"] == {"start": "2001-09-09T01:46:40Z", "end": "2033-05-18T03:33:20Z"}
        assert event["shardId"] == pump.shard_id
        assert event["eventSourceARN"] == stream_arn
        assert event["isWindowTerminatedEarly"] is False
    state = checkpoints.load("consumer", pump.shard_id)
    assert (state.window_start, state.window_state) == (None, {})


def test_windows_follow_arrival_time_one_final_invoke_each(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    stream_arn = aws.kinesis_stream()
    function = RecordingFunction(counting)
    (pump,) = pumps(aws, mapping(stream_arn, tumbling_window_s=1), function, checkpoints)
    aws.put_kinesis(stream_arn, 3)
    time.sleep(1.05 - time.time() % 1)  # into the next second: the next window
    aws.put_kinesis(stream_arn, 2, start=3)
    deadline = time.time() + 5
    while time.time() < deadline and sum(e["isFinalInvokeForWindow"] for e in function.events) < 2:
        pump.step()

    windows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in function.events:
        windows[event["window"]["start"]].append(event)
    assert len(windows) == 2
    for invocations in windows.values():
        assert [event["isFinalInvokeForWindow"] for event in invocations][-1] is True
        assert sum(event["isFinalInvokeForWindow"] for event in invocations) == 1
        assert invocations[0]["state"] == {}
        for previous, event in itertools.pairwise(invocations):
            assert event["state"] == counting(previous).result["state"]
        start = datetime.fromisoformat(invocations[0]["window"]["start"]).timestamp()
        for event in invocations:
            for record in event["Records"]:
                assert start <= record["kinesis"]["approximateArrivalTimestamp"] < start + 1
    assert sum(len(event["Records"]) for event in function.events) == 5


def test_a_state_over_1_mb_ends_the_window_early_then_it_goes_on_fresh(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    stream_arn = aws.kinesis_stream()
    aws.put_kinesis(stream_arn, 2)
    clock = FakeClock(time.time())

    def big_state(event: dict[str, Any]) -> Invocation:
        grown = {"blob": "x" * (1024 * 1024)} if event["Records"] else dict(event["state"])
        return Invocation(result={"state": grown if not event["state"] else {"small": 1}})

    function = RecordingFunction(big_state)
    settings = mapping(stream_arn, batch_size=1, tumbling_window_s=BILLION_S)
    (pump,) = pumps(aws, settings, function, checkpoints, clock=clock)
    drain([pump])

    flags = [
        (len(e["Records"]), e["isFinalInvokeForWindow"], e["isWindowTerminatedEarly"])
        for e in function.events
    ]
    assert flags == [(1, False, False), (0, True, True), (1, False, False), (0, True, True)]
    assert function.events[2]["state"] == {}


def test_a_windowed_function_must_return_its_state(aws: Aws, checkpoints: CheckpointStore) -> None:
    stream_arn = aws.kinesis_stream()
    aws.put_kinesis(stream_arn, 2)
    answers = iter([Invocation(result={"batchItemFailures": []})])
    function = RecordingFunction(lambda event: next(answers, counting(event)))
    settings = mapping(stream_arn, tumbling_window_s=BILLION_S)
    (pump,) = pumps(aws, settings, function, checkpoints, clock=FakeClock(time.time()))

    drain([pump])

    assert [len(batch) for batch in function.batches()] == [2, 2]
    assert function.events[1]["state"] == {}
    assert pump.state.window_state == {"count": 2, "invocations": 1}


def test_a_restarted_pump_resumes_after_its_checkpoint(
    aws: Aws, checkpoints: CheckpointStore
) -> None:
    table, stream_arn = aws.events_table()
    aws.put_items(table, 6)
    first = RecordingFunction()
    settings = mapping(stream_arn, batch_size=4)
    (pump,) = pumps(aws, settings, first, checkpoints)
    assert pump.step()

    second = RecordingFunction()
    (restarted,) = pumps(aws, settings, second, checkpoints)
    drain([restarted])

    assert [len(batch) for batch in first.batches()] == [4]
    assert [len(batch) for batch in second.batches()] == [2]
    assert int(second.batches()[0][0]) == int(first.batches()[0][-1]) + 1
