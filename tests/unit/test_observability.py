"""Log lines never carry a card number (handlers/observability.py)."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

from handlers.observability import PanRedactingFormatter, make_logger
from ledger.domain.pan import PAN_MASK, luhn_valid

PAN = "4111111111111111"
NOT_A_PAN = "4111111111111112"  # 16 digits, fails Luhn


def logged(emit: Any) -> list[dict[str, Any]]:
    """Run ``emit(logger)`` on a fresh logger and parse every line it wrote (each must be JSON)."""
    stream = io.StringIO()
    logger = make_logger(f"redaction-{uuid.uuid4().hex[:8]}", stream=stream)
    emit(logger)
    text = stream.getvalue()
    assert text
    return [json.loads(line) for line in text.splitlines()]


def test_the_fixture_numbers_are_what_they_claim() -> None:
    assert luhn_valid(PAN)
    assert not luhn_valid(NOT_A_PAN)


def test_a_card_number_in_the_message_is_masked() -> None:
    (line,) = logged(lambda logger: logger.info(f"charging card {PAN} now"))
    assert line["message"] == f"charging card {PAN_MASK} now"


def test_card_numbers_in_extra_fields_keys_and_numbers_are_masked_and_the_line_stays_json() -> None:
    extra = {
        "card": PAN,
        "grouped": "4111 1111 1111 1111",
        "dashed": "4111-1111-1111-1111",
        "as_number": int(PAN),
        "nested": {"deep": [f"pan={PAN}"]},
        PAN: "a key",
        "amount_minor": int(NOT_A_PAN),
        "order": "o-1",
    }
    (line,) = logged(lambda logger: logger.info("payment", extra=extra))
    assert PAN not in json.dumps(line)
    assert line["card"] == line["grouped"] == line["dashed"] == line["as_number"] == PAN_MASK
    assert line["nested"] == {"deep": [f"pan={PAN_MASK}"]}
    assert line[PAN_MASK] == "a key"
    assert line["amount_minor"] == int(NOT_A_PAN)  # not a PAN: left alone, still a number
    assert line["order"] == "o-1"


def test_a_card_number_in_an_exception_is_masked() -> None:
    def emit(logger: Any) -> None:
        try:
            raise ValueError(f"declined card {PAN}")
        except ValueError:
            logger.exception("charge failed")

    (line,) = logged(emit)
    assert PAN not in json.dumps(line)
    assert f"ValueError: declined card {PAN_MASK}" in line["exception"]


def test_lines_without_card_numbers_are_unchanged() -> None:
    (line,) = logged(
        lambda logger: logger.info("captured", extra={"amount_minor": 1250, "id": "p-1"})
    )
    assert (line["message"], line["amount_minor"], line["id"]) == ("captured", 1250, "p-1")


def test_every_handler_logger_uses_the_redacting_formatter() -> None:
    logger = make_logger(f"redaction-{uuid.uuid4().hex[:8]}", stream=io.StringIO())
    assert isinstance(logger.registered_formatter, PanRedactingFormatter)
