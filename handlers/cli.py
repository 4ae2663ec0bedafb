"""The ``payledger`` command line (typer + rich): payment commands, history, replay, demo.

Resources come from the composition root: ``EVENTS_TABLE`` (and boto3's own ``AWS_ENDPOINT_URL``)
or, with ``--stack NAME``, the outputs of a deployed stack. ``--json`` prints documents for
machines; failures then print ``{"error": {"code", "message"}}`` on stdout, otherwise one line
``error[code]: message`` on stderr.

| exit | meaning                                                                             |
|------|-------------------------------------------------------------------------------------|
| 0    | success                                                                             |
| 1    | anything else: configuration_error, chain_broken, undecodable_event, unexpected     |
| 2    | invalid input: validation_error, pan_detected, limit_exceeded, usage errors         |
| 3    | rule violation: invalid_transition, capture_exceeds_authorized, currency_mismatch…  |
| 4    | conflict: idempotency_conflict, concurrency_conflict, already_exists                |
| 5    | not_found                                                                           |
"""

from __future__ import annotations

import getpass
import inspect
import json
import re
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, get_type_hints

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from handlers import bootstrap
from ledger.codec import event_document, verify_chain
from ledger.domain.errors import EXIT_OTHER, LedgerError, LimitExceededError, ValidationError
from ledger.domain.events import MetadataValue
from ledger.domain.money import format_amount
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
from ledger.envelope import ACTOR_KINDS, Actor, ActorKind, RecordedEvent, payment_id_of
from ledger.service import (
    CommandContext,
    CommandResult,
    PaymentService,
    PaymentSnapshot,
    replay_steps,
)

if TYPE_CHECKING:
    from projections.rebuild import RebuildReport

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 other (configuration, corrupted history, unexpected); "
    "2 invalid input (validation_error, pan_detected, limit_exceeded, usage); "
    "3 rule violation (invalid_transition, capture_exceeds_authorized, refund_exceeds_captured, "
    "currency_mismatch, hold_expired, hold_not_expired); "
    "4 conflict (idempotency_conflict, concurrency_conflict, already_exists); 5 not_found."
)
UNEXPECTED_ERROR_CODE = "unexpected_error"
_FALLBACK_OPERATOR = "cli"
_OPERATOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_INTEGER = re.compile(r"^-?(0|[1-9][0-9]*)$")
_INTEGER_DIGITS_MAX = 19  # 2**63 - 1 has 19 digits; longer is out of range, not a string
_METADATA_LITERALS: dict[str, MetadataValue] = {"true": True, "false": False, "null": None}
_HASH_CHARS_SHOWN = 12


def build_service(stack: str | None) -> PaymentService:
    """The default wiring: a stack's outputs with ``--stack``, else the process environment."""
    if stack is not None:
        settings = bootstrap.settings_from_stack(stack)
    else:
        settings = bootstrap.settings_from_environment()
    return bootstrap.build_payment_service(settings)


service_factory: Callable[[str | None], PaymentService] = build_service
"""Seam for tests: replace to run the CLI against another service (e.g. a failing store)."""


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    stack: str | None
    debug: bool


