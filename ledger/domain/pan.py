"""Primary account number (card number) guard.

A PAN here is 13–19 digits that passes the Luhn check, not part of a longer digit run, written
bare or grouped by separators: up to three of whitespace (a no-break space included), ``-``,
``.``, ``/`` or ``_`` between two digits. Text is read as a person would read it: full-width
digits count as digits and invisible characters (zero-width spaces and joiners, soft hyphens,
byte-order marks) are ignored, so neither hides a card number. Commands containing one are
rejected (``ledger.domain.validation.reject_pans``); log lines and error messages have them
masked.

A UUID (dashed, or 32 hexadecimal characters with at least one letter) is never a PAN, whatever
digits it happens to hold: about one random UUID in five hundred holds a Luhn-valid run of 13 or
more digits joined by its dashes, and agents use UUIDs as idempotency keys and ids.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

_SEPARATORS = r"[\s\-./_]{0,3}"
_CANDIDATE = re.compile(rf"(?<![0-9])[0-9](?:{_SEPARATORS}[0-9]){{12,18}}(?![0-9])")
_NOT_DIGIT = re.compile(r"[^0-9]")
_DIGIT_RUN = re.compile(r"[0-9]{13,19}")
_HEX = "[0-9A-Fa-f]"
_UUID = re.compile(
    rf"(?<![0-9A-Za-z])(?=[-0-9]*[A-Fa-f])"
    rf"(?:{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}|{_HEX}{{32}})"
    rf"(?![0-9A-Za-z])"
)
_INVISIBLE = frozenset("\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff")
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


def _readable(text: str) -> tuple[str, list[int] | None]:
    """``text`` as read (compatibility forms folded, invisible characters dropped) and, when
    that changed anything, the index in ``text`` of each character read."""
    if text.isascii():
        return text, None
    characters: list[str] = []
    origin: list[int] = []
    for index, character in enumerate(text):
        if character in _INVISIBLE:
            continue
        for folded in unicodedata.normalize("NFKC", character):
            characters.append(folded)
            origin.append(index)
    return "".join(characters), origin


def _without_uuids(text: str) -> str:
    """``text`` with every UUID overwritten by as many letters (indexes are kept)."""
    return _UUID.sub(lambda match: "u" * len(match.group()), text)


def _spans_read(text: str) -> Iterator[tuple[int, int]]:
    for match in _CANDIDATE.finditer(text):
        digits = _NOT_DIGIT.sub("", match.group())
        if luhn_valid(digits):
            yield match.span()
            continue
        # A grouped run may glue a PAN to a neighbouring number: check each bare run too.
        for run in _DIGIT_RUN.finditer(match.group()):
            if _is_whole_run(match.group(), run.start(), run.end()) and luhn_valid(run.group()):
                yield match.start() + run.start(), match.start() + run.end()


def _pan_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where PANs stand in ``text`` (start, end), in order."""
    readable, origin = _readable(text)
    for start, end in _spans_read(_without_uuids(readable)):
        if origin is None:
            yield start, end
        else:
            yield origin[start], origin[end - 1] + 1


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
