"""What the routes are given: the payment service and the payment-state reader, wired once per
process from the environment by the composition root (cold start, a client and no call).

Routes declare them as ``Annotated`` parameters resolved by Powertools' ``Depends``; tests give
the routes other ones through ``app.dependency_overrides``, keyed by the providers below.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends

from handlers.bootstrap import (
    build_payment_service,
    build_payment_state_reader,
    settings_from_environment,
)
from ledger.service import PaymentService
from projections.payment_state_reader import PaymentStateReader

_settings = settings_from_environment()
_service = build_payment_service(_settings)
_payment_states = build_payment_state_reader(_settings)


def payment_service() -> PaymentService:
    return _service


def payment_state_reader() -> PaymentStateReader | None:
    """The read model current payments are served from, if this function has one."""
    return _payment_states


Service = Annotated[PaymentService, Depends(payment_service)]
PaymentStates = Annotated[PaymentStateReader | None, Depends(payment_state_reader)]
