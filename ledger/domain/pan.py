"""Primary account number (card number) guard.

A PAN here is 13–19 digits, optionally grouped by single spaces or dashes, not part of a longer
digit run, that passes the Luhn check. Commands containing one are rejected
(``ledger.domain.validation.reject_pans``); log lines and error messages have them masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

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
