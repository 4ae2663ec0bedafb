"""The event source mapping of one stream shard, played as Lambda plays it (moto never invokes).

``ShardPump.step`` reads the shard, and when a batch is due invokes the function once and settles
the outcome, with Lambda's rules for stream sources:

- A batch holds at most ``batch_size`` records and 6 MB; it is due when full, when the batching
  window has passed since records were waiting, or at once when it retries a failed batch.
- Success checkpoints after the batch's last record. With ``ReportBatchItemFailures`` the
  function may return ``batchItemFailures``: the records before the lowest failed sequence number
  are done, the rest is retried (an empty, null or unknown ``itemIdentifier`` fails the batch).
- A function error (exception, timeout, crashed runtime, no ``state`` from a windowed function)
  is retried; with ``BisectBatchOnFunctionError`` a batch of several records is split in two
  first, which costs no retry. A retried batch never grows: it ends where the failed one ended.
- After ``maximum_retry_attempts`` retries of the record at the head, or once a record is older
  than ``maximum_record_age_s``, the records are discarded: a message describing them (Lambda's
  stream invocation record) goes to the OnFailure SQS queue, and the shard moves on.
- Tumbling windows (``tumbling_window_s`` > 0): windows are aligned on the epoch, a record belongs
  to the window of its arrival time, a batch never spans two windows, each invocation gets the
  state the previous one of its window returned, and once the window has ended the last
  invocation has ``isFinalInvokeForWindow`` (with the window's remaining records, possibly none).
  A state over 1 MB ends the window early (``isWindowTerminatedEarly``); the window then goes on
  with a fresh state.

The shard's state (``devstack.checkpoints``) is saved after every settled invocation, so a pump
killed at any point and started again redelivers at most the batch in flight: at-least-once, in
order per shard, as Lambda guarantees; exactly-once effects are the consumers' idempotence.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from devstack.checkpoints import CheckpointStore, ShardState
from devstack.functions import Invocation
from devstack.mappings import UNLIMITED, EventSourceMapping, SourceKind
from devstack.streams import ShardCursor, SourceRecord, StreamSource

PAYLOAD_BYTES_MAX = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
WINDOW_STATE_BYTES_MAX = 1024 * 1024
RETRY_DELAY_S = 0.2
RETRY_DELAY_MAX_S = 2.0
RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"
_EVENT_OVERHEAD_BYTES = 2_048  # the event's envelope around its records (window, state keys…)

logger = logging.getLogger(__name__)

Invoke = Callable[[dict[str, Any]], Invocation]


class DeadLetters:
    """The OnFailure destination of a mapping: an SQS queue, by ARN."""

    def __init__(self, sqs_client: Any, queue_arn: str) -> None:
        _, _, service, _, account, name = queue_arn.split(":", 5)
        assert service == "sqs", f"only SQS OnFailure destinations run locally: {queue_arn}"
        self.queue_arn = queue_arn
        self._client = sqs_client
        self._queue_url = sqs_client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
            "QueueUrl"
        ]

    def send(self, message: Mapping[str, Any]) -> None:
        self._client.send_message(QueueUrl=self._queue_url, MessageBody=json.dumps(message))


@dataclass(frozen=True, slots=True)
class Batch:
    records: Sequence[SourceRecord]
    window_start: float | None = None
    final: bool = False
    terminated_early: bool = False


class _Result(Enum):
    SUCCESS = "success"
    PARTIAL = "partial"  # records before ``failed_index`` are done
    ERROR = "error"  # the invocation failed as a whole


@dataclass(frozen=True, slots=True)
class _Outcome:
    result: _Result
    failed_index: int = 0
    state: dict[str, Any] | None = None


class ShardPump:
    """One (mapping, shard): call ``step`` in a loop; it returns True when it did something."""

    def __init__(
        self,
        mapping: EventSourceMapping,
        source: StreamSource,
        shard_id: str,
        invoke: Invoke,
        store: CheckpointStore,
        *,
        function_arn: str = "",
        dead_letters: DeadLetters | None = None,
        clock: Callable[[], float] = time.time,
        retry_delay_s: float = RETRY_DELAY_S,
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        assert source.arn == mapping.source_arn
        self.mapping = mapping
        self.source = source
        self.shard_id = shard_id
        self.function_arn = function_arn
        self._invoke = invoke
        self._store = store
        self._dead_letters = dead_letters
        self._clock = clock
        self._retry_delay_s = retry_delay_s
        self._draining = draining
        self._reset()

    def _reset(self) -> None:
        """Back to what is on disk: the checkpoint, and the shard re-read from there."""
        self.state = self._store.load(self.mapping.name, self.shard_id)
        self._cursor = ShardCursor(
            self.source,
            self.shard_id,
            after=self.state.checkpoint,
            position=self.mapping.starting_position,
        )
        self.buffer: list[SourceRecord] = []
        self._waiting_since: float | None = None
        self._complete_until = 0.0  # every record that arrived before this time is buffered
        self._not_before = 0.0

    # ── The loop ──────────────────────────────────────────────────────────────────────────

    def step(self) -> bool:
        self._fill()
        if self._expire():
            return True
        batch = self._next_batch()
        if batch is None:
            return False
        self._run(batch)
        return True

    def recover(self) -> None:
        """After ``step`` raised (a lost endpoint, a bug): trust nothing after the saved state."""
        self._reset()

    @property
    def _key(self) -> tuple[str, str]:
        return self.mapping.name, self.shard_id

    def _fill(self) -> None:
        wanted = self.mapping.batch_size + 1 - len(self.buffer)
        if wanted <= 0:
            return
        asked = min(wanted, self.source.read_max)
        polled_at = self._clock()
        records = self._cursor.read(asked)
        if records and not self.buffer:
            self._waiting_since = self._clock()
        self.buffer.extend(records)
        if len(records) < asked:
            self._complete_until = polled_at

    def _expire(self) -> bool:
        """Discard the leading records older than the mapping allows (never invoked)."""
        age_max = self.mapping.maximum_record_age_s
        if age_max == UNLIMITED or not self.buffer:
            return False
        now = self._clock()
        expired = 0
        while expired < len(self.buffer) and now - self.buffer[expired].arrival_s > age_max:
            expired += 1
        if not expired:
            return False
        self._discard(self.buffer[:expired], RECORD_AGE_EXCEEDED, invoked=False)
        self._save()
        return True

    # ── Choosing the next batch ──────────────────────────────────────────────────────────

    def _next_batch(self) -> Batch | None:
        if self._clock() < self._not_before:
            return None
        if self.mapping.tumbling_window_s:
            return self._window_batch()
        records = self._candidates(self.buffer)
        if records and self._due(records):
            return Batch(records)
        return None

    def _candidates(self, records: Sequence[SourceRecord]) -> list[SourceRecord]:
        """The leading records one invocation may take: batch size, payload, retry bound."""
        bound = int(self.state.bounds[0]) if self.state.bounds else None
        taken: list[SourceRecord] = []
        size = _EVENT_OVERHEAD_BYTES + len(json.dumps(self.state.window_state))
        for record in records:
            if len(taken) == self.mapping.batch_size:
                break
            if bound is not None and record.order > bound:
                break
            if taken and size + record.size_bytes > PAYLOAD_BYTES_MAX:
                break
            size += record.size_bytes
            taken.append(record)
        return taken

    def _due(self, records: Sequence[SourceRecord]) -> bool:
        if self.state.bounds or len(records) >= self.mapping.batch_size:
            return True
        if self._draining():  # the batching window is a longest wait, never a promise
            return True
        if len(records) < len(self.buffer):  # cut by the payload limit: as full as it gets
            return True
        waited = self._clock() - (self._waiting_since or self._clock())
        return waited >= self.mapping.batching_window_s

    def _window_batch(self) -> Batch | None:
        size_s = self.mapping.tumbling_window_s
        if self.state.window_terminated_early:
            return Batch((), self.state.window_start, final=True, terminated_early=True)
        start = self.state.window_start
        if start is None:
            if not self.buffer:
                return None
            start = _window_of(self.buffer[0].arrival_s, size_s)
        end = start + size_s
        # Records that arrived before the open window (clock skew) belong to it, never dropped.
        count = 0
        while count < len(self.buffer) and self.buffer[count].arrival_s < end:
            count += 1
        in_window = self.buffer[:count]
        later_seen = len(in_window) < len(self.buffer)
        window_over = later_seen or self._complete_until >= end
        records = self._candidates(in_window)
        if window_over and len(records) == len(in_window):
            return Batch(records, start, final=True)
        if records and self._due(records):
            return Batch(records, start)
        return None

    # ── Invoking and settling ────────────────────────────────────────────────────────────

    def _run(self, batch: Batch) -> None:
        self.state.invocations += 1
        invocation = self._invoke(self._event(batch))
        outcome = self._outcome(batch, invocation)
        if outcome.result is _Result.SUCCESS:
            self._succeeded(batch, outcome)
        elif outcome.result is _Result.PARTIAL:
            self._partially_failed(batch, outcome)
        else:
            self._failed(batch, invocation)
        self._save()

    def _event(self, batch: Batch) -> dict[str, Any]:
        event: dict[str, Any] = {"Records": [record.record for record in batch.records]}
        if batch.window_start is not None:
            end = batch.window_start + self.mapping.tumbling_window_s
            event.update(
                {
                    "window": {"start": _iso(batch.window_start), "end": _iso(end)},
                    "state": {}
                    if batch.window_start != self.state.window_start
                    else (self.state.window_state),
                    "shardId": self.shard_id,
                    "eventSourceARN": self.mapping.source_arn,
                    "isFinalInvokeForWindow": batch.final,
                    "isWindowTerminatedEarly": batch.terminated_early,
                }
            )
        return event

    def _outcome(self, batch: Batch, invocation: Invocation) -> _Outcome:
        if invocation.failed:
            return _Outcome(_Result.ERROR)
        result = invocation.result
        state: dict[str, Any] | None = None
        if batch.window_start is not None:
            state = result.get("state") if isinstance(result, dict) else None
            if not isinstance(state, dict):
                logger.warning("%s %s: a windowed invocation returned no state", *self._key)
                return _Outcome(_Result.ERROR)
        if not self.mapping.report_batch_item_failures or not isinstance(result, dict):
            return _Outcome(_Result.SUCCESS, state=state)
        failures = result.get("batchItemFailures")
        if not failures:
            return _Outcome(_Result.SUCCESS, state=state)
        positions = {record.sequence_number: index for index, record in enumerate(batch.records)}
        indexes: list[int] = []
        for failure in failures if isinstance(failures, list) else [None]:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            # An empty, null or unknown identifier fails the whole batch (Lambda's rule).
            indexes.append(positions.get(identifier, 0) if isinstance(identifier, str) else 0)
        return _Outcome(_Result.PARTIAL, failed_index=min(indexes), state=state)

    def _succeeded(self, batch: Batch, outcome: _Outcome) -> None:
        self._commit(batch.records)
        if batch.window_start is None:
            return
        if batch.terminated_early:
            self.state.window_state, self.state.window_terminated_early = {}, False
        elif batch.final:
            self.state.window_start, self.state.window_state = None, {}
        else:
            assert outcome.state is not None
            self._keep_window_state(batch.window_start, outcome.state)

    def _partially_failed(self, batch: Batch, outcome: _Outcome) -> None:
        done = batch.records[: outcome.failed_index]
        attempts = self.state.attempts + 1 if not done else 1
        self._commit(done)
        if batch.window_start is not None and outcome.state is not None and done:
            self._keep_window_state(batch.window_start, outcome.state)
        self.state.attempts = attempts
        self.state.errors += 1
        self._retry(batch.records[outcome.failed_index :], invoked_error=False)

    def _failed(self, batch: Batch, invocation: Invocation) -> None:
        self.state.errors += 1
        error = invocation.error or {}
        logger.warning(
            "%s %s: invocation of %d records failed: %s: %s",
            *self._key,
            len(batch.records),
            error.get("errorType"),
            str(error.get("errorMessage"))[:500],
        )
        if self.mapping.bisect_on_error and len(batch.records) > 1:
            half = len(batch.records) // 2
            self._bound(batch.records[-1])
            self._bound(batch.records[half - 1])
            return
        self.state.attempts += 1
        self._retry(batch.records, invoked_error=True, final_window=batch.final)

    def _retry(
        self, records: Sequence[SourceRecord], *, invoked_error: bool, final_window: bool = False
    ) -> None:
        """Retry ``records`` (never more) later, or give up on them past the retry limit."""
        limit = self.mapping.maximum_retry_attempts
        if limit != UNLIMITED and self.state.attempts > limit:
            self._discard(records, RETRY_ATTEMPTS_EXHAUSTED, invoked=True, error=invoked_error)
            if final_window or not records:
                # A window whose last invocation keeps failing ends without it.
                self.state.window_start, self.state.window_state = None, {}
                self.state.window_terminated_early = False
            return
        if records:
            self._bound(records[-1])
        delay = min(self._retry_delay_s * 2 ** max(0, self.state.attempts - 1), RETRY_DELAY_MAX_S)
        self._not_before = self._clock() + delay

    def _keep_window_state(self, window_start: float, state: dict[str, Any]) -> None:
        self.state.window_start, self.state.window_state = window_start, state
        if len(json.dumps(state)) > WINDOW_STATE_BYTES_MAX:
            self.state.window_terminated_early = True

    def _bound(self, record: SourceRecord) -> None:
        """Make ``record`` the end of the next batch (retried or bisected batches never grow)."""
        if not self.state.bounds or int(self.state.bounds[0]) != record.order:
            self.state.bounds.insert(0, record.sequence_number)

    def _commit(self, records: Sequence[SourceRecord]) -> None:
        if not records:
            return
        assert [record.sequence_number for record in self.buffer[: len(records)]] == [
            record.sequence_number for record in records
        ], "a batch is the head of the buffer"
        del self.buffer[: len(records)]
        self.state.checkpoint = records[-1].sequence_number
        self.state.attempts = 0
        last = records[-1].order
        self.state.bounds = [bound for bound in self.state.bounds if int(bound) > last]
        self._waiting_since = self._clock() if self.buffer else None

    def _discard(
        self,
        records: Sequence[SourceRecord],
        condition: str,
        *,
        invoked: bool,
        error: bool = True,
    ) -> None:
        logger.error("%s %s: discarding %d records (%s)", *self._key, len(records), condition)
        if records and self._dead_letters is not None:
            self._dead_letters.send(
                self.failure_record(records, condition, invoked=invoked, error=error)
            )
        self.state.discarded += len(records)
        self._commit(records)

    def failure_record(
        self,
        records: Sequence[SourceRecord],
        condition: str,
        *,
        invoked: bool,
        error: bool = True,
    ) -> dict[str, Any]:
        """What Lambda sends to a stream mapping's OnFailure destination: the batch described,
        not its records (they stay readable in the stream until it trims them)."""
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if invoked and error:
            response["functionError"] = "Unhandled"
        info_key = (
            "DDBStreamBatchInfo" if self.source.kind is SourceKind.DYNAMODB else "KinesisBatchInfo"
        )
        return {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": self.state.attempts,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(self._clock(), milliseconds=True),
            info_key: {
                "shardId": self.shard_id,
                "startSequenceNumber": records[0].sequence_number,
                "endSequenceNumber": records[-1].sequence_number,
                "approximateArrivalOfFirstRecord": _iso(records[0].arrival_s, milliseconds=True),
                "approximateArrivalOfLastRecord": _iso(records[-1].arrival_s, milliseconds=True),
                "batchSize": len(records),
                "streamArn": self.mapping.source_arn,
            },
        }

    def _save(self) -> None:
        self._store.save(self.mapping.name, self.shard_id, self.state)

    def snapshot(self) -> ShardState:
        return ShardState.from_dict(self.state.to_dict())


def _window_of(arrival_s: float, size_s: int) -> float:
    return float(int(arrival_s // size_s) * size_s)


def _iso(epoch_s: float, *, milliseconds: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch_s, UTC)
    if milliseconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
