"""What the archive accepts from one change record, decoded record by record.

The archive is the auditors' copy of the events table, not a view: it must hold exactly the
events the table holds. So it refuses only what it cannot store faithfully, and never an event
because its payload fails the domain model (``ledger.decoding.decode_event``): refusing an event
the table holds would make the archive differ from the table and hide exactly the event an
auditor most needs to see. Projections still refuse such an event when they read it (a rebuild
from the archive applies ``decode_event``).

A change record is refused (``UndecodableEventError`` or ``ValueError``, saying why) when:
- its data is not base64 of a DynamoDB change record (``ledger.changes.decode_change``);
- it is an INSERT whose NewImage is not a well-formed event item: an envelope attribute missing
  or not the DynamoDB string (``S``) or number (``N``) attribute it must be, a number not in
  canonical integer form, an unknown actor kind, keys that do not match the image
  (``ledger.changes.event_of``);
- the event is not one row of the archive's schema: not a payment stream, a version below 1 or
  beyond 64 bits, a schema version beyond 32 bits, ``recorded_at`` or ``occurred_at`` not in the
  canonical ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` form of a real time, a string that is not valid
  Unicode (a lone surrogate), or a payload that is not a JSON object.

The payload columns copy the payload's ``merchant_id``, ``amount_minor`` and ``currency`` when
they are a string, a 64-bit integer and a string; they are null when absent or of another type.
MODIFY and REMOVE records are not events: ``decode_record`` returns None for them.

This is the reference for ``archive.columnar``, which decodes a whole batch at once and falls
back to this path for any batch holding a record it cannot decode exactly as this path would.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from archive.schema import PayloadFields
from ledger.changes import decode_change, event_of
from ledger.decoding import event_time
from ledger.domain.errors import UndecodableEventError
from ledger.envelope import PAYMENT_STREAM_PREFIX, RecordedEvent

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
# A DynamoDB number as DynamoDB writes an integer; one form per value, so text equality is value
# equality. Matched whole: here with fullmatch, by archive.columnar between RE2's ^ and $.
INTEGER_PATTERN = r"0|-?[1-9][0-9]*"
_INTEGER = re.compile(INTEGER_PATTERN)
_SURROGATE = re.compile("[\ud800-\udfff]")
# The string attributes of an event item (DESIGN §3); causation_id may be absent.
REQUIRED_STRINGS = (
    "pk", "event_id", "event_type", "occurred_at", "recorded_at", "correlation_id",
    "idempotency_key", "request_digest", "payload", "prev_hash", "hash",
)  # fmt: skip
REQUIRED_NUMBERS = ("sk", "schema_version")
OPTIONAL_STRINGS = ("causation_id",)
ACTOR_REQUIRED = ("kind", "id")
ACTOR_OPTIONAL = ("model", "version")


def decode_record(data: str) -> tuple[RecordedEvent, PayloadFields] | None:
    """The event a record's data carries and its payload fields; None for a change that is not
    an event. Raises ``UndecodableEventError`` or ``ValueError`` (bad base64) saying why the
    archive refuses the record."""
    try:
        change = decode_change(base64.b64decode(data, validate=True))
    except RecursionError as exc:
        raise NestedTooDeeplyError("the change record is nested too deeply") from exc
    if change.event_name == "INSERT":
        assert isinstance(change.new_image, dict)
        check_image(change.new_image)
    event = event_of(change)
    if event is None:
        return None
    check_event(event)
    return event, payload_fields(event.payload)


class NestedTooDeeplyError(UndecodableEventError):
    """Python's JSON parser stops at a nesting depth Arrow's reads (see ``archive.columnar``)."""


def check_image(image: Mapping[str, Any]) -> None:
    """Every envelope attribute is present (causation id, actor model and version may be absent)
    and is the string or canonical integer attribute it must be."""
    for name in REQUIRED_STRINGS:
        _attribute(image, name, "S", optional=False)
    for name in REQUIRED_NUMBERS:
        number = _attribute(image, name, "N", optional=False)
        if number is None or not _INTEGER.fullmatch(number):
            raise UndecodableEventError(f"{name} {str(number)[:32]!r} is not an integer")
    for name in OPTIONAL_STRINGS:
        _attribute(image, name, "S", optional=True)
    actor = _attribute(image, "actor", "M", optional=False)
    assert isinstance(actor, Mapping)
    for name in ACTOR_REQUIRED:
        _attribute(actor, name, "S", optional=False)
    for name in ACTOR_OPTIONAL:
        _attribute(actor, name, "S", optional=True)


def _attribute(attributes: Mapping[str, Any], name: str, kind: str, *, optional: bool) -> Any:
    value = attributes.get(name)
    if value is None and optional:
        return None
    wanted = dict if kind == "M" else str
    if not isinstance(value, dict) or not isinstance(value.get(kind), wanted):
        raise UndecodableEventError(f"{name} is not a DynamoDB {kind} attribute")
    return value[kind]


def check_event(event: RecordedEvent) -> None:
    """The event fits one row of the archive's schema."""
    if not event.stream_id.startswith(PAYMENT_STREAM_PREFIX):
        raise UndecodableEventError(f"{event.stream_id[:64]!r} is not a payment stream")
    if not 1 <= event.version <= INT64_MAX:
        raise UndecodableEventError(f"version {event.version} is not from 1 to 2^63-1")
    if not INT32_MIN <= event.schema_version <= INT32_MAX:
        raise UndecodableEventError(f"schema version {event.schema_version} exceeds 32 bits")
    event_time(event.recorded_at, "recorded_at")
    event_time(event.occurred_at, "occurred_at")
    actor = event.actor
    texts = (
        event.stream_id, event.event_id, event.event_type, actor.kind, actor.id,
        actor.model or "", actor.version or "", event.correlation_id, event.causation_id or "",
        event.idempotency_key, event.request_digest, event.payload, event.prev_hash, event.hash,
    )  # fmt: skip
    if any(_SURROGATE.search(text) for text in texts):
        raise UndecodableEventError("the event holds a lone surrogate, which is not Unicode")


def payload_fields(payload: str) -> PayloadFields:
    """The payload's copied fields; ``UndecodableEventError`` if it is not a JSON object."""
    try:
        document = json.loads(payload)
    except RecursionError as exc:
        raise NestedTooDeeplyError("the payload is nested too deeply") from exc
    except ValueError as exc:
        raise UndecodableEventError(f"the payload is not JSON: {str(exc)[:200]}") from exc
    if not isinstance(document, dict):
        raise UndecodableEventError("the payload is not a JSON object")
    amount = document.get("amount_minor")
    return PayloadFields(
        merchant_id=_text(document.get("merchant_id")),
        amount_minor=amount if type(amount) is int and INT64_MIN <= amount <= INT64_MAX else None,
        currency=_text(document.get("currency")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and not _SURROGATE.search(value) else None
