"""Where archived events live: object keys under ``events/``, Hive-style, by recorded day (UTC).

    events/year=2026/month=11/day=05/<shard id>-<first sequence>-<last sequence>.parquet
    events/year=2026/month=11/day=05/compacted-<digest>-<part>.parquet

A Lambda batch writes one object per day it touches, named after its shard and its first and
last sequence numbers, so a retried batch overwrites its own objects instead of adding copies.
Compaction replaces a day's objects by ``compacted-`` ones named after their content, so running
it again finds nothing to do. The partition values are zero-padded strings and come from the key
only; readers never trust a column for them.
"""

from __future__ import annotations

import re
from datetime import date

from ledger.domain.errors import ValidationError

EVENTS_PREFIX = "events/"
PARQUET_SUFFIX = ".parquet"
COMPACTED_PREFIX = "compacted-"
_DAY_KEY = re.compile(r"^events/year=(\d{4})/month=(\d{2})/day=(\d{2})/([^/]+\.parquet)$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_DAY_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def day_prefix(day: date) -> str:
    """The key prefix of ``day``'s objects (ending in ``/``)."""
    return f"{EVENTS_PREFIX}year={day.year:04d}/month={day.month:02d}/day={day.day:02d}/"


def batch_key(day: date, shard_id: str, first_sequence: str, last_sequence: str) -> str:
    """The object of one Lambda batch's events recorded on ``day``."""
    name = f"{shard_id}-{first_sequence}-{last_sequence}"
    assert _SAFE_NAME.match(name), name
    assert not name.startswith(COMPACTED_PREFIX), name
    return f"{day_prefix(day)}{name}{PARQUET_SUFFIX}"


def compacted_key(day: date, digest: str, part: int) -> str:
    assert _SAFE_NAME.match(digest), digest
    return f"{day_prefix(day)}{COMPACTED_PREFIX}{digest}-{part:05d}{PARQUET_SUFFIX}"


def day_of_key(key: str) -> date | None:
    """The day an archive object belongs to, or None if ``key`` is not an archive object."""
    match = _DAY_KEY.match(key)
    if match is None:
        return None
    year, month, day = (int(group) for group in match.groups()[:3])
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_day(text: str) -> date:
    """``YYYY-MM-DD`` (a UTC day), or ``ValidationError``."""
    if not _DAY_TEXT.match(text):
        raise ValidationError(f"day must be YYYY-MM-DD (got {text[:32]!r})")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(f"{text!r} is not a valid day") from exc
