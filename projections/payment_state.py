"""The payment-state read model: each payment's current state in one DynamoDB item (DESIGN §6).

Item (``PaymentStateTable`` in template.yaml, key ``payment_id``): every field of
``PaymentState`` under the names of ``PaymentSnapshot.to_dict`` (``amount_captured_minor``…), plus
``version``, ``head_hash`` (hash of the last applied event), ``created_at`` and ``updated_at``
(``recorded_at`` of the first and of the last event). A field that is None has no attribute. GSI
``by-merchant`` (``merchant_id``, ``updated_at``) lists a merchant's payments by time.

Guarantees:
- The item of a payment at version n equals ``ledger.service.fold`` of its events 1..n: states are
  computed with the ledger's own ``decode_event`` and ``evolve``, so the two cannot diverge.
- One ``apply`` = one strongly consistent BatchGetItem per 100 payments + one conditional PutItem
  per payment that moved forward (its latest state, never one per event), conditioned on
  ``attribute_not_exists(payment_id) OR version < :new``. A failed condition means the item is
  already at or past that version (a redelivery or a concurrent rebuild): a duplicate, not an
  error. A batch of duplicates only reads.
- Versions at or below the stored one are duplicates; the next version continues the fold from
  the stored item; every event must link to the previous one (``prev_hash`` = head hash).
- A gap (the stored item is behind the first new event, e.g. no item yet and version 4) is filled
  from the events table: one strongly consistent Query for the stream's versions 1..v-1, folded,
  then the batch continues. Failing instead would never heal: Lambda redelivers a failed record
  only until its retries run out, after which it sits in the dead-letter queue and the stream never
  delivers it again, so every later event of that payment would fail too. The same holds for a
  read-model table restored from a backup, or created after the stream's 24-hour retention. The
  events table is the source of truth, and the Query runs only when a gap is seen.

Failures (``ApplyResult.fail`` from the first event not applied; other payments proceed):
- an undecodable payload, an event ``evolve`` refuses, a broken chain link, a gap the events table
  cannot fill (it holds fewer events than the gap needs);
- the item could not be read (BatchGetItem left it unprocessed ``READ_RETRIES_MAX`` times) or
  written (throttled or refused after the client's own retries).
Anything else (the table does not exist, a bug) propagates: the whole batch is retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast, get_args

from botocore.exceptions import BotoCoreError, ClientError

from ledger.decoding import decode_event
from ledger.domain.errors import ChainBrokenError, LedgerError
from ledger.domain.events import RiskDecision
from ledger.domain.payment import STATUSES, PaymentState, Status, evolve
from ledger.domain.validation import check_id
from ledger.envelope import (
    GENESIS_HASH,
    PAYMENT_STREAM_PREFIX,
    RecordedEvent,
    payment_id_of,
    payment_stream_id,
)
from ledger.integrity.merkle import Head
from ledger.service import PaymentSnapshot, fold
from ledger.store import EventStore
from projections.core import ApplyResult

Item = dict[str, Any]

MERCHANT_INDEX = "by-merchant"
BATCH_GET_ITEM_KEYS_MAX = 100  # DynamoDB's limit per BatchGetItem request
READ_RETRIES_MAX = 5
READ_BACKOFF_BASE_S = 0.05
# Writes run on a few threads: a batch can touch hundreds of payments and each PutItem is a round
# trip. At most botocore's default connection pool (10), so no connection is opened per call.
WRITES_PARALLEL_MAX = 8
MERCHANT_PAYMENTS_LIMIT_MAX = 1_000
_QUERY_PAGES_MAX = 100
_WRITE_CONDITION = "attribute_not_exists(payment_id) OR #version < :version"
_RISK_DECISIONS: tuple[str, ...] = get_args(RiskDecision)
# PaymentState field -> item attribute (the name PaymentSnapshot.to_dict uses), by type.
_STRINGS = {
    "payment_id": "payment_id",
    "status": "status",
    "merchant_id": "merchant_id",
    "customer_id": "customer_id",
    "currency": "currency",
}
_OPTIONAL_STRINGS = {
    "description": "description",
    "risk_decision": "risk_decision",
    "risk_score": "risk_score",
    "processor": "processor",
    "hold_until": "hold_until",
    "failure_reason": "failure_reason",
}
_INTEGERS = {
    "amount_minor": "amount_minor",
    "authorized_minor": "amount_authorized_minor",
    "captured_minor": "amount_captured_minor",
    "released_minor": "amount_released_minor",
    "refunded_minor": "amount_refunded_minor",
    "settled_minor": "amount_settled_minor",
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Advance:
    """A payment moved forward by a batch: its latest snapshot and what got it there."""

    snapshot: PaymentSnapshot
    first: RecordedEvent  # the first event of the batch applied to it
    applied: int


class PaymentStateProjection:
    """``Projection`` onto a table shaped like ``PaymentStateTable`` in template.yaml.

    ``client`` is a boto3 low-level DynamoDB client created once per process by the caller;
    ``events`` is the event store gaps are filled from.
    """

    name = "payment_state"

    def __init__(
        self,
        client: Any,
        table_name: str,
        events: EventStore,
        *,
        writes_parallel_max: int = WRITES_PARALLEL_MAX,
        read_retries_max: int = READ_RETRIES_MAX,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        assert writes_parallel_max > 0, writes_parallel_max
        self._client = client
        self._table_name = table_name
        self._events = events
        self._writes_parallel_max = writes_parallel_max
        self._read_retries_max = read_retries_max
        self._sleep = sleep

    # ── Projection ──────────────────────────────────────────────────────────────────────────

    def apply(self, events: Sequence[RecordedEvent]) -> ApplyResult:
        result = ApplyResult()
        streams = _payment_streams(events)
        if not streams:
            return result
        stored, unread = self._read_snapshots([payment_id_of(stream) for stream in streams])
        advances: list[_Advance] = []
        for stream_id, stream_events in streams.items():
            payment_id = payment_id_of(stream_id)
            if payment_id in unread:
                result.fail(stream_events[0], "payment state not read: BatchGetItem throttled")
                continue
            advance = self._advance(stored.get(payment_id), stream_events, result)
            if advance is not None:
                advances.append(advance)
        self._write(advances, result)
        return result

    # ── Queries for the API ─────────────────────────────────────────────────────────────────

    def read_payment(self, payment_id: str, *, consistent: bool = True) -> dict[str, Any] | None:
        """The payment as ``PaymentSnapshot.to_dict`` shapes it, or None if not projected yet."""
        check_id(payment_id, "payment_id")
        response = self._call(
            self._client.get_item,
            TableName=self._table_name,
            Key={"payment_id": {"S": payment_id}},
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return None if item is None else item_to_snapshot(item).to_dict()

    def list_merchant_payments(
        self, merchant_id: str, limit: int, since: str | None = None, *, newest_first: bool = False
    ) -> list[dict[str, Any]]:
        """A merchant's payments by ``updated_at`` (oldest first unless ``newest_first``), at most
        ``limit``; ``since`` keeps those updated at or after it (inclusive, so a client paging by
        the last ``updated_at`` it saw never misses a payment; it may see one again).

        The index is eventually consistent: a payment just projected may be missing for a moment.
        """
        check_id(merchant_id, "merchant_id")
        assert 0 < limit <= MERCHANT_PAYMENTS_LIMIT_MAX, limit
        condition = "#merchant = :merchant"
        values: Item = {":merchant": {"S": merchant_id}}
        names = {"#merchant": "merchant_id"}
        if since is not None:
            condition += " AND #updated >= :since"
            values[":since"] = {"S": since}
            names["#updated"] = "updated_at"
        arguments: dict[str, Any] = {
            "TableName": self._table_name,
            "IndexName": MERCHANT_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not newest_first,
        }
        payments: list[dict[str, Any]] = []
        for _ in range(_QUERY_PAGES_MAX):
            response = self._call(self._client.query, Limit=limit - len(payments), **arguments)
            payments.extend(item_to_snapshot(item).to_dict() for item in response["Items"])
            start_key = response.get("LastEvaluatedKey")
            if start_key is None or len(payments) >= limit:
                return payments
            arguments["ExclusiveStartKey"] = start_key
        raise RuntimeError(
            f"Query on {self._table_name} did not finish in {_QUERY_PAGES_MAX} pages"
        )

    @property
    def location(self) -> str:
        return f"dynamodb://{self._table_name}"

    def heads(self) -> Iterator[Head]:
        """Every projected payment's chain head (``version``, ``head_hash``), for digests.

        One paginated, eventually consistent Scan returning three attributes (DynamoDB bills the
        whole items read all the same: about one read unit per 8 KB of items). A head a moment
        stale is still a real chain point; the digest confirms each new one against the events.
        """
        projection = {
            "ProjectionExpression": "payment_id, #version, head_hash",
            "ExpressionAttributeNames": {"#version": "version"},
        }
        for item in self._scan(projection):
            yield Head(
                payment_stream_id(item["payment_id"]["S"]),
                int(item["version"]["N"]),
                item["head_hash"]["S"],
            )

    def snapshots(self) -> Iterator[tuple[str, PaymentSnapshot | None]]:
        """Every item: its payment id and snapshot, or None when the item is not one (one
        paginated, strongly consistent Scan), for verification."""
        for item in self._scan({"ConsistentRead": True}):
            try:
                snapshot: PaymentSnapshot | None = item_to_snapshot(item)
            except (KeyError, TypeError, ValueError, AssertionError):
                snapshot = None
            yield item["payment_id"]["S"], snapshot

    def _scan(self, arguments: dict[str, Any]) -> Iterator[Item]:
        arguments = {"TableName": self._table_name, **arguments}
        while True:
            response = self._call(self._client.scan, **arguments)
            yield from response["Items"]
            start_key = response.get("LastEvaluatedKey")
            if start_key is None:
                return
            arguments["ExclusiveStartKey"] = start_key

    # ── Folding ─────────────────────────────────────────────────────────────────────────────

    def _advance(
        self,
        stored: PaymentSnapshot | None,
        events: Sequence[RecordedEvent],
        result: ApplyResult,
    ) -> _Advance | None:
        """Fold one stream's batch events onto its stored snapshot; None if nothing new."""
        snapshot = stored
        version = 0 if stored is None else stored.version
        first: RecordedEvent | None = None
        applied = 0
        for event in events:
            if event.version <= version:
                result.duplicates += 1
                continue
            if first is None and event.version > version + 1:
                snapshot = self._fill_gap(event, result)
                if snapshot is None:
                    return None
                version = snapshot.version
            if event.version != version + 1:
                result.fail(event, f"version gap: {event.version} after {version} in one batch")
                break
            try:
                snapshot = _step(snapshot, event)
            except (LedgerError, AssertionError) as exc:
                # evolve asserts on impossible histories (an event before PaymentInitiated…):
                # for a consumer that is a poison event, reported for its stream only.
                result.fail(event, f"{type(exc).__name__}: {exc}")
                break
            if first is None:
                first = event
            applied += 1
            version = event.version
        if first is None or snapshot is None:
            return None
        return _Advance(snapshot, first, applied)

    def _fill_gap(self, event: RecordedEvent, result: ApplyResult) -> PaymentSnapshot | None:
        """The snapshot at ``event.version - 1`` folded from the events table (one Query)."""
        prefix = self._events.load(event.stream_id, version_max=event.version - 1)
        if len(prefix) != event.version - 1:
            result.fail(
                event,
                f"version gap: the events table holds {len(prefix)} events before version "
                f"{event.version}",
            )
            return None
        try:
            snapshot = fold(prefix)
        except (LedgerError, AssertionError) as exc:
            result.fail(event, f"gap fill failed: {type(exc).__name__}: {exc}")
            return None
        assert snapshot is not None
        assert snapshot.version == event.version - 1, (snapshot.version, event.version)
        logger.warning(
            "payment state gap filled from the events table",
            extra={"stream_id": event.stream_id, "versions": f"1..{snapshot.version}"},
        )
        return snapshot

    # ── DynamoDB ────────────────────────────────────────────────────────────────────────────

    def _read_snapshots(
        self, payment_ids: Sequence[str]
    ) -> tuple[dict[str, PaymentSnapshot], set[str]]:
        """Stored snapshots by payment id, and the ids DynamoDB left unprocessed every time."""
        snapshots: dict[str, PaymentSnapshot] = {}
        unread: set[str] = set()
        for start in range(0, len(payment_ids), BATCH_GET_ITEM_KEYS_MAX):
            chunk = payment_ids[start : start + BATCH_GET_ITEM_KEYS_MAX]
            keys: list[Item] = [{"payment_id": {"S": payment_id}} for payment_id in chunk]
            for attempt in range(self._read_retries_max + 1):
                if attempt:
                    self._sleep(READ_BACKOFF_BASE_S * 2 ** (attempt - 1))
                response = self._call(
                    self._client.batch_get_item,
                    RequestItems={self._table_name: {"Keys": keys, "ConsistentRead": True}},
                )
                for item in response["Responses"].get(self._table_name, []):
                    snapshot = item_to_snapshot(item)
                    snapshots[snapshot.state.payment_id] = snapshot
                unprocessed = response.get("UnprocessedKeys", {}).get(self._table_name)
                keys = [] if not unprocessed else unprocessed["Keys"]
                if not keys:
                    break
            unread.update(key["payment_id"]["S"] for key in keys)
        return snapshots, unread

    def _write(self, advances: Sequence[_Advance], result: ApplyResult) -> None:
        if not advances:
            return
        workers = min(self._writes_parallel_max, len(advances))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="payment-state") as pool:
            futures = [(advance, pool.submit(self._put, advance.snapshot)) for advance in advances]
            for advance, future in futures:
                try:
                    written = future.result()
                except (ClientError, BotoCoreError) as exc:
                    logger.error(
                        "payment state write failed",
                        exc_info=exc,
                        extra={"stream_id": advance.first.stream_id},
                    )
                    result.fail(advance.first, f"payment state write failed: {exc}")
                    continue
                if written:
                    result.applied += advance.applied
                else:
                    result.duplicates += advance.applied

    def _put(self, snapshot: PaymentSnapshot) -> bool:
        """Write ``snapshot`` unless the item is at or past its version; True if written."""
        try:
            self._client.put_item(
                TableName=self._table_name,
                Item=snapshot_to_item(snapshot),
                ConditionExpression=_WRITE_CONDITION,
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":version": {"N": str(snapshot.version)}},
                ReturnValuesOnConditionCheckFailure="NONE",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            exc.add_note(f"PutItem on payment-state table {self._table_name!r}")
            raise
        return True

    def _call(self, operation: Callable[..., Any], **arguments: Any) -> Any:
        try:
            return operation(**arguments)
        except ClientError as exc:
            exc.add_note(f"DynamoDB call on payment-state table {self._table_name!r} failed")
            raise