app = typer.Typer(
    name="payledger",
    help="Event-sourced payment ledger: record payment commands, read and replay their history.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
pay_app = typer.Typer(
    help="Run a payment command (idempotent per --key).",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
)
app.add_typer(pay_app, name="pay")


@app.callback()
def _global_options(
    ctx: typer.Context,
    stack: Annotated[
        str | None,
        typer.Option(help="Read resource names from this CloudFormation stack's outputs."),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Print a traceback for unexpected errors.")
    ] = False,
) -> None:
    ctx.obj = GlobalOptions(stack=stack, debug=debug)


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

PaymentIdArgument = Annotated[str, typer.Argument(help="The payment's id.", show_default=False)]
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
        help="Who acts: KIND is agent, api, system or operator. Default: operator:<OS user>.",
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
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
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
    options = _options(ctx)
    with _reporting(options, json_output):
        # Build the command and context first: bad input fails before any AWS call.
        built, context = command(), caller.context()
        result = service_factory(options.stack).execute(built, context)
        if json_output:
            _print_json(result_document(result))
        else:
            _print_result(Console(), result)


def result_document(result: CommandResult) -> dict[str, Any]:
    return {
        "payment": result.payment.to_dict(),
        "events": [event_document(event) for event in result.events],
        "replayed": result.replayed,
    }


# ── history, replay, demo ─────────────────────────────────────────────────────────────────────


@app.command("history")
def history(
    ctx: typer.Context, payment_id: PaymentIdArgument, json_output: JsonOption = False
) -> None:
    """Show a payment's events and verify their hash chain."""
    options = _options(ctx)
    with _reporting(options, json_output):
        events = service_factory(options.stack).load(payment_id)
        if json_output:
            _print_json({"events": [event_document(event) for event in events]})
            return
        console = Console()
        console.print(history_table(events))
        console.print(chain_report(events))


@app.command("replay")
def replay(
    ctx: typer.Context,
    payment_id: PaymentIdArgument,
    version: Annotated[
        int | None,
        typer.Option("--version", help="Replay up to this version.", show_default=False),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="TIMESTAMP",
            help="Replay the events recorded up to this ISO-8601 time.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show the payment's state after each event (changed fields highlighted)."""
    options = _options(ctx)
    with _reporting(options, json_output):
        service = service_factory(options.stack)
        # ``get`` applies --version and --as-of; the steps are the stream prefix it folded.
        payment = service.get(payment_id, version_max=version, as_of=as_of)
        steps = replay_steps(service.load(payment_id, version_max=payment.version))
        if json_output:
            _print_json(
                {
                    "payment": payment.to_dict(),
                    "steps": [
                        {"event": event_document(event), "payment": snapshot.to_dict()}
                        for event, snapshot in steps
                    ],
                }
            )
            return
        Console().print(replay_table(steps))


db_app = typer.Typer(help="The PostgreSQL views' schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


class RebuildSource(StrEnum):
    dynamodb = "dynamodb"


def _database() -> bootstrap.DatabaseSettings:
    """The configured database or, on a developer's machine with none configured, the embedded
    PostgreSQL with its data under ``.payledger/pg`` (started for this command, kept across)."""
    database = bootstrap.database_settings()
    if database is not None:
        return database
    from devstack.postgres import start_postgres  # the CLI's one other use of the local stack

    return bootstrap.DatabaseSettings(url=start_postgres())


@db_app.command("migrate")
def db_migrate(
    ctx: typer.Context,
    schema: Annotated[
        str | None,
        typer.Option(help="Schema to migrate. Default: the configured one.", show_default=False),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Apply the pending SQL migrations (idempotent; refuses edited ones)."""
    options = _options(ctx)
    with _reporting(options, json_output):
        from handlers.database import database_connector
        from projections.postgres.migrate import migrate

        database = _database()
        target = schema or database.schema
        with database_connector(database)() as connection:
            applied = migrate(connection, target)
        names = [f"{migration.version:04d}_{migration.name}" for migration in applied]
        if json_output:
            _print_json({"schema": target, "applied": names})
        else:
            typer.echo(
                f"{target}: applied {', '.join(names)}" if names else f"{target}: up to date"
            )


@app.command("rebuild")
def rebuild(
    ctx: typer.Context,
    source: Annotated[
        RebuildSource, typer.Option("--source", help="Where the events are read from.")
    ] = RebuildSource.dynamodb,
    into: Annotated[
        str | None,
        typer.Option(
            "--into",
            metavar="SCHEMA",
            help="New schema to build. Default: <schema>_rebuild_<timestamp>.",
            show_default=False,
        ),
    ] = None,
    swap: Annotated[
        bool, typer.Option("--swap", help="Make the rebuilt schema the live one.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Replay every event through the projection into a fresh schema, compare it with the live
    one (rows and checksum per table) and, with --swap, replace the live schema by it."""
    options = _options(ctx)
    with _reporting(options, json_output):
        from handlers.database import database_connector
        from projections.rebuild import default_rebuild_schema, rebuild_postgres, swap_schemas

        database = _database()
        store = service_factory(options.stack).store
        connect = database_connector(database)
        target = into or default_rebuild_schema(database.schema)
        with _rebuild_progress(json_output) as progress:
            report = rebuild_postgres(
                store, connect, live_schema=database.schema, into_schema=target, progress=progress
            )
        if swap and not report.failures:
            report.swapped_out = swap_schemas(
                connect, live_schema=database.schema, rebuilt_schema=target
            )
        if json_output:
            _print_json(report.to_dict())
        else:
            Console().print(rebuild_table(report))
        if report.failures:
            raise typer.Exit(EXIT_OTHER)


@contextmanager
def _rebuild_progress(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    if quiet:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[streams]:,} payments, {task.fields[events]:,} events"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task("rebuilding", total=None, streams=0, events=0)

        def advance(streams: int, events: int) -> None:
            bar.update(task, streams=streams, events=events)

        yield advance


def rebuild_table(report: RebuildReport) -> Table:
    verdict = "identical to" if report.identical else "differs from"
    table = Table(
        title=f"{report.schema}: {report.streams:,} payments, {report.events:,} events, "
        f"{verdict} {report.live_schema}"
    )
    for column in ("table", "live rows", "rebuilt rows", "checksum"):
        table.add_column(column)
    for name, rebuilt in report.rebuilt.items():
        live = report.live.get(name)
        same = live == rebuilt
        table.add_row(
            name,
            "—" if live is None else f"{live.rows:,}",
            f"{rebuilt.rows:,}",
            Text("same", style="green") if same else Text("differs", style="bold red"),
        )
    for failure in report.failures:
        table.add_row(
            Text(f"failed {failure.stream_id} v{failure.version}", style="bold red"),
            "",
            "",
            failure.reason,
        )
    if report.swapped_out:
        table.caption = (
            f"swapped: {report.schema} is now {report.live_schema};"
            f" the replaced views are kept in {report.swapped_out}"
        )
    return table


@app.command("demo")
def demo(ctx: typer.Context) -> None:
    """Run a scripted payment flow on a throwaway local DynamoDB (moto) and check the ledger."""
    with _reporting(_options(ctx), json_output=False):
        from devstack.demo import run_demo  # the one import of devstack from handlers

        exit_code = run_demo(Console())
    raise typer.Exit(exit_code)


# ── Rendering ─────────────────────────────────────────────────────────────────────────────────


def history_table(events: Sequence[RecordedEvent]) -> Table:
    title = f"payment {payment_id_of(events[0].stream_id)}" if events else "payment"
    table = Table(title=title, title_justify="left")
    table.add_column("v", justify="right")
    table.add_column("recorded at", no_wrap=True)
    table.add_column("event")
    table.add_column("actor")
    table.add_column("correlation / causation")
    table.add_column("amount", justify="right")
    table.add_column("hash", no_wrap=True)
    for event in events:
        table.add_row(
            str(event.version),
            event.recorded_at,
            event.event_type,
            Text(_actor_text(event.actor)),
            Text(f"{_short(event.correlation_id)} / {_short(event.causation_id or '-')}"),
            _event_amount(event),
            event.hash[:_HASH_CHARS_SHOWN],
        )
    return table


def chain_report(events: Sequence[RecordedEvent]) -> Text:
    """Verify the hash chain (``ChainBrokenError`` if broken) and say so."""
    head = verify_chain(events)
    return Text.assemble(
        ("hash chain verified", "bold green"),
        f": {len(events)} events, head {head[:_HASH_CHARS_SHOWN]}",
    )


_REPLAY_COLUMNS = (
    ("status", "status"),
    ("risk", "risk_decision"),
    ("authorized", "amount_authorized_minor"),
    ("captured", "amount_captured_minor"),
    ("released", "amount_released_minor"),
    ("refunded", "amount_refunded_minor"),
    ("settled", "amount_settled_minor"),
    ("hold left", "hold_remaining_minor"),
)


def replay_table(steps: Sequence[tuple[RecordedEvent, PaymentSnapshot]]) -> Table:
    """One row per event: the payment's state after it, fields changed by it in bold yellow."""
    title = f"payment {steps[0][1].state.payment_id} replayed" if steps else "replay"
    table = Table(title=title, title_justify="left")
    table.add_column("v", justify="right")
    table.add_column("event")
    for header, _ in _REPLAY_COLUMNS:
        table.add_column(header, justify="left" if header in ("status", "risk") else "right")
    previous: dict[str, Any] | None = None  # the first event sets every field: nothing to mark
    for event, snapshot in steps:
        current = snapshot.to_dict()
        cells = [
            Text(
                _replay_value(current, field),
                style="bold yellow" if previous and previous[field] != current[field] else "",
            )
            for _, field in _REPLAY_COLUMNS
        ]
        table.add_row(str(event.version), event.event_type, *cells)
        previous = current
    return table


def payment_table(payment: PaymentSnapshot) -> Table:
    """The payment's fields that carry information: amounts that are zero and nulls are left out."""
    document = payment.to_dict()
    currency = payment.state.currency
    table = Table(
        title=f"payment {payment.state.payment_id}", title_justify="left", show_header=False
    )
    table.add_column("field", style="dim")
    table.add_column("value")
    for name, value in document.items():
        if value is None or value == 0 or name in _PAYMENT_FIELDS_HIDDEN:
            continue
        if name.endswith("_minor"):
            value = f"{format_amount(value, currency)} {currency}"
            name = name.removesuffix("_minor").removeprefix("amount_")
        elif name == "head_hash":
            value = value[:_HASH_CHARS_SHOWN]
        table.add_row(name, Text(str(value)))
    return table


_PAYMENT_FIELDS_HIDDEN = frozenset({"payment_id", "currency", "amount", "created_at"})


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


def _replay_value(document: dict[str, Any], field: str) -> str:
    value = document[field]
    if field.endswith("_minor"):
        return format_amount(value, document["currency"])
    return "-" if value is None else str(value)


def _event_amount(event: RecordedEvent) -> str:
    payload = json.loads(event.payload)
    currency = payload.get("currency")
    for field, prefix in (("amount_minor", ""), ("released_minor", "released ")):
        if currency is not None and isinstance(payload.get(field), int):
            return f"{prefix}{format_amount(payload[field], currency)} {currency}"
    return ""


def _actor_text(actor: Actor) -> str:
    text = f"{actor.kind}:{actor.id}"
    details = " ".join(part for part in (actor.model, actor.version) if part)
    return f"{text} ({details})" if details else text


def _short(identifier: str) -> str:
    # uuid7 ids share their leading timestamp digits within a flow: the tail tells them apart.
    return identifier if len(identifier) <= 12 else "…" + identifier[-8:]


def _print_json(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


# ── Errors ────────────────────────────────────────────────────────────────────────────────────


def _options(ctx: typer.Context) -> GlobalOptions:
    options = ctx.find_object(GlobalOptions)
    return options if options is not None else GlobalOptions(stack=None, debug=False)


@contextmanager
def _reporting(options: GlobalOptions, json_output: bool) -> Iterator[None]:
    """Map a failure to its one-line report (or JSON document) and exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except LedgerError as exc:
        _fail(exc.code, exc.message, exc.exit_code, json_output)
    except Exception as exc:  # noqa: BLE001 - the CLI's last line: report, never a traceback
        if options.debug:
            traceback.print_exc()
        _fail(UNEXPECTED_ERROR_CODE, _one_line(exc), EXIT_OTHER, json_output)


def _fail(code: str, message: str, exit_code: int, json_output: bool) -> NoReturn:
    message = " ".join(message.split())
    if json_output:
        _print_json({"error": {"code": code, "message": message}})
    else:
        typer.echo(f"error[{code}]: {message}", err=True)
    raise typer.Exit(exit_code)


def _one_line(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", [])
    return "; ".join([f"{type(exc).__name__}: {exc}", *notes])


def main() -> None:
    """Console-script entry point (``payledger``)."""
    app(prog_name="payledger")


if __name__ == "__main__":
    main()
