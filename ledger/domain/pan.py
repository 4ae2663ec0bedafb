"""Primary account number (card number) guard.

A PAN here is 13–19 digits, optionally grouped by single spaces or dashes, not part of a longer
digit run, that passes the Luhn check. Event payloads and metadata containing one are rejected;
log lines have them masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from ledger.domain.errors import PanDetectedError

_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_DIGIT_RUN = re.compile(r"[0-9]{13,19}")
PAN_MASK = "[PAN REDACTED]"


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _pan_spans(text: str) -> Iterator[tuple[int, int]]:
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield match.span()
            continue
        # A grouped run may glue a PAN to a neighbouring number: check each bare run too.
        for run in _DIGIT_RUN.finditer(match.group()):
            bare = run.group()
            if _is_whole_run(match.group(), run.start(), run.end()) and luhn_valid(bare):
                yield match.start() + run.start(), match.start() + run.end()


def _is_whole_run(text: str, start: int, end: int) -> bool:
    return (start == 0 or not text[start - 1].isdigit()) and (
        end == len(text) or not text[end].isdigit()
    )


def contains_pan(text: str) -> bool:
    return next(_pan_spans(text), None) is not None


def redact_pans(text: str) -> str:
    """``text`` with every PAN-like number replaced by ``[PAN REDACTED]``."""
    spans = list(_pan_spans(text))
    for start, end in reversed(spans):
        text = text[:start] + PAN_MASK + text[end:]
    return text


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
