"""``payledger pay ...``: one command per domain command, idempotent per ``--key``."""

from __future__ import annotations

import getpass
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, get_type_hints

import typer
from rich.console import Console
from rich.text import Text

from cli import common
from cli.common import (
    EXIT_CODES_HELP,
    HELP_MARKUP,
    JsonOption,
    PaymentIdArgument,
    app,
    global_options,
    print_json,
    reporting,
)
from cli.render import payment_table
from ledger.codec import event_document
from ledger.domain.errors import LimitExceededError, ValidationError
from ledger.domain.events import MetadataValue
from ledger.domain.pan import redact_pans
from ledger.domain.payment import (
    DEFAULT_PROCESSOR,
    AssessRisk,
    AuthorizePayment,
    CapturePayment,
    Command,
    ExpirePayment,
    FailPayment,
    InitiatePayment,
    RefundPayment,
    SettlePayment,
    VoidPayment,
)
from ledger.envelope import ACTOR_KINDS, Actor, ActorKind
from ledger.service import CommandContext, CommandResult

pay_app = typer.Typer(
    help="Run a payment command (idempotent per --key).",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)

_FALLBACK_OPERATOR = "cli"
_OPERATOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_INTEGER = re.compile(r"^-?(0|[1-9][0-9]*)$")
_INTEGER_DIGITS_MAX = 19  # 2**63 - 1 has 19 digits; longer is out of range, not a string
_METADATA_LITERALS: dict[str, MetadataValue] = {"true": True, "false": False, "null": None}
app.add_typer(pay_app, name="pay")

# ── Input parsing ─────────────────────────────────────────────────────────────────────────────


def parse_actor(text: str) -> tuple[ActorKind, str]:
    """``KIND:ID`` (``agent:fraud-bot``) to its parts; ``validation_error`` if malformed."""
    kind, separator, actor_id = text.partition(":")
    for known in ACTOR_KINDS:
        if kind == known and separator and actor_id:
            return known, actor_id
    raise ValidationError(f"--actor must be KIND:ID with KIND one of {', '.join(ACTOR_KINDS)}")


