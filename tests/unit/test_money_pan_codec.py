from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.codec import canonical_json, chain_hash, uuid7, verify_chain
from ledger.domain.errors import (
    ChainBrokenError,
    LimitExceededError,
    PanDetectedError,
    ValidationError,
)
from ledger.domain.money import CURRENCY_EXPONENTS, format_amount, parse_amount
from ledger.domain.pan import PAN_MASK, contains_pan, luhn_valid, redact_pans
from ledger.domain.validation import check_metadata, reject_pans

# ── money ──────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.34", "EUR", 1234),
        ("12", "EUR", 1200),
        ("12.3", "EUR", 1230),
        ("0.01", "EUR", 1),
        ("1000", "JPY", 1000),
        ("1.234", "BHD", 1234),
        ("0.0001", "CLF", 1),
        ("90071992547409.91", "EUR", 2**53 - 1),
        ("9007199254740991", "JPY", 2**53 - 1),
    ],
)
def test_parse_amount_valid_and_boundary(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [("12.345", "EUR"), ("1.5", "JPY"), ("1.2345", "BHD"), ("-1", "EUR"), ("1e3", "EUR"),
     (" 1", "EUR"), ("01", "EUR"), (".5", "EUR"), ("0", "EUR"), ("0.00", "EUR"), ("", "EUR"),
     ("1", "XXX"), ("1", "eur"), ("NaN", "EUR"), ("١٢", "EUR")],
)  # fmt: skip
def test_parse_amount_rejects_malformed_or_too_precise(text: str, currency: str) -> None:
    with pytest.raises(ValidationError):
        parse_amount(text, currency)


@pytest.mark.parametrize(
    ("text", "currency"),
    [("90071992547409.92", "EUR"), ("9007199254740992", "JPY"), ("92233720368547758.08", "EUR")],
)
def test_parse_amount_beyond_exact_json_integers_is_a_limit(text: str, currency: str) -> None:
    with pytest.raises(LimitExceededError):
        parse_amount(text, currency)


@given(st.sampled_from(sorted(CURRENCY_EXPONENTS)), st.integers(1, 2**53 - 1))
def test_format_then_parse_round_trips(currency: str, minor: int) -> None:
    assert parse_amount(format_amount(minor, currency), currency) == minor


def test_currency_exponents_of_note() -> None:
    assert CURRENCY_EXPONENTS["JPY"] == 0
    assert CURRENCY_EXPONENTS["EUR"] == 2
    assert CURRENCY_EXPONENTS["BHD"] == 3
    assert CURRENCY_EXPONENTS["KWD"] == 3
    assert CURRENCY_EXPONENTS["CLF"] == 4
    assert len(CURRENCY_EXPONENTS) > 150


# ── PAN guard ──────────────────────────────────────────────────────────────────────────────

VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"  # 15 digits
NINETEEN = "6011000990139424" + "000"  # 19 digits: check Luhn below


def _luhn_complete(prefix: str) -> str:
    for last in "0123456789":
        if luhn_valid(prefix + last):
            return prefix + last
    raise AssertionError


@pytest.mark.parametrize(
    "text",
    [VISA, MASTERCARD, AMEX, "4111 1111 1111 1111", "4111-1111-1111-1111", f"card {VISA} end",
     f"x{VISA}y", _luhn_complete("123456789012"), _luhn_complete("123456789012345678")],
)  # fmt: skip
def test_pan_detected(text: str) -> None:
    assert contains_pan(text)
    with pytest.raises(PanDetectedError) as error:
        reject_pans({"note": text}, where="metadata")
    assert VISA not in error.value.message


@pytest.mark.parametrize(
    "text",
    ["4111111111111112", "411111111111", VISA + "1", "2026-11-21T12:18:16.123456Z",
     "01a1fe0d-7021-706e-b017-6d6aa9f2fa0a", "order 12345", _luhn_complete("12345678901"),
     _luhn_complete("1234567890123456789")],
)  # fmt: skip
def test_not_a_pan(text: str) -> None:
    assert not contains_pan(text)


FULL_WIDTH_VISA = VISA.translate({ord(digit): 0xFF10 + int(digit) for digit in "0123456789"})


@pytest.mark.parametrize(
    "text",
    ["4111.1111.1111.1111", "4111/1111/1111/1111", "4111_1111_1111_1111", "4111  1111  1111  1111",
     "4111\u00a01111\u00a01111\u00a01111", "4111\u200b1111\u200b1111\u200b1111",
     "4\u200d111111111111111", FULL_WIDTH_VISA, f"card:{FULL_WIDTH_VISA}.",
     "4111 - 1111 - 1111 - 1111", f"{VISA}\u00ad"],
)  # fmt: skip
def test_pan_detected_through_other_separators_and_forms(text: str) -> None:
    assert contains_pan(text)
    assert redact_pans(text).count(PAN_MASK) == 1
    with pytest.raises(PanDetectedError):
        reject_pans({"note": text}, where="metadata")