# ── Folding and the item format (pure) ─────────────────────────────────────────────────────


def _payment_streams(events: Sequence[RecordedEvent]) -> dict[str, list[RecordedEvent]]:
    """Payment streams' events in batch order; other streams are not this projection's."""
    streams: dict[str, list[RecordedEvent]] = {}
    for event in events:
        if event.stream_id.startswith(PAYMENT_STREAM_PREFIX):
            streams.setdefault(event.stream_id, []).append(event)
    return streams


def _step(snapshot: PaymentSnapshot | None, event: RecordedEvent) -> PaymentSnapshot:
    """The snapshot after ``event``, which must directly follow ``snapshot`` (None: nothing)."""
    head_hash = GENESIS_HASH if snapshot is None else snapshot.head_hash
    if event.prev_hash != head_hash:
        raise ChainBrokenError(
            f"{event.stream_id} version {event.version}: prev_hash does not match the head hash"
        )
    payload = decode_event(event)
    state = evolve(None if snapshot is None else snapshot.state, payload)
    created_at = event.recorded_at if snapshot is None else snapshot.created_at
    return PaymentSnapshot(state, event.version, event.hash, created_at, event.recorded_at)


def snapshot_to_item(snapshot: PaymentSnapshot) -> Item:
    state = snapshot.state
    item: Item = {
        "version": {"N": str(snapshot.version)},
        "head_hash": {"S": snapshot.head_hash},
        "created_at": {"S": snapshot.created_at},
        "updated_at": {"S": snapshot.updated_at},
        "settled": {"BOOL": state.settled},
    }
    for field, attribute in _STRINGS.items():
        item[attribute] = {"S": getattr(state, field)}
    for field, attribute in _OPTIONAL_STRINGS.items():
        value = getattr(state, field)
        if value is not None:
            item[attribute] = {"S": value}
    for field, attribute in _INTEGERS.items():
        item[attribute] = {"N": str(getattr(state, field))}
    return item


def item_to_snapshot(item: Mapping[str, Any]) -> PaymentSnapshot:
    fields: dict[str, Any] = {field: item[attribute]["S"] for field, attribute in _STRINGS.items()}
    for field, attribute in _OPTIONAL_STRINGS.items():
        value = item.get(attribute)
        fields[field] = None if value is None else value["S"]
    for field, attribute in _INTEGERS.items():
        fields[field] = int(item[attribute]["N"])
    status = fields.pop("status")
    assert status in STATUSES, status
    assert fields["risk_decision"] in (None, *_RISK_DECISIONS), fields["risk_decision"]
    state = PaymentState(
        status=cast(Status, status), settled=bool(item["settled"]["BOOL"]), **fields
    )
    return PaymentSnapshot(
        state=state,
        version=int(item["version"]["N"]),
        head_hash=item["head_hash"]["S"],
        created_at=item["created_at"]["S"],
        updated_at=item["updated_at"]["S"],
    )