def default_actor() -> tuple[ActorKind, str]:
    """``operator:<OS user>``, or ``operator:cli`` when the user is unknown or not a valid id."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no passwd entry and no login variables: not worth failing for
        return "operator", _FALLBACK_OPERATOR
    return "operator", user if _OPERATOR_ID.match(user) else _FALLBACK_OPERATOR


def parse_metadata(items: Sequence[str]) -> dict[str, MetadataValue]:
    """``KEY=VALUE`` items to metadata; see ``--metadata --help`` for how values are typed."""
    metadata: dict[str, MetadataValue] = {}
    for position, item in enumerate(items, start=1):
        key, separator, text = item.partition("=")
        if not separator or not key:
            raise ValidationError(f"--metadata item {position} is not KEY=VALUE")
        if key in metadata:
            raise ValidationError(f"--metadata key {redact_pans(key[:32])!r} is given twice")
        metadata[key] = _metadata_value(key, text)
    return metadata


def _metadata_value(key: str, text: str) -> MetadataValue:
    if text in _METADATA_LITERALS:
        return _METADATA_LITERALS[text]
    if _INTEGER.match(text):
        if len(text.lstrip("-")) > _INTEGER_DIGITS_MAX:
            raise LimitExceededError(
                f"--metadata {redact_pans(key[:32])} is outside the 64-bit integer range"
            )
        return int(text)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


# ── Shared options of every pay command ───────────────────────────────────────────────────────

KeyOption = Annotated[
    str,
    typer.Option(
        "--key",
        help="Idempotency key: repeating a request with the same key returns the original result; "
        "the same key with a different request fails with idempotency_conflict.",
        show_default=False,
    ),
]
ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor",
        metavar="KIND:ID",
        help="Who acts: KIND is agent, api, system or operator. Default: `operator:<OS user>`.",
        show_default=False,
    ),
]
ActorModelOption = Annotated[
    str | None, typer.Option("--actor-model", help="The agent's model.", show_default=False)
]
ActorVersionOption = Annotated[
    str | None, typer.Option("--actor-version", help="The agent's version.", show_default=False)
]
CorrelationOption = Annotated[
    str | None,
    typer.Option(
        "--correlation-id",
        help="Flow id shared by related commands. Default: the payment's first correlation id.",
        show_default=False,
    ),
]
CausationOption = Annotated[
    str | None,
    typer.Option("--causation-id", help="Id of what caused this command.", show_default=False),
]
MetadataOption = Annotated[
    list[str] | None,
    typer.Option(
        "--metadata",
        metavar="KEY=VALUE",
        help="Repeatable. VALUE is typed: an integer if it is one (-?digits, no leading zero, "
        "64-bit), true/false/null as such, anything else a string; wrap in double quotes to keep "
        'a string, e.g. code="007" or flag="true".',
        show_default=False,
    ),
]
ProcessorOption = Annotated[str, typer.Option("--processor", help="Payment processor.")]
CurrencyCheckOption = Annotated[
    str | None,
    typer.Option(
        "--currency",
        help="Expected currency of the payment; a different one is currency_mismatch.",
        show_default=False,
    ),
]
AmountOption = Annotated[
    str,
    typer.Option("--amount", help="Decimal amount in major units, e.g. 12.34.", show_default=False),
]


class Decision(StrEnum):
    approve = "approve"
    review = "review"
    decline = "decline"


@dataclass(frozen=True, slots=True)
class Caller:
    """The per-request options every pay command shares."""

    key: str
    actor: str | None
    actor_model: str | None
    actor_version: str | None
    correlation_id: str | None
    causation_id: str | None

    def context(self) -> CommandContext:
        kind, actor_id = default_actor() if self.actor is None else parse_actor(self.actor)
        return CommandContext(
            idempotency_key=self.key,
            actor=Actor(kind, actor_id, self.actor_model, self.actor_version),
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
        )


# ── pay commands ──────────────────────────────────────────────────────────────────────────────


def pay_command(name: str) -> Callable[[Callable[..., Command]], Callable[..., Command]]:
    """Register ``build`` as ``payledger pay NAME``.

    ``build`` declares only its own options and returns the command they describe; the options
    every pay command shares (``--key``, the actor, correlation and causation ids, ``--json``)
    are added here, so they are declared once and behave the same everywhere.
    """

    def register(build: Callable[..., Command]) -> Callable[..., Command]:
        def run(
            ctx: typer.Context,
            key: KeyOption,
            actor: ActorOption = None,
            actor_model: ActorModelOption = None,
            actor_version: ActorVersionOption = None,
            correlation_id: CorrelationOption = None,
            causation_id: CausationOption = None,
            json_output: JsonOption = False,
            **arguments: Any,
        ) -> None:
            caller = Caller(key, actor, actor_model, actor_version, correlation_id, causation_id)
            _execute(ctx, lambda: build(**arguments), caller, json_output)

        shared = dict(inspect.signature(run).parameters)
        shared.pop("arguments")
        context = shared.pop("ctx")
        parameters = [context, *inspect.signature(build).parameters.values(), *shared.values()]
        # Typer reads the signature: give it resolved annotations (this module postpones them).
        hints = get_type_hints(run, include_extras=True)
        hints |= get_type_hints(build, include_extras=True)
        parameters = [
            parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[parameter.name])
            for parameter in parameters
        ]
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        run.__doc__ = build.__doc__
        pay_app.command(name)(run)
        return build

    return register


@pay_command("initiate")
def initiate(
    payment_id: Annotated[
        str, typer.Option("--payment-id", help="Client-chosen payment id.", show_default=False)
    ],
    amount: AmountOption,
    currency: Annotated[
        str, typer.Option("--currency", help="ISO 4217 code, e.g. EUR.", show_default=False)
    ],
    merchant: Annotated[
        str, typer.Option("--merchant", help="Opaque merchant id.", show_default=False)
    ],
    customer: Annotated[
        str, typer.Option("--customer", help="Opaque customer id.", show_default=False)
    ],
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    metadata: MetadataOption = None,
) -> Command:
    """Create a payment."""
    return InitiatePayment(
        payment_id,
        amount=amount,
        currency=currency,
        merchant_id=merchant,
        customer_id=customer,
        description=description,
        metadata=parse_metadata(metadata or ()),
    )


@pay_command("assess-risk")
def assess_risk(
    payment_id: PaymentIdArgument,
    decision: Annotated[Decision, typer.Option("--decision", show_default=False)],
    score: Annotated[
        str, typer.Option("--score", help="Decimal from 0 to 1, e.g. 0.12.", show_default=False)
    ],
    reason: Annotated[str, typer.Option("--reason", show_default=False)],
    metadata: MetadataOption = None,
) -> Command:
    """Record a risk decision (approve, review or decline) with its score and reason."""
    return AssessRisk(
        payment_id,
        decision=decision.value,
        score=score,
        reason=reason,
        metadata=parse_metadata(metadata or ()),
    )


@pay_command("authorize")
def authorize(
    payment_id: PaymentIdArgument,
    processor: ProcessorOption = DEFAULT_PROCESSOR,
    reference: Annotated[
        str | None, typer.Option(help="Processor's reference.", show_default=False)
    ] = None,
    hold_until: Annotated[
        str | None,
        typer.Option(
            "--hold-until",
            metavar="TIMESTAMP",
            help="ISO-8601 with timezone, e.g. 2030-01-31T12:00:00Z. Default: in 7 days.",
            show_default=False,
        ),
    ] = None,
) -> Command:
    """Place a hold on the payment's amount."""
    return AuthorizePayment(
        payment_id, processor=processor, reference=reference, hold_until=hold_until
    )