@settings(max_examples=2000)
@given(st.uuids(), st.sampled_from(["{}", "{!s:.36}", "key-{}", "{} and {}", "urn:uuid:{}"]))
def test_a_uuid_is_never_a_pan(value: uuid.UUID, shape: str) -> None:
    for text in (shape.format(value, value), shape.format(value.hex, value.hex).upper()):
        assert not contains_pan(text), text
        assert redact_pans(text) == text


def test_uuids_that_hold_a_luhn_valid_digit_run_are_not_pans() -> None:
    # Random UUIDv4s whose dashes join a Luhn-valid run of 13+ digits (about 1 in 500 does):
    # the guard once refused them as card numbers.
    for text in (
        "7ee5e857-3489-4498-9143-40ff813fb5cd",
        "61502dee-3518-4376-8241-0ad1f6da7a63",
        "a0123246-7537-4466-a233-0a67aac0a780",
    ):
        assert not contains_pan(text)
        assert not contains_pan(f"Idempotency-Key: {text}")
    assert contains_pan(f"7ee5e857-3489-4498-9143-40ff813fb5cd paid with {VISA}")


def test_redaction_of_a_non_ascii_text_masks_exactly_the_pan() -> None:
    text = f"caf\u00e9 \u2014 {FULL_WIDTH_VISA} \u2014 fin"
    assert redact_pans(text) == f"caf\u00e9 \u2014 {PAN_MASK} \u2014 fin"
    hidden = "paid 4111\u200b1111\u200b1111\u200b1111 ok"
    assert redact_pans(hidden) == f"paid {PAN_MASK} ok"


def test_pan_in_key_integer_and_nested_value_is_rejected() -> None:
    for value in ({VISA: "x"}, {"n": int(VISA)}, {"a": [{"b": VISA}]}):
        with pytest.raises(PanDetectedError):
            reject_pans(value, where="metadata")
    reject_pans({"amount_minor": int(VISA)}, where="payload", integers=False)


def test_metadata_checks_pans_and_limits() -> None:
    with pytest.raises(PanDetectedError):
        check_metadata({"card": VISA})
    with pytest.raises(LimitExceededError):
        check_metadata({f"k{i}": i for i in range(33)})
    extremes = {"n": 2**53 - 1, "m": -(2**53 - 1)}
    assert check_metadata(extremes) == extremes
    for beyond in (2**53, -(2**53)):
        with pytest.raises(LimitExceededError):
            check_metadata({"n": beyond})
    with pytest.raises(ValidationError):
        check_metadata({"bad key": 1})
    assert check_metadata({"order": "A-1", "n": 3, "ok": True, "none": None}) == {
        "order": "A-1", "n": 3, "ok": True, "none": None,
    }  # fmt: skip


def test_redaction_masks_every_pan_and_keeps_the_rest() -> None:
    grouped = " ".join(MASTERCARD[start : start + 4] for start in range(0, 16, 4))
    line = f'{{"msg": "paid with {VISA} and {grouped}", "amount": 1234}}'
    redacted = redact_pans(line)
    assert VISA not in redacted
    assert "5555 5555" not in redacted
    assert redacted.count(PAN_MASK) == 2
    assert '"amount": 1234' in redacted


# ── canonical JSON, chain, ids ─────────────────────────────────────────────────────────────


def test_canonical_json_is_sorted_compact_utf8_and_refuses_floats() -> None:
    assert canonical_json({"b": 1, "a": ["é", None, True]}) == '{"a":["é",null,true],"b":1}'
    with pytest.raises(ValidationError):
        canonical_json({"amount": 1.5})


def test_chain_hash_is_sha256_of_prev_hash_and_canonical_document() -> None:
    document = {"b": 2, "a": "x"}
    expected = hashlib.sha256(("0" * 64 + '{"a":"x","b":2}').encode()).hexdigest()
    assert chain_hash("0" * 64, document) == expected


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(value[14] == "7" and value[19] in "89ab" for value in ids)


def test_verify_chain_locates_tampering(recorded_history) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    events = recorded_history
    assert verify_chain(events) == events[-1].hash
    payload = json.loads(events[1].payload)
    payload["score"] = "0.99"
    tampered = [events[0], replace(events[1], payload=canonical_json(payload)), *events[2:]]
    with pytest.raises(ChainBrokenError, match=f"version 2 event {events[1].event_id}"):
        verify_chain(tampered)
    with pytest.raises(ChainBrokenError, match="expected version 2"):
        verify_chain([events[0], *events[2:]])
    with pytest.raises(ChainBrokenError, match="prev_hash"):
        verify_chain([events[0], replace(events[2], version=2), *events[3:]])
