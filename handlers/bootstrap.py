"""The composition root: the one place that reads configuration and wires adapters.

Lambda functions read the environment ``template.yaml`` sets; the CLI reads the same variables
(``AWS_ENDPOINT_URL`` is honoured by boto3 itself) or a stack's outputs (``--stack NAME``).
Clients are created once per process and reused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from ledger.domain.errors import LedgerError, NotFoundError
from ledger.dynamodb import DynamoDBEventStore
from ledger.service import PaymentService
from projections.payment_state import PaymentStateProjection

EVENTS_TABLE_VARIABLE = "EVENTS_TABLE"
EVENTS_TABLE_OUTPUT = "EventsTableName"
# Optional for processes that never read the payment-state read model (the CLI, older stacks);
# ``build_payment_state_projection`` refuses to run without it.
PAYMENT_STATE_TABLE_VARIABLE = "PAYMENT_STATE_TABLE"
PAYMENT_STATE_TABLE_OUTPUT = "PaymentStateTableName"
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
    tcp_keepalive=True,
)


class ConfigurationError(LedgerError):
    """The process is not configured to reach its resources (exit 1; never a client's fault)."""

    code = "configuration_error"


@dataclass(frozen=True, slots=True)
class Settings:
    events_table: str
    payment_state_table: str | None = None


def settings_from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    table = environ.get(EVENTS_TABLE_VARIABLE, "").strip()
    if not table:
        raise ConfigurationError(f"set {EVENTS_TABLE_VARIABLE} (or pass --stack NAME)")
    payment_state_table = environ.get(PAYMENT_STATE_TABLE_VARIABLE, "").strip() or None
    return Settings(events_table=table, payment_state_table=payment_state_table)


def settings_from_stack(stack_name: str) -> Settings:
    """Resource names from a deployed stack's outputs, like a SAM application's tests find them."""
    client = aws_client("cloudformation")
    try:
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except client.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            raise NotFoundError(f"stack {stack_name!r} not found") from exc
        raise ConfigurationError(f"cannot read stack {stack_name!r}: {exc}") from exc
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stacks[0].get("Outputs", [])}
    if EVENTS_TABLE_OUTPUT not in outputs:
        raise ConfigurationError(f"stack {stack_name!r} has no {EVENTS_TABLE_OUTPUT} output")
    return Settings(
        events_table=outputs[EVENTS_TABLE_OUTPUT],
        payment_state_table=outputs.get(PAYMENT_STATE_TABLE_OUTPUT),
    )


@cache
def aws_client(service: str) -> Any:
    """One boto3 client per service per process (Lambda reuses it across invocations)."""
    return boto3.session.Session().client(service, config=_CLIENT_CONFIG)


def build_payment_service(settings: Settings) -> PaymentService:
    return PaymentService(DynamoDBEventStore(aws_client("dynamodb"), settings.events_table))


def build_payment_state_projection(settings: Settings) -> PaymentStateProjection:
    """The payment-state read model; gaps are filled from the events table (one Query)."""
    if settings.payment_state_table is None:
        raise ConfigurationError(f"set {PAYMENT_STATE_TABLE_VARIABLE} (or pass --stack NAME)")
    client = aws_client("dynamodb")
    return PaymentStateProjection(
        client,
        settings.payment_state_table,
        DynamoDBEventStore(client, settings.events_table),
    )


def build_payment_state_reader(settings: Settings) -> PaymentStateProjection | None:
    """The read model the API serves current payments from, if this process has one."""
    if settings.payment_state_table is None:
        return None
    return build_payment_state_projection(settings)
