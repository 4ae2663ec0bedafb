"""What every ``payledger`` command shares: the app, global options, error reporting and the
wiring seams tests replace."""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, NoReturn

import typer

from handlers import bootstrap
from ledger.domain.errors import EXIT_OTHER, LedgerError
from ledger.service import PaymentService

if TYPE_CHECKING:
    from devstack.local import LocalState

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 other (configuration, corrupted history, unexpected); "
    "2 invalid input (validation_error, pan_detected, limit_exceeded, usage); "
    "3 rule violation (invalid_transition, capture_exceeds_authorized, refund_exceeds_captured, "
    "currency_mismatch, hold_expired, hold_not_expired); "
    "4 conflict (idempotency_conflict, concurrency_conflict, already_exists); 5 not_found; "
    "6 verification failed (verify found problems, a proof does not verify)."
)
UNEXPECTED_ERROR_CODE = "unexpected_error"


LOCAL_HOME_VARIABLE = "PAYLEDGER_HOME"  # where the local stack keeps its state
DEFAULT_LOCAL_HOME = Path(".payledger")


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    stack: str | None
    debug: bool


@dataclass(frozen=True, slots=True)
class Resources:
    """Where a command's resources are: the AWS its clients talk to and the stack whose outputs
    name the resources (None: the environment names them). ``outputs`` are the stack's outputs
    when already known (the local stack's), else read when first needed."""

    aws: bootstrap.AwsTarget = bootstrap.PROCESS_AWS
    stack: str | None = None
    outputs: Mapping[str, str] | None = None

    def settings(self) -> bootstrap.Settings:
        if self.stack is None:
            return bootstrap.settings_from_environment()
        return bootstrap.settings_from_outputs(self.stack, self._outputs(self.stack), self.aws)

    def archive_settings(self) -> bootstrap.ArchiveSettings:
        if self.stack is None:
            return bootstrap.archive_settings_from_environment()
        return bootstrap.archive_settings_from_outputs(self._outputs(self.stack), self.aws)

    def _outputs(self, stack: str) -> Mapping[str, str]:
        if self.outputs is not None:
            return self.outputs
        return bootstrap.stack_outputs(stack, self.aws)


def resolve(options: GlobalOptions) -> Resources:
    """Where every command's resources are: ``--stack NAME``'s outputs; else the environment, if
    it names any (``EVENTS_TABLE``, ``ARCHIVE_BUCKET`` or ``AWS_ENDPOINT_URL``); else the local
    stack, if one is up (``payledger local up``); else the environment, whose settings then say
    what to set."""
    if options.stack is not None:
        return Resources(stack=options.stack)
    if not bootstrap.names_its_resources():
        local = local_stack()
        if local is not None:
            return Resources(local.aws, local.stack_name, local.outputs)
    return Resources()


def local_home(environ: Mapping[str, str] | None = None) -> Path:
    """The local stack's state directory: ``PAYLEDGER_HOME``, else ``.payledger`` here."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(LOCAL_HOME_VARIABLE, "").strip() or DEFAULT_LOCAL_HOME)


def local_stack() -> LocalState | None:
    """The local stack (``payledger local up``) if it is up."""
    from devstack.local import running_stack  # the CLI may use the local runtime

    return running_stack(local_home())


def build_service(resources: Resources) -> PaymentService:
    return bootstrap.build_payment_service(resources.settings())


service_factory: Callable[[Resources], PaymentService] = build_service
"""Seam for tests: replace to run the CLI against another service (e.g. a failing store)."""


# Help text is Markdown: a docstring's line breaks join into paragraphs at the terminal's width.
HELP_MARKUP: Final = "markdown"

app = typer.Typer(
    name="payledger",
    help="Event-sourced payment ledger: record payment commands, read and replay their history.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=HELP_MARKUP,
)


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


PaymentIdArgument = Annotated[str, typer.Argument(help="The payment's id.", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def resolve_database() -> bootstrap.DatabaseSettings:
    """The configured database or, on a developer's machine with none configured, the local
    stack's, or else the embedded PostgreSQL with its data under ``.payledger/pg`` (started for
    this command, kept across)."""
    database = bootstrap.database_settings()
    if database is not None:
        return database
    local = local_stack()
    if local is not None:
        return bootstrap.DatabaseSettings(url=local.database_url, schema=local.database_schema)
    from devstack.postgres import start_postgres

    return bootstrap.DatabaseSettings(url=start_postgres())


def print_json(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


# ── Errors ────────────────────────────────────────────────────────────────────────────────────


def global_options(ctx: typer.Context) -> GlobalOptions:
    """The options every command shares (``resolve`` turns them into resources)."""
    options = ctx.find_object(GlobalOptions)
    if options is None:
        return GlobalOptions(stack=None, debug=False)
    return options


@contextmanager
def reporting(options: GlobalOptions, json_output: bool) -> Iterator[None]:
    """Map a failure to its one-line report (or JSON document) and exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except LedgerError as exc:
        exit_with_error(exc.code, exc.message, exc.exit_code, json_output)
    except Exception as exc:  # noqa: BLE001 - the CLI's last line: report, never a traceback
        if options.debug:
            traceback.print_exc()
        exit_with_error(UNEXPECTED_ERROR_CODE, one_line(exc), EXIT_OTHER, json_output)


def exit_with_error(code: str, message: str, exit_code: int, json_output: bool) -> NoReturn:
    message = " ".join(message.split())
    if json_output:
        print_json({"error": {"code": code, "message": message}})
    else:
        typer.echo(f"error[{code}]: {message}", err=True)
    raise typer.Exit(exit_code)


def one_line(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", [])
    return "; ".join([f"{type(exc).__name__}: {exc}", *notes])
