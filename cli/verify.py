"""``payledger verify``, ``proof``, ``verify-proof`` and ``digest``: what auditors run (DESIGN §8).

``verify-proof`` works offline: it reads two files and nothing else (no AWS, no configuration).
Every other command reads the configured resources (``--stack`` or the environment).

Exit codes beyond the common ones: 6 when what is checked does not verify (a problem in the
history, a digest, a projection or the archive; a proof that does not prove its event).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cli import common
from cli.archive import ArchiveDirOption, archive_storage
from cli.common import HELP_MARKUP, JsonOption, app, global_options, print_json, reporting
from handlers import bootstrap
from ledger.domain.errors import NotFoundError, ValidationError
from ledger.envelope import payment_stream_id
from ledger.integrity.chains import (
    EXIT_VERIFICATION_FAILED,
    StreamCheck,
    VerificationFailedError,
)
from ledger.integrity.digests import DigestStore, digest_key, parse_digest, read_heads
from ledger.integrity.proofs import build_proof, load_proof, verify_proof
from ledger.integrity.runner import Verification, VerifyReport, run_verification
from ledger.store import EventReader

digest_app = typer.Typer(
    help="The numbered digests in the Object Lock bucket.",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)
app.add_typer(digest_app, name="digest")


# ── verify ────────────────────────────────────────────────────────────────────────────────────


@app.command("verify")
def verify(
    ctx: typer.Context,
    chains: Annotated[
        bool,
        typer.Option(
            "--chains",
            help="Recompute every stream's hash chain; check debits == credits per currency"
            " and phase.",
        ),
    ] = False,
    digests: Annotated[
        bool,
        typer.Option(
            "--digests", help="Check the digest sequence and every head against the chains."
        ),
    ] = False,
    projections: Annotated[
        bool,
        typer.Option("--projections", help="Check each read model equals a fresh replay."),
    ] = False,
    archive: Annotated[
        bool,
        typer.Option(
            "--archive",
            help="Recompute every chain from the archive; check it holds each event once.",
        ),
    ] = False,
    archive_dir: ArchiveDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Verify the ledger; with no option, every check the configuration allows. Each problem
    is reported with its location; exit 6 if there is any."""
    options = global_options(ctx)
    with reporting(options, json_output):
        settings = common.resolve(options).settings()
        everything = not (chains or digests or projections or archive)
        store = common.service_factory(common.resolve(options)).store
        assert isinstance(store, EventReader), "every event store backend is its own reader"
        with ExitStack() as stack:
            checks = _projection_checks(settings, projections, everything, stack)
            checks += _archive_checks(options, archive_dir, archive, everything)
            verification = Verification(
                store=store,
                chains=chains or everything,
                digests=_digest_store(settings, digests, everything),
                stream_checks=checks,
            )
            with _progress(json_output) as progress:
                report = run_verification(verification, progress=progress)
        if json_output:
            print_json(report.to_dict())
        else:
            _print_report(Console(), report)
        if not report.ok:
            raise typer.Exit(EXIT_VERIFICATION_FAILED)


def _digest_store(settings: bootstrap.Settings, wanted: bool, everything: bool) -> Any:
    if wanted or (everything and settings.digest_bucket is not None):
        return bootstrap.build_digest_store(settings)
    return None


def _projection_checks(
    settings: bootstrap.Settings, wanted: bool, everything: bool, stack: ExitStack
) -> list[StreamCheck]:
    """The payment-state table and the PostgreSQL views, each if configured (asked for with
    --projections, a missing payment-state table is a configuration error)."""
    if not (wanted or everything):
        return []
    from projections.verify import PaymentStateCheck, PostgresCheck

    checks: list[StreamCheck] = []
    if wanted or settings.payment_state_table is not None:
        checks.append(PaymentStateCheck(bootstrap.require_payment_state_reader(settings)))
    database = bootstrap.database_settings()
    if database is not None:
        from handlers.database import database_connector

        postgres = PostgresCheck(database_connector(database), database.schema)
        checks.append(stack.enter_context(postgres))
    return checks


def _archive_checks(
    options: common.GlobalOptions, archive_dir: Path | None, wanted: bool, everything: bool
) -> list[StreamCheck]:
    """The archive if asked for (``--archive``), or if configured when checking everything."""
    configured = (
        archive_dir is not None or common.resolve(options).archive_settings().bucket is not None
    )
    if not (wanted or (everything and configured)):
        return []
    from archive.verify import ArchiveCheck

    return [ArchiveCheck(archive_storage(options, archive_dir))]


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    if quiet:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("verifying"),
        TextColumn("{task.fields[streams]:,} streams, {task.fields[events]:,} events"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("verifying", total=None, streams=0, events=0)
        yield lambda streams, events: bar.update(task, streams=streams, events=events)


def _print_report(console: Console, report: VerifyReport) -> None:
    summary = (
        f"{', '.join(report.checks)}: {report.streams:,} streams, {report.events:,} events, "
        f"{report.digests:,} digests"
    )
    for name, counts in report.counts.items():
        if any(counts.values()):
            seen = ", ".join(f"{value:,} {key}" for key, value in counts.items())
            summary += f"; {name}: {seen}"
    if report.ok:
        console.print(Text.assemble(("verified", "bold green"), f" — {summary}"))
        return
    table = Table(title=f"{len(report.problems):,} problems", title_justify="left")
    for column in ("check", "kind", "where", "detail"):
        table.add_column(column, overflow="fold")
    for problem in report.problems:
        table.add_row(
            problem.check, Text(problem.kind, style="bold red"), problem.where(), problem.detail
        )
    console.print(table)
    console.print(Text.assemble(("NOT verified", "bold red"), f" — {summary}"))


# ── proofs ────────────────────────────────────────────────────────────────────────────────────


@app.command("proof")
def proof(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="The event's id.", show_default=False)],
    payment: Annotated[
        str | None,
        typer.Option(
            "--payment",
            help="The event's payment: one Query instead of scanning the events table for it.",
            show_default=False,
        ),
    ] = None,
    number: Annotated[
        int | None,
        typer.Option("--digest", help="Prove against this digest. Default: the latest.", min=1),
    ] = None,
    archive_dir: ArchiveDirOption = None,
) -> None:
    """Print the proof (JSON) that the event is in the history a digest attests: the event, its
    chain to the digest's head of its stream, and the Merkle path to the digest's root."""
    options = global_options(ctx)
    with reporting(options, json_output=True):
        settings = common.resolve(options).settings()
        digests = bootstrap.build_digest_store(settings)
        store = common.service_factory(common.resolve(options)).store
        digest_data, heads = _digest_and_heads(digests, number)
        stream_id = (
            payment_stream_id(payment)
            if payment is not None
            else _stream_of(options, archive_dir, store, event_id)
        )
        document = build_proof(store.load(stream_id), event_id, digest_data, heads)
        print_json(document)