@pay_command("fail")
def fail(
    payment_id: PaymentIdArgument,
    reason: Annotated[str, typer.Option("--reason", show_default=False)],
    processor: ProcessorOption = DEFAULT_PROCESSOR,
    code: Annotated[
        str | None, typer.Option("--code", help="Processor's error code.", show_default=False)
    ] = None,
) -> Command:
    """Record that the processor refused the authorization."""
    return FailPayment(payment_id, reason=reason, processor=processor, processor_code=code)


@pay_command("capture")
def capture(
    payment_id: PaymentIdArgument,
    amount: AmountOption,
    currency: CurrencyCheckOption = None,
    final: Annotated[
        bool, typer.Option("--final", help="Release the rest of the hold after this capture.")
    ] = False,
) -> Command:
    """Capture (part of) the authorized amount."""
    return CapturePayment(payment_id, amount=amount, currency=currency, final=final)


@pay_command("refund")
def refund(
    payment_id: PaymentIdArgument,
    amount: AmountOption,
    currency: CurrencyCheckOption = None,
    reason: Annotated[str | None, typer.Option(show_default=False)] = None,
) -> Command:
    """Refund (part of) the captured amount."""
    return RefundPayment(payment_id, amount=amount, currency=currency, reason=reason)


@pay_command("void")
def void(
    payment_id: PaymentIdArgument,
    reason: Annotated[str | None, typer.Option(show_default=False)] = None,
) -> Command:
    """Release what remains of the authorization hold."""
    return VoidPayment(payment_id, reason=reason)


@pay_command("settle")
def settle(
    payment_id: PaymentIdArgument,
    reference: Annotated[
        str | None, typer.Option(help="Settlement reference.", show_default=False)
    ] = None,
) -> Command:
    """Settle the net captured amount with the merchant."""
    return SettlePayment(payment_id, reference=reference)


@pay_command("expire")
def expire(payment_id: PaymentIdArgument) -> Command:
    """Release the hold of a payment whose hold deadline has passed."""
    return ExpirePayment(payment_id)


def _execute(
    ctx: typer.Context, command: Callable[[], Command], caller: Caller, json_output: bool
) -> None:
    options = global_options(ctx)
    with reporting(options, json_output):
        # Build the command and context first: bad input fails before any AWS call.
        built, context = command(), caller.context()
        result = common.service_factory(common.resolve(options)).execute(built, context)
        if json_output:
            print_json(result_document(result))
        else:
            _print_result(Console(), result)


def result_document(result: CommandResult) -> dict[str, Any]:
    return {
        "payment": result.payment.to_dict(),
        "events": [event_document(event) for event in result.events],
        "replayed": result.replayed,
    }


def _print_result(console: Console, result: CommandResult) -> None:
    if result.replayed:
        console.print(
            Text.assemble(
                ("replayed", "bold cyan"),
                f": this key already produced version {result.payment.version}; no new event",
            )
        )
    else:
        for event in result.events:
            console.print(
                Text.assemble(("recorded ", "bold green"), f"{event.event_type} v{event.version}")
            )
    console.print(payment_table(result.payment))
