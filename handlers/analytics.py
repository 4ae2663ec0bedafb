"""The analytics Lambda: the events' Kinesis stream in tumbling windows → metrics (DESIGN §7).

The event source mapping has ``TumblingWindowInSeconds``: Lambda calls this function one or more
times per window and shard, each time with the state the previous call returned, and a last time
with ``isFinalInvokeForWindow``. Per invocation:
- Every record is decoded (``ledger.changes``, then ``ledger.decoding.decode_event``, the gate
  every consumer shares). Only INSERT changes are events; MODIFY and REMOVE are ignored. An
  undecodable record is poison: it is reported in ``batchItemFailures`` with every later record
  of its partition key (never dropped), and none of them is counted; other keys proceed.
- The events not counted yet are claimed in the ``WindowStore`` (with a database) and folded
  into the window's state (``projections.analytics``); the response is ``{"state",
  "batchItemFailures"}``, the state kept under Lambda's 1 MB (``checked_state``).
- On the final invocation the window's rows are written (one transaction: they replace what an
  earlier attempt wrote) and then its figures are emitted as CloudWatch metrics (EMF on stdout).

Failures and retries. Lambda checkpoints at the lowest failed sequence number and redelivers
every record from there, in the same window (windows are assigned by arrival time). Whether it
keeps the state returned with a partial failure or retries with the previous one, the result is
the same: redelivered records already in the state are recognised as duplicates by their
digests, and a claim left by an attempt whose state was discarded is counted again (see
``projections.postgres.analytics``). Anything raised (a database error, a state over the limit)
fails the invocation: Lambda retries it with the previous state, bisecting, then sends the batch
to the OnFailure destination. Rows are written before metrics are emitted, so a retried final
invocation never emits a window twice; and a final invocation that reports failed records emits
nothing (its records come back, and the invocation that counts them emits the whole window).

Metrics (namespace ``POWERTOOLS_METRICS_NAMESPACE``, dimension ``service``, timestamped at the
window's start; per shard, so CloudWatch's Sum adds the shards up): counts ``PaymentsInitiated``,
``PaymentsAuthorized``, ``PaymentsDeclined`` (= ``RiskDeclined`` + ``PaymentsFailed``),
``RiskApproved``, ``RiskReview``, ``RiskDeclined``, ``PaymentsFailed``, ``PaymentsCaptured``,
``PaymentsRefunded``, and ``ApprovalRate`` / ``DeclineRate`` in percent when the window has an
outcome; with dimensions ``service`` and ``currency``, ``InitiatedVolume``, ``AuthorizedVolume``,
``CapturedVolume``, ``RefundedVolume`` in minor units. No merchant dimension: every merchant
would be a billed custom metric (and alarms need fixed dimensions); per-merchant figures are in
PostgreSQL. A window older than CloudWatch accepts (14 days) is written but not emitted. Each
invocation also emits ``Analytics*`` counts about its records and ``AnalyticsStateBytes``.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamEvent,
    KinesisStreamRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.batch import partial_batch_response
from handlers.bootstrap import ConfigurationError, analytics_settings_from_environment
from handlers.database import build_window_store
from handlers.observability import make_logger
from ledger.changes import decode_change, event_of
from ledger.decoding import decode_event
from ledger.delivery import describe, failed_records
from ledger.domain.errors import UndecodableEventError
from projections.analytics import (
    NO_CLAIMS,
    Figures,
    WindowEvent,
    WindowFold,
    WindowKey,
    WindowRow,
    WindowStore,
    approval_rate_percent,
    checked_state,
    totals,
    totals_by_currency,
)

# CloudWatch drops datapoints more than 14 days old or 2 hours ahead; a margin for the delay
# between emitting and ingesting.
METRIC_AGE_MAX = timedelta(days=14) - timedelta(minutes=5)
METRIC_AHEAD_MAX = timedelta(hours=2) - timedelta(minutes=5)
_COUNTS = {
    "PaymentsInitiated": "initiated_count",
    "PaymentsAuthorized": "authorized_count",
    "PaymentsDeclined": "declined_count",
    "RiskApproved": "risk_approved_count",
    "RiskReview": "risk_review_count",
    "RiskDeclined": "risk_declined_count",
    "PaymentsFailed": "failed_count",
    "PaymentsCaptured": "captured_count",
    "PaymentsRefunded": "refunded_count",
}
_VOLUMES = {
    "InitiatedVolume": "initiated_minor",
    "AuthorizedVolume": "authorized_minor",
    "CapturedVolume": "captured_minor",
    "RefundedVolume": "refunded_minor",
}

logger = make_logger()
tracer = Tracer()

settings = analytics_settings_from_environment()
store: WindowStore | None = build_window_store(settings)
if store is None:
    logger.warning(
        "no database configured: analytics windows are emitted as CloudWatch metrics only,"
        " and a duplicate delivered in a later window is counted again"
    )


@dataclass(frozen=True, slots=True)
class _Record:
    sequence_number: str
    stream_id: str  # the partition key: the item's pk
    name: str | None  # INSERT, MODIFY or REMOVE; None when undecodable
    event: WindowEvent | None  # a decodable INSERT
    poison: str | None  # why the record could not be decoded


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process(event, store, context)


def process(
    event: dict[str, Any],
    store: WindowStore | None,
    context: LambdaContext | None = None,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Fold one tumbling-window invocation; the response with the window's next state."""
    stream = KinesisStreamEvent(event)
    key = _window_key(stream)
    records = [_read_record(record) for record in stream.records]
    failures = _failed_records(records)
    fold = WindowFold.from_state(stream.state, key)
    was_deduplicated = fold.deduplicated
    events = [
        record.event
        for record in records
        if record.event is not None and record.sequence_number not in failures
    ]
    candidates = fold.candidates(events)
    claims = store.claim(key, candidates) if store is not None and candidates else NO_CLAIMS
    counted = fold.fold(candidates, claims)
    state, state_bytes = checked_state(fold, key)
    digests_dropped = was_deduplicated and not fold.deduplicated
    if digests_dropped:
        logger.error(
            "window state limit reached: duplicate digests dropped for the rest of the window",
            extra={"window_start": key.start.isoformat(), "shard_id": key.shard_id},
        )
    if stream.is_final_invoke_for_window:
        _close_window(stream, key, fold, store, failures, clock())
    _emit_invocation(
        records,
        failures,
        {
            "AnalyticsEventsCounted": counted,
            "AnalyticsEventsDuplicate": len(events) - counted,
            "AnalyticsDigestsDropped": int(digests_dropped),
        },
        state_bytes,
    )
    return {
        "state": state,
        **partial_batch_response(event, EventType.KinesisDataStreams, failures, context),
    }


