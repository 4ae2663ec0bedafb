"""Reads of the payment-state read model (``projections.payment_state`` writes it, DESIGN §6):
the API's current payment and a merchant's payments by time, every chain head for digests, and
every item for verification.

Guarantees:
- ``read_payment`` is one GetItem (strongly consistent unless asked otherwise).
- ``list_merchant_payments`` reads one page of a merchant's payments from the ``by-merchant``
  GSI (eventually consistent, as every GSI read): at most ``MERCHANT_PAGE_LIMIT_MAX`` payments
  over at most ``MERCHANT_QUERY_PAGES_MAX`` Query pages, each evaluating at most
  ``MERCHANT_FILTERED_QUERY_ITEMS`` items (so at most 1,000 items read per page listed).
- ``heads`` and ``snapshots`` are one paginated Scan each: for digests and audits, never for a
  request path.
A DynamoDB failure propagates as botocore's ``ClientError`` with a note naming the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ledger.domain.payment import Status
from ledger.domain.validation import check_id
from ledger.dynamodb import Item, call_table, scan_items
from ledger.envelope import payment_stream_id
from ledger.integrity.merkle import Head
from ledger.service import PaymentSnapshot
from projections.payment_state import item_to_snapshot

MERCHANT_INDEX = "by-merchant"
MERCHANT_PAGE_LIMIT_MAX = 100
MERCHANT_QUERY_PAGES_MAX = 5
# DynamoDB applies Limit before a FilterExpression: a filtered Query page evaluates this many
# items to find its matches, and a page listed stops after MERCHANT_QUERY_PAGES_MAX of them.
MERCHANT_FILTERED_QUERY_ITEMS = 200


@dataclass(frozen=True, slots=True)
class MerchantPosition:
    """Where a listing of one merchant's payments stopped: the index key of the last payment it
    looked at (the GSI's ``updated_at`` and the table's ``payment_id``)."""

    updated_at: str
    payment_id: str


@dataclass(frozen=True, slots=True)
class MerchantPaymentsPage:
    """Payments as ``PaymentSnapshot.to_dict`` shapes them, and where the next page starts (None
    when no payment follows). A page may hold fewer payments than asked for and still have a
    next one: a filtered listing stops after its Query pages even if it found too few."""

    payments: list[dict[str, Any]]
    next_position: MerchantPosition | None


class PaymentStateReader:
    """Reads of a table shaped like ``PaymentStateTable`` in template.yaml.

    ``client`` is a boto3 low-level DynamoDB client created once per process by the caller.
    """

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table_name = table_name

    @property
    def location(self) -> str:
        return f"dynamodb://{self._table_name}"

    # ── Queries for the API ─────────────────────────────────────────────────────────────────

    def read_payment(self, payment_id: str, *, consistent: bool = True) -> dict[str, Any] | None:
        """The payment as ``PaymentSnapshot.to_dict`` shapes it, or None if not projected yet."""
        check_id(payment_id, "payment_id")
        response = call_table(
            self._client.get_item,
            self._table_name,
            TableName=self._table_name,
            Key={"payment_id": {"S": payment_id}},
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return None if item is None else item_to_snapshot(item).to_dict()

    def list_merchant_payments(
        self,
        merchant_id: str,
        limit: int,
        *,
        status: Status | None = None,
        after: MerchantPosition | None = None,
    ) -> MerchantPaymentsPage:
        """A merchant's payments, most recently updated first, at most ``limit`` of them, with
        ``status`` only if given, from just after ``after`` if given.

        The listing reads one payment past the page to know whether another page follows, so a
        last page of exactly ``limit`` payments has no next position. The index is eventually
        consistent: a payment just projected may be missing for a moment, and one updated while
        a client pages moves to the front (it may be seen twice or, if it was ahead, missed).
        """
        check_id(merchant_id, "merchant_id")
        assert 0 < limit <= MERCHANT_PAGE_LIMIT_MAX, limit
        request: dict[str, Any] = {
            "TableName": self._table_name,
            "IndexName": MERCHANT_INDEX,
            "KeyConditionExpression": "#merchant = :merchant",
            "ExpressionAttributeNames": {"#merchant": "merchant_id"},
            "ExpressionAttributeValues": {":merchant": {"S": merchant_id}},
            "ScanIndexForward": False,
        }
        if status is not None:
            request["FilterExpression"] = "#status = :status"
            request["ExpressionAttributeNames"]["#status"] = "status"
            request["ExpressionAttributeValues"][":status"] = {"S": status}
        if after is not None:
            request["ExclusiveStartKey"] = _index_key(merchant_id, after)
        items: list[Item] = []
        for _ in range(MERCHANT_QUERY_PAGES_MAX):
            wanted = limit + 1 - len(items)
            request["Limit"] = wanted if status is None else MERCHANT_FILTERED_QUERY_ITEMS
            response = call_table(self._client.query, self._table_name, **request)
            items.extend(response["Items"])
            if len(items) > limit:
                return _page(items[:limit], _position(items[limit - 1]))
            last_key = response.get("LastEvaluatedKey")
            if last_key is None:
                return _page(items, None)
            request["ExclusiveStartKey"] = last_key
        return _page(items, _position(last_key))

    # ── Scans for digests and verification ──────────────────────────────────────────────────

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
        for item in scan_items(self._client, self._table_name, projection):
            yield Head(
                payment_stream_id(item["payment_id"]["S"]),
                int(item["version"]["N"]),
                item["head_hash"]["S"],
            )

    def snapshots(self) -> Iterator[tuple[str, PaymentSnapshot | None]]:
        """Every item: its payment id and snapshot, or None when the item is not one (one
        paginated, strongly consistent Scan), for verification."""
        for item in scan_items(self._client, self._table_name, {"ConsistentRead": True}):
            try:
                snapshot: PaymentSnapshot | None = item_to_snapshot(item)
            except (KeyError, TypeError, ValueError, AssertionError):
                snapshot = None
            yield item["payment_id"]["S"], snapshot


def _index_key(merchant_id: str, position: MerchantPosition) -> Item:
    return {
        "merchant_id": {"S": merchant_id},
        "updated_at": {"S": position.updated_at},
        "payment_id": {"S": position.payment_id},
    }


def _position(key: Item) -> MerchantPosition:
    return MerchantPosition(key["updated_at"]["S"], key["payment_id"]["S"])


def _page(items: list[Item], next_position: MerchantPosition | None) -> MerchantPaymentsPage:
    return MerchantPaymentsPage([item_to_snapshot(item).to_dict() for item in items], next_position)
