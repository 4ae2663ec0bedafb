"""What the routes are given: the payment service and the payment-state reader, built from the
environment by the composition root on first use and kept for the process (a client, no call).

Importing the API builds nothing, so its OpenAPI document can be written offline; the Lambda
entry point (``handlers.api``) calls ``wire`` during the init phase. Routes declare these as
``Annotated`` parameters resolved by Powertools' ``Depends``; tests give the routes other ones
through ``app.dependency_overrides``, keyed by the providers below.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated

from aws_lambda_powertools.event_handler import Depends

from handlers.bootstrap import (
    Settings,
    build_payment_service,
    build_payment_state_reader,
    settings_from_environment,
)
from ledger.service import PaymentService
from projections.payment_state_reader import PaymentStateReader


@cache
def _settings() -> Settings:
    return settings_from_environment()


@cache
def payment_service() -> PaymentService:
    return build_payment_service(_settings())


@cache
def payment_state_reader() -> PaymentStateReader | None:
    """The read model current payments are served from, if this function has one."""
    return build_payment_state_reader(_settings())


def wire() -> None:
    """Build every dependency now rather than on the first request that needs it."""
    payment_service()
    payment_state_reader()


Service = Annotated[PaymentService, Depends(payment_service)]
PaymentStates = Annotated[PaymentStateReader | None, Depends(payment_state_reader)]