def _window_key(stream: KinesisStreamEvent) -> WindowKey:
    window = stream.window
    if window is None or not stream.shard_id:
        raise ConfigurationError(
            "the analytics function needs TumblingWindowInSeconds on its event source mapping"
            " (the event has no window or shardId)"
        )
    return WindowKey.parse(window.start, window.end, stream.shard_id)


def _read_record(record: KinesisStreamRecord) -> _Record:
    payload = record.kinesis
    sequence_number, partition_key = payload.sequence_number, payload.partition_key
    try:
        change = decode_change(payload.data_as_bytes())
        event = event_of(change)
        decoded = None if event is None else WindowEvent(event, decode_event(event))
    except (UndecodableEventError, binascii.Error) as exc:
        return _Record(sequence_number, partition_key, None, None, f"undecodable: {describe(exc)}")
    return _Record(sequence_number, partition_key, change.event_name, decoded, None)


def _failed_records(records: Sequence[_Record]) -> dict[str, str]:
    """Sequence number -> reason: each poison record and every later one of its stream."""

    def poison(record: _Record) -> str | None:
        if record.poison is not None:
            logger.error(
                "poison record",
                extra={
                    "sequence_number": record.sequence_number,
                    "partition_key": record.stream_id,
                    "reason": record.poison,
                },
            )
        return record.poison

    return failed_records(records, poison)


def _close_window(
    stream: KinesisStreamEvent,
    key: WindowKey,
    fold: WindowFold,
    store: WindowStore | None,
    failures: Mapping[str, str],
    now: datetime,
) -> None:
    rows = fold.rows()
    if store is not None:
        store.write(key, rows, deduplicated=fold.deduplicated)
    details = {
        "window_start": key.start.isoformat(),
        "shard_id": key.shard_id,
        "rows": len(rows),
        "terminated_early": bool(stream.is_window_terminated_early),
        "deduplicated": fold.deduplicated,
    }
    if stream.is_window_terminated_early:
        logger.warning("window terminated early by Lambda", extra=details)
    if failures:
        logger.warning("window not emitted: records failed and come back", extra=details)
    elif not now - METRIC_AGE_MAX <= key.start <= now + METRIC_AHEAD_MAX:
        logger.warning("window outside CloudWatch's time range: not emitted", extra=details)
    else:
        emit_window(key, rows)
        logger.info("window closed", extra=details)


def emit_window(key: WindowKey, rows: Sequence[WindowRow]) -> None:
    """The window's figures as EMF: one document for the totals, one per currency."""
    total = totals(rows)
    metrics = _window_metrics(key)
    for name, figure in _COUNTS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=_figure(total, figure))
    rate = approval_rate_percent(total)
    if rate is not None:
        metrics.add_metric(name="ApprovalRate", unit=MetricUnit.Percent, value=rate)
        metrics.add_metric(name="DeclineRate", unit=MetricUnit.Percent, value=100.0 - rate)
    metrics.flush_metrics()
    for currency, figures in totals_by_currency(rows).items():
        metrics = _window_metrics(key)
        metrics.add_dimension(name="currency", value=currency)
        for name, figure in _VOLUMES.items():
            metrics.add_metric(name=name, unit=MetricUnit.NoUnit, value=_figure(figures, figure))
        metrics.flush_metrics()


def _window_metrics(key: WindowKey) -> EphemeralMetrics:
    metrics = EphemeralMetrics()
    metrics.set_timestamp(key.start)
    return metrics


def _figure(figures: Figures, name: str) -> int:
    value: int = getattr(figures, name)
    return value


def _emit_invocation(
    records: Sequence[_Record],
    failures: Mapping[str, str],
    fold_counts: Mapping[str, int],
    state_bytes: int,
) -> None:
    metrics = EphemeralMetrics()
    counts = {
        "AnalyticsRecordsReceived": len(records),
        "AnalyticsRecordsIgnored": sum(record.name not in (None, "INSERT") for record in records),
        "AnalyticsRecordsPoison": sum(record.poison is not None for record in records),
        "AnalyticsRecordsFailed": len(failures),
        **fold_counts,
    }
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.add_metric(name="AnalyticsStateBytes", unit=MetricUnit.Bytes, value=state_bytes)
    metrics.flush_metrics()
