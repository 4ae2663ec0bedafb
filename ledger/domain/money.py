"""Money: integer minor units with an ISO 4217 currency and its exponent; Decimal at the edges."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ledger.domain.errors import LimitExceededError, ValidationError
from ledger.domain.limits import AMOUNT_MINOR_MAX

# ISO 4217 active codes whose minor unit is not 2 digits; every other listed code has 2.
_EXPONENT_NOT_TWO: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip
_EXPONENT_TWO = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL "
    "GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR "
    "LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD "
    "PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC "
    "SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW "
    "ZWG"
).split()
CURRENCY_EXPONENTS: dict[str, int] = dict.fromkeys(_EXPONENT_TWO, 2) | _EXPONENT_NOT_TWO

AMOUNT_PATTERN = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"
AMOUNT_TEXT_CHARS_MAX = 40
_AMOUNT_TEXT = re.compile(AMOUNT_PATTERN)


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point for ``currency``; ``validation_error`` if not ISO 4217."""
    exponent = CURRENCY_EXPONENTS.get(currency)
    if exponent is None:
        raise ValidationError(f"unknown currency {currency!r}: use an ISO 4217 code such as EUR")
    return exponent


def parse_amount(text: str, currency: str) -> int:
    """Major-unit decimal text (``"12.34"``) to positive minor units, exact or refused.

    More fraction digits than the currency has is a ``validation_error`` (never rounded);
    more than 2^63-1 minor units is ``limit_exceeded``.
    """
    exponent = currency_exponent(currency)
    if len(text) > AMOUNT_TEXT_CHARS_MAX or not _AMOUNT_TEXT.match(text):
        raise ValidationError(
            f"amount {text[:AMOUNT_TEXT_CHARS_MAX]!r} is not a plain decimal like 12.34"
        )
    _, _, fraction = text.partition(".")
    if len(fraction) > exponent:
        raise ValidationError(
            f"amount {text} has {len(fraction)} decimal places; {currency} allows {exponent}"
        )
    try:
        minor = int(Decimal(text).scaleb(exponent))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise ValidationError(f"amount {text!r} is not a decimal") from exc
    check_amount_minor(minor)
    return minor


def check_amount_minor(amount_minor: int) -> None:
    if amount_minor <= 0:
        raise ValidationError("amount must be greater than zero")
    if amount_minor > AMOUNT_MINOR_MAX:
        raise LimitExceededError(f"amount exceeds the maximum of {AMOUNT_MINOR_MAX} minor units")


def format_amount(amount_minor: int, currency: str) -> str:
    """Minor units to major-unit decimal text (``1234, EUR -> "12.34"``)."""
    exponent = currency_exponent(currency)
    if exponent == 0:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{whole}.{fraction:0{exponent}d}"