def _stream_of(
    options: common.GlobalOptions, archive_dir: Path | None, store: Any, event_id: str
) -> str:
    """The stream of ``event_id``: from the archive when there is one (its day's objects only),
    else, or if not archived yet, by scanning the events table."""
    if archive_dir is not None or common.resolve(options).archive_settings().bucket is not None:
        from archive.lookup import find_events

        archived = find_events(archive_storage(options, archive_dir), event_id=event_id, limit=1)
        if archived:
            return archived[0].stream_id
    found = store.events_with(event_id=event_id, limit=1)
    if not found:
        raise NotFoundError(f"event {event_id} not found")
    return str(found[0].stream_id)


def _digest_and_heads(digests: DigestStore, number: int | None) -> tuple[bytes, Any]:
    number = number or digests.latest_number()
    if number is None:
        raise NotFoundError("no digest has been written yet")
    stored = digests.read(digest_key(number))
    if stored is None:
        raise NotFoundError(f"digest {number} not found")
    return stored.data, read_heads(digests, parse_digest(stored.data))


@app.command("verify-proof")
def verify_proof_command(
    proof_file: Annotated[
        Path, typer.Argument(help="A proof from `payledger proof`.", show_default=False)
    ],
    digest_file: Annotated[
        Path,
        typer.Option(
            "--digest",
            help="The digest object, as fetched from the digest bucket.",
            show_default=False,
        ),
    ],
    json_output: JsonOption = False,
) -> None:
    """Check a proof against a digest, offline: no AWS access, no configuration. Exit 6 if it
    does not prove its event."""
    with reporting(common.GlobalOptions(stack=None, debug=False), json_output):
        document = load_proof(_read_file(proof_file).decode("utf-8", errors="replace"))
        problems = verify_proof(document, _read_file(digest_file))
        if problems:
            raise VerificationFailedError("the proof does not verify: " + "; ".join(problems))
        event = document["events"][0]
        head = document["events"][-1]
        digest = document["digest"]
        if json_output:
            print_json({"verified": True, "event": event, "head": head, "digest": digest})
            return
        typer.echo(
            f"verified: event {event['event_id']} ({event['stream_id']} v{event['version']}) "
            f"is in digest {digest['number']} (root {digest['root']}) through the head at "
            f"v{head['version']}"
        )


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFoundError(f"{path}: no such file") from exc
    except OSError as exc:
        raise ValidationError(f"{path}: {exc.strerror}") from exc


# ── digests ───────────────────────────────────────────────────────────────────────────────────


@digest_app.command("get")
def digest_get(
    ctx: typer.Context,
    number: Annotated[
        int | None,
        typer.Argument(help="The digest's number. Default: the latest.", show_default=False),
    ] = None,
) -> None:
    """Print a digest object exactly as stored (its first version), e.g. > digest.json."""
    options = global_options(ctx)
    with reporting(options, json_output=True):
        digests = bootstrap.build_digest_store(common.resolve(options).settings())
        data, _ = _digest_and_heads(digests, number)
        typer.echo(data, nl=False)


@digest_app.command("write")
def digest_write(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Write the next digest now (what the scheduled digest function does). Exit 6 if the read
    model offered a head that is not a chain point (refused, and the stream kept its last head)."""
    options = global_options(ctx)
    with reporting(options, json_output):
        from ledger.integrity.digests import write_digest

        settings = common.resolve(options).settings()
        run = write_digest(
            bootstrap.build_digest_store(settings),
            bootstrap.require_payment_state_reader(settings).heads(),
            common.service_factory(common.resolve(options)).store,
        )
        if json_output:
            print_json(run.to_dict())
        elif run.digest is None:
            typer.echo("another run wrote this digest number first; nothing written")
        else:
            typer.echo(
                f"digest {run.digest.number}: {run.digest.leaf_count:,} heads "
                f"({run.attested:,} new, {run.pending:,} pending, {len(run.refused):,} refused), "
                f"root {run.digest.root}"
            )
        if run.refused:
            raise typer.Exit(EXIT_VERIFICATION_FAILED)
