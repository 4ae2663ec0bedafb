"""Checks on command input. Malformed → ``validation_error``; too big → ``limit_exceeded``."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from ledger.domain.errors import LimitExceededError, PanDetectedError, ValidationError
from ledger.domain.limits import (
    ID_CHARS_MAX,
    INTEGER_MAX,
    METADATA_KEY_CHARS_MAX,
    METADATA_KEYS_MAX,
    METADATA_VALUE_CHARS_MAX,
    TEXT_CHARS_MAX,
)
from ledger.domain.pan import contains_pan

# The patterns are public for the API's OpenAPI document, which states what these checks accept.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
METADATA_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
SCORE_PATTERN = r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$"
_ID = re.compile(ID_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A lone UTF-16 surrogate (e.g. JSON's "\ud800" unpaired) is not Unicode text: it has no UTF-8
# bytes, so it could be neither stored nor hashed into the chain.
_SURROGATE = re.compile("[\ud800-\udfff]")
_METADATA_KEY = re.compile(METADATA_KEY_PATTERN)
_SCORE = re.compile(SCORE_PATTERN)


def check_id(value: str, field: str) -> str:
    """An opaque identifier: letters, digits and ``_ . : -``, at most 64 characters."""
    if len(value) > ID_CHARS_MAX:
        raise LimitExceededError(f"{field} is longer than {ID_CHARS_MAX} characters")
    if not _ID.match(value):
        raise ValidationError(
            f"{field} must be letters, digits, '_', '.', ':' or '-' (got {value[:32]!r})"
        )
    reject_pans(value, where=field)
    return value


def check_text(value: str, field: str, *, required: bool = True) -> str:
    if required and not value.strip():
        raise ValidationError(f"{field} must not be empty")
    if len(value) > TEXT_CHARS_MAX:
        raise LimitExceededError(f"{field} is longer than {TEXT_CHARS_MAX} characters")
    if _CONTROL.search(value):
        raise ValidationError(f"{field} must not contain control characters")
    _reject_surrogates(value, field)
    reject_pans(value, where=field)
    return value


def _reject_surrogates(value: str, field: str) -> None:
    if _SURROGATE.search(value):
        raise ValidationError(f"{field} is not valid Unicode text (it holds a lone surrogate)")


def check_optional_text(value: str | None, field: str) -> str | None:
    return None if value is None else check_text(value, field)


def check_metadata(
    metadata: Mapping[str, object], field: str = "metadata"
) -> dict[str, str | int | bool | None]:
    """Flat string keys to str/int/bool/null values, bounded in count and size, free of PANs."""
    if len(metadata) > METADATA_KEYS_MAX:
        raise LimitExceededError(f"{field} has more than {METADATA_KEYS_MAX} keys")
    checked: dict[str, str | int | bool | None] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not _METADATA_KEY.match(key):
            raise ValidationError(f"{field} key {str(key)[:32]!r} must be an identifier")
        if len(key) > METADATA_KEY_CHARS_MAX:
            raise LimitExceededError(
                f"{field} key {key[:32]!r}… is longer than {METADATA_KEY_CHARS_MAX}"
            )
        if isinstance(value, str):
            if len(value) > METADATA_VALUE_CHARS_MAX:
                raise LimitExceededError(
                    f"{field}.{key} is longer than {METADATA_VALUE_CHARS_MAX} characters"
                )
            _reject_surrogates(value, f"{field}.{key}")
        elif isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > INTEGER_MAX:
                raise LimitExceededError(f"{field}.{key} is outside ±(2^53 - 1)")
        elif not (value is None or isinstance(value, bool)):
            raise ValidationError(f"{field}.{key} must be a string, an integer, a boolean or null")
        checked[key] = value
    reject_pans(checked, where=field)
    return checked


def check_score(score: str) -> str:
    """A risk score: a decimal from 0 to 1 with at most 6 places, kept as text (never a float)."""
    if not _SCORE.match(score):
        raise ValidationError(f"score must be a decimal between 0 and 1 (got {score[:16]!r})")
    return score


def reject_pans(value: object, *, where: str, integers: bool = True) -> None:
    """Raise ``PanDetectedError`` if any string, key or (with ``integers``) integer inside ``value``
    looks like a PAN. Typed amount fields are integers that may legitimately pass Luhn, so the
    final check of a whole payload looks at text only; free-form metadata is checked with integers.

    The message names the location (``where`` and the path) but never echoes the number.
    """
    for path, text in _texts(value, where, integers):
        if contains_pan(text):
            raise PanDetectedError(
                f"{path} contains what looks like a card number; send a token instead"
            )


def _texts(value: object, path: str, integers: bool) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if integers:
            yield path, str(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{path} key", str(key)
            yield from _texts(item, f"{path}.{key}", integers)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _texts(item, f"{path}[{index}]", integers)
