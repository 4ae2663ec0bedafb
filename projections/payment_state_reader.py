"""Reads of the payment-state read model (``projections.payment_state`` writes it, DESIGN §6):
the API's current payment and a merchant's payments by time, every chain head for digests, and
every item for verification.

Guarantees:
- ``read_payment`` is one GetItem (strongly consistent unless asked otherwise).
- ``list_merchant_payments`` is one Query of the ``by-merchant`` GSI (eventually consistent, as
  every GSI read), at most ``MERCHANT_PAYMENTS_LIMIT_MAX`` payments over at most
  ``MERCHANT_QUERY_PAGES_MAX`` pages.
- ``heads`` and ``snapshots`` are one paginated Scan each: for digests and audits, never for a
  request path.
A DynamoDB failure propagates as botocore's ``ClientError`` with a note naming the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ledger.domain.validation import check_id
from ledger.dynamodb import Item, call_table, query_items, scan_items
from ledger.envelope import payment_stream_id
from ledger.integrity.merkle import Head
from ledger.service import PaymentSnapshot
from projections.payment_state import item_to_snapshot

MERCHANT_INDEX = "by-merchant"
MERCHANT_PAYMENTS_LIMIT_MAX = 1_000
MERCHANT_QUERY_PAGES_MAX = 100


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
        arguments = {
            "IndexName": MERCHANT_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not newest_first,
        }
        items = query_items(
            self._client,
            self._table_name,
            arguments,
            items_max=limit,
            pages_max=MERCHANT_QUERY_PAGES_MAX,
        )
        return [item_to_snapshot(item).to_dict() for item in items]

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
