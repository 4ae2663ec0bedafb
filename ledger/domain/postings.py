"""Double-entry postings carried by money-moving events.

A posting line moves ``amount_minor`` of ``currency`` on one ``account`` in one ``direction``.
Holds are two-phase, as in TigerBeetle's pending transfers:

| phase          | meaning                                     | pending balance | posted balance |
|----------------|---------------------------------------------|-----------------|----------------|
| ``pending``    | a hold is placed (authorization)            | +               |                |
| ``post_pending``| (part of) a hold becomes posted (capture)  | -               | +              |
| ``void_pending``| (the rest of) a hold is released           | -               |                |
| ``posted``     | money moves directly (settlement, refund)   |                 | +              |

Guarantee: within every event, debits equal credits per currency and phase, so every balance
view sums to zero per currency.

Accounts: ``customer:<id>`` (owed by the customer's card), ``merchant:<id>`` (owed to the
merchant), ``processor:<name>`` (clearing: collected by the processor, owed to us).

| event                | lines (debit → credit)                                  |
|----------------------|---------------------------------------------------------|
| PaymentAuthorized    | customer → merchant, ``pending``                        |
| PaymentCaptured      | customer → merchant, ``post_pending``                   |
| PaymentVoided, PaymentExpired, PaymentHoldReleased | customer → merchant, ``void_pending`` |
| PaymentSettled       | processor → customer, ``posted`` (the processor collected the card funds) |
| PaymentRefunded      | merchant → customer, ``posted``                         |
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

import pydantic

Direction = Literal["debit", "credit"]
Phase = Literal["pending", "post_pending", "void_pending", "posted"]


class Posting(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", strict=True)

    account: str
    direction: Direction
    amount_minor: int = pydantic.Field(gt=0)
    currency: str
    phase: Phase


def customer_account(customer_id: str) -> str:
    return f"customer:{customer_id}"


def merchant_account(merchant_id: str) -> str:
    return f"merchant:{merchant_id}"


def processor_account(processor: str) -> str:
    return f"processor:{processor}"


def transfer(
    debit_account: str, credit_account: str, amount_minor: int, currency: str, phase: Phase
) -> tuple[Posting, Posting]:
    """One balanced pair of lines: ``debit_account`` debited, ``credit_account`` credited."""
    return (
        Posting(
            account=debit_account,
            direction="debit",
            amount_minor=amount_minor,
            currency=currency,
            phase=phase,
        ),
        Posting(
            account=credit_account,
            direction="credit",
            amount_minor=amount_minor,
            currency=currency,
            phase=phase,
        ),
    )


def imbalances(postings: Iterable[Posting]) -> dict[tuple[str, str], int]:
    """Debits minus credits per (currency, phase), non-zero ones only (empty = balanced)."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for line in postings:
        sign = 1 if line.direction == "debit" else -1
        totals[(line.currency, line.phase)] += sign * line.amount_minor
    return {key: total for key, total in totals.items() if total}
