"""Event timestamps: ISO-8601 UTC, microseconds, ``Z`` (``2026-11-21T12:18:16.123456Z``)."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.domain.errors import ValidationError


def format_timestamp(moment: datetime) -> str:
    assert moment.tzinfo is not None, "timestamps must be timezone-aware"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 timestamp with a timezone; ``validation_error`` otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(f"not an ISO-8601 timestamp: {text[:64]!r}") from exc
    if moment.tzinfo is None:
        raise ValidationError(f"timestamp needs a timezone (e.g. Z): {text[:64]!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        raise ValidationError(f"timestamp out of range: {text[:64]!r}") from exc
