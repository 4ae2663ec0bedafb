"""The DynamoDB backend: the event store and its audit reader on one table, one item per event,
``pk`` = stream id, ``sk`` = version (DESIGN §3-§4), and the table access every DynamoDB adapter
shares: conditional new-item writes (``put_new_items``), bounded paging (``query_items``,
``scan_items``) and BatchGetItem with retries (``batch_get_items``).

``event_to_item`` / ``item_to_event`` are the item format every consumer shares (stream NewImages
included). The AttributeValue mapping is written by hand: it is the hot path, and it keeps the
format visible in one place.

Guarantees (the ``EventStore`` port; ``EventReader`` reads are Scans and Queries, bounded):
- ``load`` is one strongly consistent Query (more pages only past DynamoDB's 1 MB page size).
- ``append`` of one event is one conditional PutItem, of several one TransactWriteItems; every
  item is conditioned on ``attribute_not_exists(pk)``, so a version is written once or not at all.

Errors, in order of precedence:
- ``ConcurrencyError``: a version of the append already exists, or another transaction was writing
  it at the same moment (``TransactionConflict``); the caller reloads and decides again.
- ``LimitExceededError``: ``load`` found more than ``limit`` events.
- anything else from DynamoDB (missing table, throttling…) is an operating or configuration
  failure, not a ledger condition: the botocore ``ClientError`` propagates, with a note naming
  the table (and, for a cancelled transaction, each item's reason).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from botocore.exceptions import ClientError

from ledger.domain.errors import ConcurrencyError, LimitExceededError, UndecodableEventError
from ledger.domain.limits import STREAM_EVENTS_MAX
from ledger.envelope import ACTOR_KINDS, Actor, RecordedEvent, StoredEvent
from ledger.store import STORED_EVENTS_MAX, EventReader, EventStore, check_append_batch

Item = dict[str, Any]
"""A DynamoDB item in the low-level AttributeValue format, e.g. ``{"pk": {"S": "payment#…"}}``."""

TRANSACT_WRITE_ITEMS_MAX = 100
BATCH_GET_ITEM_KEYS_MAX = 100  # DynamoDB's limit per BatchGetItem request
BATCH_GET_RETRIES_MAX = 5
BATCH_GET_BACKOFF_BASE_S = 0.05
# A Query page stops at 1 MB and an item is at most 400 KB, so every page that is not the last
# holds at least 2 items: this bounds the pages a load of ``limit + 1`` items can take.
_QUERY_PAGE_ITEMS_MIN = 2
_STORED_PAGES_MAX = 10_000
# Whole-table Scans (rebuilds, audits) read 1 MB pages: a bound of a terabyte, beyond any table
# this ledger scans, so a Scan that never ends fails instead.
SCAN_PAGES_MAX = 1_000_000
_NEW_ITEM_CONDITION = "attribute_not_exists(pk)"
# Codes meaning "another writer has (or is writing) this key": a PutItem error code, or a
# cancellation reason of one item of a TransactWriteItems.
_PUT_CONFLICT_CODES = frozenset({"ConditionalCheckFailedException", "TransactionConflictException"})
_TRANSACTION_CONFLICT_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


class DynamoDBEventStore(EventStore, EventReader):
    """``EventStore`` and ``EventReader`` on one DynamoDB table shaped like ``EventsTable`` in
    template.yaml.

    ``client`` is a boto3 low-level DynamoDB client, created once per process by the caller.
    """

    def __init__(
        self, client: Any, table_name: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._client = client
        self._table_name = table_name
        self._sleep = sleep

    def load(
        self, stream_id: str, *, version_max: int | None = None, limit: int = STREAM_EVENTS_MAX
    ) -> list[RecordedEvent]:
        assert limit >= 0, limit
        condition = "pk = :pk"
        values: Item = {":pk": {"S": stream_id}}
        if version_max is not None:
            condition += " AND sk <= :version_max"
            values[":version_max"] = {"N": str(version_max)}
        arguments = {
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
            "ScanIndexForward": True,
        }
        # Ask for one item more than allowed: its presence is what LimitExceededError means.
        items = query_items(
            self._client,
            self._table_name,
            arguments,
            items_max=limit + 1,
            pages_max=(limit + 1) // _QUERY_PAGE_ITEMS_MIN + 2,
        )
        events = [item_to_event(item) for item in items]
        if len(events) > limit:
            raise LimitExceededError(f"stream {stream_id} holds more than {limit} events")
        _assert_loaded(stream_id, events)
        return events

    def append(self, events: Sequence[RecordedEvent]) -> None:
        check_append_batch(events)
        first, last = events[0], events[-1]
        put_new_items(
            self._client,
            self._table_name,
            [event_to_item(event) for event in events],
            conflict_error=lambda: ConcurrencyError(
                f"stream {first.stream_id} already has one of versions "
                f"{first.version}..{last.version}"
            ),
        )

    def events_at(
        self, positions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], RecordedEvent]:
        """One eventually consistent BatchGetItem per 100 positions (half the read units of a
        strongly consistent read; events never change once written). Keys DynamoDB leaves
        unprocessed are retried ``BATCH_GET_RETRIES_MAX`` times, then left out like missing ones."""
        keys: list[Item] = [
            {"pk": {"S": stream_id}, "sk": {"N": str(version)}}
            for stream_id, version in sorted(set(positions))
        ]
        read = batch_get_items(
            self._client, self._table_name, keys, consistent=False, sleep=self._sleep
        )
        events = (item_to_event(item) for item in read.items)
        return {(event.stream_id, event.version): event for event in events}

    def stream_ids(self) -> Iterator[str]:
        """One paginated, strongly consistent Scan returning only the keys of version 1 items
        (every stream has exactly one). It reads the whole table: for rebuilds, not for
        request paths."""
        arguments = {
            "ProjectionExpression": "pk",
            "FilterExpression": "sk = :first",
            "ExpressionAttributeValues": {":first": {"N": "1"}},
            "ConsistentRead": True,
        }
        for item in scan_items(self._client, self._table_name, arguments):
            yield item["pk"]["S"]

    # ── EventReader ──────────────────────────────────────────────────────────────────────────

    def all_stream_ids(self) -> set[str]:
        """One paginated keys-only Scan of every item (a Scan is billed for the items it reads,
        so this costs what ``stream_ids`` costs), seeing streams whose version 1 is gone."""
        arguments = {"ProjectionExpression": "pk", "ConsistentRead": True}
        return {item["pk"]["S"] for item in scan_items(self._client, self._table_name, arguments)}

    def stored_events(self, stream_id: str) -> list[StoredEvent]:
        """Every item of the stream (strongly consistent Query), decoded where it can be."""
        arguments = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": stream_id}},
            "ConsistentRead": True,
        }
        items = query_items(
            self._client,
            self._table_name,
            arguments,
            items_max=STORED_EVENTS_MAX + 1,
            pages_max=_STORED_PAGES_MAX,
        )
        stored = [self._stored_event(item) for item in items]
        if len(stored) > STORED_EVENTS_MAX:
            raise LimitExceededError(
                f"stream {stream_id} holds more than {STORED_EVENTS_MAX} items"
            )
        return stored

    def events_with(
        self, *, event_id: str | None = None, correlation_id: str | None = None, limit: int
    ) -> list[RecordedEvent]:
        """One paginated, eventually consistent Scan with the filter pushed down, stopping once
        ``limit`` events matched. It reads (and is billed for) the whole table in the worst case:
        about 1 read unit per 8 KB of events, e.g. ~130,000 units for 1 GB; a GSI would instead
        add a write unit to every append, forever, for a question asked while debugging."""
        assert (event_id is None) != (correlation_id is None), "exactly one filter"
        name, value = (
            ("event_id", event_id) if event_id is not None else ("correlation_id", correlation_id)
        )
        found: list[RecordedEvent] = []
        arguments = {
            "FilterExpression": "#attribute = :value",
            "ExpressionAttributeNames": {"#attribute": name},
            "ExpressionAttributeValues": {":value": {"S": value}},
        }
        for item in scan_items(self._client, self._table_name, arguments):
            try:
                found.append(item_to_event(item))
            except (KeyError, TypeError, ValueError, AssertionError) as exc:
                raise UndecodableEventError(
                    f"{item['pk']['S']} version {item['sk']['N']} is not an event: {exc!r}"
                ) from exc
            if len(found) >= limit:
                break
        return found

    def _stored_event(self, item: Item) -> StoredEvent:
        version = int(item["sk"]["N"])
        location = f"dynamodb://{self._table_name}"
        try:
            return StoredEvent(version, item_to_event(item), location)
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            return StoredEvent(version, None, location, f"not an event item: {exc!r}")


def event_to_item(event: RecordedEvent) -> Item:
    """The DynamoDB item of ``event`` (DESIGN §3); ``causation_id`` is omitted when None."""
    item: Item = {
        "pk": {"S": event.stream_id},
        "sk": {"N": str(event.version)},
        "event_id": {"S": event.event_id},
        "event_type": {"S": event.event_type},
        "schema_version": {"N": str(event.schema_version)},
        "occurred_at": {"S": event.occurred_at},
        "recorded_at": {"S": event.recorded_at},
        "actor": {"M": {name: {"S": value} for name, value in event.actor.to_dict().items()}},
        "correlation_id": {"S": event.correlation_id},
        "idempotency_key": {"S": event.idempotency_key},
        "request_digest": {"S": event.request_digest},
        "payload": {"S": event.payload},
        "prev_hash": {"S": event.prev_hash},
        "hash": {"S": event.hash},
    }
    if event.causation_id is not None:
        item["causation_id"] = {"S": event.causation_id}
    return item


def item_to_event(item: Mapping[str, Any]) -> RecordedEvent:
    """The event stored in ``item``: a table item or a DynamoDB Streams / Kinesis ``NewImage``."""
    actor = item["actor"]["M"]
    kind = actor["kind"]["S"]
    assert kind in ACTOR_KINDS, kind
    return RecordedEvent(
        stream_id=item["pk"]["S"],
        version=int(item["sk"]["N"]),
        event_id=item["event_id"]["S"],
        event_type=item["event_type"]["S"],
        schema_version=int(item["schema_version"]["N"]),
        occurred_at=item["occurred_at"]["S"],
        recorded_at=item["recorded_at"]["S"],
        actor=Actor(
            kind=kind,
            id=actor["id"]["S"],
            model=_optional_string(actor, "model"),
            version=_optional_string(actor, "version"),
        ),
        correlation_id=item["correlation_id"]["S"],
        causation_id=_optional_string(item, "causation_id"),
        idempotency_key=item["idempotency_key"]["S"],
        request_digest=item["request_digest"]["S"],
        payload=item["payload"]["S"],
        prev_hash=item["prev_hash"]["S"],
        hash=item["hash"]["S"],
    )


def _optional_string(attributes: Mapping[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    return None if value is None else str(value["S"])


def _assert_loaded(stream_id: str, events: Sequence[RecordedEvent]) -> None:
    """What a key-condition Query guarantees. Gaps are not checked here: ``verify_chain`` reports
    them as ``ChainBrokenError``."""
    for previous, event in pairwise(events):
        assert event.version > previous.version, (stream_id, previous.version, event.version)
    assert all(event.stream_id == stream_id for event in events), stream_id


# ── Shared by every table this ledger keeps (events, payment state, the recorder's) ─────────


def put_new_items(
    client: Any,
    table_name: str,
    items: Sequence[Item],
    *,
    conflict_error: Callable[[], Exception],
) -> None:
    """Write ``items``, none of which may exist yet, all or nothing.

    One item: one PutItem; several: one TransactWriteItems. Each is conditioned on
    ``attribute_not_exists(pk)``. If any key exists (or another transaction is writing it),
    nothing is written and ``conflict_error()`` is raised, chained to the DynamoDB error.
    """
    assert 0 < len(items) <= TRANSACT_WRITE_ITEMS_MAX, len(items)
    put = {
        "TableName": table_name,
        "ConditionExpression": _NEW_ITEM_CONDITION,
        "ReturnValuesOnConditionCheckFailure": "NONE",
    }
    try:
        if len(items) == 1:
            client.put_item(Item=items[0], **put)
        else:
            client.transact_write_items(
                TransactItems=[{"Put": {"Item": item, **put}} for item in items]
            )
    except ClientError as exc:
        if _is_conflict(exc):
            raise conflict_error() from exc
        _explain(exc, table_name)
        raise


def query_items(
    client: Any,
    table_name: str,
    arguments: Mapping[str, Any],
    *,
    pages_max: int,
    items_max: int | None = None,
) -> Iterator[Item]:
    """The items of one Query (``arguments`` without ``TableName``), page after page.

    At most ``items_max`` items (each page asks only for what remains) over at most
    ``pages_max`` pages; ``RuntimeError`` if the Query has not finished by then.
    """
    return _paginate(client, "query", table_name, arguments, pages_max, items_max)


def scan_items(
    client: Any,
    table_name: str,
    arguments: Mapping[str, Any],
    *,
    pages_max: int = SCAN_PAGES_MAX,
) -> Iterator[Item]:
    """The items of one Scan (``arguments`` without ``TableName``), page after page, over at
    most ``pages_max`` pages; ``RuntimeError`` if the Scan has not finished by then."""
    return _paginate(client, "scan", table_name, arguments, pages_max, None)


def _paginate(
    client: Any,
    operation: str,
    table_name: str,
    arguments: Mapping[str, Any],
    pages_max: int,
    items_max: int | None,
) -> Iterator[Item]:
    assert pages_max > 0, pages_max
    assert items_max is None or items_max > 0, items_max
    request = {"TableName": table_name, **arguments}
    count = 0
    for _ in range(pages_max):
        if items_max is not None:
            request["Limit"] = items_max - count
        response = call_table(getattr(client, operation), table_name, **request)
        yield from response["Items"]
        count += len(response["Items"])
        start_key = response.get("LastEvaluatedKey")
        if start_key is None or (items_max is not None and count >= items_max):
            return
        request["ExclusiveStartKey"] = start_key
    raise RuntimeError(f"{operation} on {table_name} did not finish within {pages_max} pages")


@dataclass(frozen=True, slots=True)
class BatchRead:
    items: list[Item]
    unprocessed_keys: list[Item]  # left unprocessed by DynamoDB on every attempt


def batch_get_items(
    client: Any,
    table_name: str,
    keys: Sequence[Item],
    *,
    consistent: bool,
    retries_max: int = BATCH_GET_RETRIES_MAX,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchRead:
    """The items at ``keys`` (distinct; missing ones are left out): one BatchGetItem per 100
    keys. Keys DynamoDB leaves unprocessed (throttling, the 16 MB response cap) are asked for
    again ``retries_max`` times, after an exponential backoff, then returned unprocessed."""
    assert retries_max >= 0, retries_max
    items: list[Item] = []
    unprocessed: list[Item] = []
    for start in range(0, len(keys), BATCH_GET_ITEM_KEYS_MAX):
        pending = list(keys[start : start + BATCH_GET_ITEM_KEYS_MAX])
        for attempt in range(retries_max + 1):
            if attempt:
                sleep(BATCH_GET_BACKOFF_BASE_S * 2 ** (attempt - 1))
            response = call_table(
                client.batch_get_item,
                table_name,
                RequestItems={table_name: {"Keys": pending, "ConsistentRead": consistent}},
            )
            items.extend(response["Responses"].get(table_name, []))
            pending = response.get("UnprocessedKeys", {}).get(table_name, {}).get("Keys", [])
            if not pending:
                break
        unprocessed.extend(pending)
    return BatchRead(items, unprocessed)


def _is_conflict(exc: Any) -> bool:
    code = exc.response["Error"]["Code"]
    if code == "TransactionCanceledException":
        return any(
            reason.get("Code") in _TRANSACTION_CONFLICT_REASONS
            for reason in exc.response.get("CancellationReasons", ())
        )
    return code in _PUT_CONFLICT_CODES


def call_table(operation: Callable[..., Any], table_name: str, **arguments: Any) -> Any:
    """``operation(**arguments)`` on ``table_name``; a ``ClientError`` propagates with a note
    saying what it means for us."""
    try:
        return operation(**arguments)
    except ClientError as exc:
        _explain(exc, table_name)
        raise


def _explain(exc: Any, table_name: str) -> None:
    """Add a note saying what a non-ledger DynamoDB failure means for us; the error propagates."""
    code = exc.response["Error"]["Code"]
    if code == "ResourceNotFoundException":
        exc.add_note(
            f"DynamoDB table {table_name!r} does not exist: a configuration error "
            "(check the configured table name and the deployed stack), not a ledger condition"
        )
    elif code == "TransactionCanceledException":
        reasons = [
            f"item {position}: {reason.get('Code')} {reason.get('Message', '')}".rstrip()
            for position, reason in enumerate(exc.response.get("CancellationReasons", ()))
        ]
        exc.add_note(f"TransactWriteItems on {table_name!r} cancelled: " + "; ".join(reasons))
    else:
        exc.add_note(f"DynamoDB call on table {table_name!r} failed with {code}")
