"""The listing's opaque cursor: where the next page of a merchant's payments starts, and the
merchant and status filter it was made for, as base64url (no padding) of compact JSON.

A cursor carries no secret and grants nothing (every request is authorized by itself); it is
checked on the way in so that a cursor that does not decode, or was made for another merchant or
filter, is a ``validation_error`` and never reaches DynamoDB as a malformed start key.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ledger.domain.errors import LedgerError, ValidationError
from ledger.domain.timestamps import format_timestamp, parse_timestamp
from ledger.domain.validation import check_id
from projections.payment_state_reader import MerchantPosition

CURSOR_CHARS_MAX = 512  # a cursor of the longest ids is about 300
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"


def encode_cursor(position: MerchantPosition, merchant_id: str, status: str | None) -> str:
    document = {"m": merchant_id, "s": status, "u": position.updated_at, "p": position.payment_id}
    text = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def decode_cursor(cursor: str, merchant_id: str, status: str | None) -> MerchantPosition:
    """The position ``cursor`` resumes from, if it was made for this merchant and filter."""
    document = _document(cursor)
    if document.get("m") != merchant_id or document.get("s") != status:
        raise ValidationError("cursor was made for another merchant or status filter")
    updated_at, payment_id = document.get("u"), document.get("p")
    if not isinstance(updated_at, str) or not isinstance(payment_id, str):
        raise ValidationError("cursor is not one this API made")
    try:
        check_id(payment_id, "cursor")
        canonical = format_timestamp(parse_timestamp(updated_at)) == updated_at
    except LedgerError as error:
        raise ValidationError("cursor is not one this API made") from error
    if not canonical:
        raise ValidationError("cursor is not one this API made")
    return MerchantPosition(updated_at, payment_id)


def _document(cursor: str) -> dict[str, Any]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(text)
    except (binascii.Error, ValueError) as error:
        raise ValidationError("cursor is not one this API made") from error
    if not isinstance(document, dict):
        raise ValidationError("cursor is not one this API made")
    return document
