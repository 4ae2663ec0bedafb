"""``payledger smoke``: one short payment through a deployed stack's API, signed as any agent
signs its requests, then every consumer checked as it catches up.

The payment (initiate, approve, authorize, capture) goes over HTTP with the ``payledger_client``
and the caller's AWS credentials (botocore's chain: an agent's role, ``AWS_PROFILE``, or
``payledger local credentials`` locally). Then, polling until ``--timeout``: the client reads its
own write; the payment-state read model lists it (the merchant listing reads only the read model);
the PostgreSQL views hold its last version (when this machine reaches the database); the archive
holds each of its events; and a digest covers it with a proof that verifies (a digest is written
if the latest does not cover it yet). Against the local stack, its runtime invokes waiting batches
at once while smoke polls (``devstack.local.drain``, as ``make demo`` does): the archive's batching
window, 300 s, would otherwise outlast the timeout. Exit 0 when every check that ran passed, 6
otherwise; a check that cannot run here is shown as not run, never as passed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.common import Resources, app, global_options, print_json, reporting, resolve
from cli.exit_codes import EXIT_OK
from ledger.integrity.chains import EXIT_VERIFICATION_FAILED

if TYPE_CHECKING:
    from devstack.checks import Check
    from payledger_client import PayledgerClient

SMOKE_MERCHANT = "smoke-merchant"
SMOKE_AMOUNT = "1.00"
SMOKE_CURRENCY = "EUR"
CATCH_UP_S = 180.0
POLL_S = 1.0
API_URL_OUTPUT = "ApiUrl"


# Each probe answers what it sees now: a detail once caught up, None to look again later.
Probe = Callable[[str, int], str | None]


@dataclass(frozen=True, slots=True)
class Probes:
    """What smoke reads besides the API, each ``(payment_id, version) -> detail | None``; a
    probe that is None cannot run here (``missing`` says why)."""

    views: Probe | None
    archive: Probe | None
    proof: Probe | None
    missing: dict[str, str]


@app.command("smoke")
def smoke(
    ctx: typer.Context,
    timeout_s: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds to wait for every consumer.")
    ] = CATCH_UP_S,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Run one signed payment through the stack's API (``--stack NAME``, else the local stack)
    and check that the read model, the views, the archive and a digest's proof catch up
    (exit 6 if a check fails)."""
    options = global_options(ctx)
    with reporting(options, json_output):
        resources = resolve(options)
        client = build_client(resources)
        with local_batches_drained(resources):
            checks = run_smoke(client, build_probes(resources), timeout_s=timeout_s)
    if json_output:
        print_json({"checks": [_check_document(check) for check in checks]})
    else:
        Console().print(checks_table(checks))
    passed = all(check.passed is not False for check in checks)
    raise typer.Exit(EXIT_OK if passed else EXIT_VERIFICATION_FAILED)


def run_smoke(
    client: PayledgerClient,
    probes: Probes,
    *,
    timeout_s: float,
    payment_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Check]:
    """Pay through ``client``, then poll each consumer until ``timeout_s`` has passed."""
    from devstack.checks import Check  # the demo's checks: loaded only when a smoke runs

    payment_id = payment_id or f"smoke-{uuid.uuid4().hex[:16]}"
    try:
        version = _pay(client, payment_id)
    except Exception as exc:  # noqa: BLE001 - reported as the failed check it is
        return [Check("payment over the API", False, f"{type(exc).__name__}: {exc}")]
    checks = [
        Check("payment over the API", True, f"{payment_id}: 4 signed commands, version {version}")
    ]
    deadline = clock() + timeout_s

    def poll(name: str, probe: Probe | None, missing: str = "") -> Check:
        if probe is None:
            return Check(name, None, missing)
        while True:
            try:
                detail = probe(payment_id, version)
            except Exception as exc:  # noqa: BLE001 - a check's failure, with its reason
                return Check(name, False, f"{type(exc).__name__}: {exc}")
            if detail is not None:
                return Check(name, True, detail)
            if clock() >= deadline:
                return Check(
                    name, False, f"not caught up with version {version} in {timeout_s:g} s"
                )
            sleep(POLL_S)

    checks.append(poll("read your writes", lambda p, v: _read_own_write(client, p, v)))
    checks.append(poll("read model", lambda p, v: _listed(client, p, v)))
    for name in ("views", "archive", "proof"):
        checks.append(poll(name, getattr(probes, name), probes.missing.get(name, "")))
    return checks


def _pay(client: PayledgerClient, payment_id: str) -> int:
    client.initiate_payment(
        payment_id=payment_id,
        amount=SMOKE_AMOUNT,
        currency=SMOKE_CURRENCY,
        merchant_id=SMOKE_MERCHANT,
        customer_id="smoke-customer",
        description="payledger smoke",
    )
    client.assess_risk(payment_id, decision="approve", score="0.01", reason="smoke test")
    client.authorize_payment(payment_id, processor="smoke")
    result = client.capture_payment(payment_id, amount=SMOKE_AMOUNT, final=True)
    return int(result.payment["version"])


def _read_own_write(client: PayledgerClient, payment_id: str, version: int) -> str | None:
    payment = client.get_payment(payment_id, min_version=version)
    if payment["status"] != "captured" or int(payment["version"]) < version:
        return None
    return f"{payment['status']} at version {payment['version']}"


def _listed(client: PayledgerClient, payment_id: str, version: int) -> str | None:
    page = client.list_merchant_payments(SMOKE_MERCHANT, status="captured", limit=100)
    for payment in page.payments:
        if payment["payment_id"] == payment_id and int(payment["version"]) >= version:
            return f"listed by merchant {SMOKE_MERCHANT} as captured, version {version}"
    return None


def checks_table(checks: list[Check]) -> Table:
    """The checks as the demo shows its own."""
    table = Table(title="smoke checks", title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in checks:
        if check.passed is None:
            result = Text("not run", "yellow")
        else:
            result = Text("passed", "green") if check.passed else Text("FAILED", "bold red")
        table.add_row(check.name, result, check.detail)
    return table


def _check_document(check: Check) -> dict[str, Any]:
    return {"name": check.name, "passed": check.passed, "detail": check.detail}


# ── Wiring: the real client and probes ───────────────────────────────────────────────────────


@contextmanager
def local_batches_drained(resources: Resources) -> Iterator[None]:
    """While smoke runs against the local stack, its runtime invokes each waiting batch at once
    instead of waiting out the batching window (a longest wait: Lambda invokes sooner when a
    batch fills); left enabled afterwards only if it was before. A deployed stack is untouched."""
    from cli.common import local_home, local_stack

    local = local_stack()
    if local is None or local.stack_name != resources.stack:
        yield
        return
    from devstack.local import drain
    from devstack.runtime import DRAIN_FILE

    home = local_home()
    already = (home / DRAIN_FILE).exists()
    drain(home)
    try:
        yield
    finally:
        drain(home, enabled=already)


def build_client(resources: Resources) -> PayledgerClient:
    """The payledger client for the stack's ``ApiUrl``, with the caller's credentials."""
    from handlers import bootstrap

    outputs = resources.outputs
    if outputs is None:
        if resources.stack is None:
            raise bootstrap.ConfigurationError("smoke needs a stack: pass --stack NAME")
        outputs = bootstrap.stack_outputs(resources.stack, resources.aws)
    if API_URL_OUTPUT not in outputs:
        raise bootstrap.ConfigurationError(f"the stack has no {API_URL_OUTPUT} output")
    # The client is its own distribution: loaded only when a smoke test runs.
    from payledger_client import PayledgerClient

    return PayledgerClient(outputs[API_URL_OUTPUT], region=resources.aws.region)


def build_probes(resources: Resources) -> Probes:
    missing: dict[str, str] = {}
    return Probes(
        views=_views_probe(resources, missing),
        archive=_archive_probe(resources, missing),
        proof=_proof_probe(resources, missing),
        missing=missing,
    )


def _views_probe(resources: Resources, missing: dict[str, str]) -> Probe | None:
    """The payment's position in the views, where this machine reaches the database: the
    configured one, or the local stack's when smoke runs against it."""
    from cli.common import local_stack
    from handlers import bootstrap

    database = bootstrap.database_settings()
    local = local_stack()
    if database is None and local is not None and local.stack_name == resources.stack:
        database = bootstrap.DatabaseSettings(url=local.database_url, schema=local.database_schema)
    if database is None:
        missing["views"] = (
            "the database is in the stack's private network: set PAYLEDGER_DATABASE_URL"
            " (e.g. through a tunnel) to check the views too"
        )
        return None
    from psycopg import sql

    from handlers.database import database_connector
    from ledger.envelope import payment_stream_id
    from projections.postgres.tables import qualified

    connect, schema = database_connector(database, resources.aws), database.schema
    query = sql.SQL("SELECT version FROM {} WHERE stream_id = %s").format(
        qualified(schema, "projection_positions")
    )

    def probe(payment_id: str, version: int) -> str | None:
        with connect() as connection:
            row = connection.execute(query, (payment_stream_id(payment_id),)).fetchone()
        if row is None or int(row[0]) < version:
            return None
        return f"schema {schema}: projected through version {row[0]}"

    return probe


def _archive_probe(resources: Resources, missing: dict[str, str]) -> Probe | None:
    from archive.reader import ArchiveReader
    from handlers import bootstrap

    settings = resources.archive_settings()
    if settings.bucket is None:
        missing["archive"] = "no archive bucket (ArchiveBucketName output or ARCHIVE_BUCKET)"
        return None
    reader = ArchiveReader(bootstrap.build_archive_storage(settings))

    def probe(payment_id: str, version: int) -> str | None:
        archived = reader.payment_events(payment_id)
        if len(archived) < version:
            return None
        return f"{len(archived)} events in Parquet on s3://{settings.bucket}"

    return probe


def _proof_probe(resources: Resources, missing: dict[str, str]) -> Probe | None:
    """A proof of the payment's last event against the latest digest, verified; the first
    time the latest digest does not cover it, a digest of the read model's heads is written
    (as the hourly digest function would)."""
    from handlers import bootstrap
    from ledger.domain.errors import NotFoundError
    from ledger.envelope import payment_stream_id
    from ledger.integrity.digests import digest_key, parse_digest, read_heads, write_digest
    from ledger.integrity.proofs import build_proof, verify_proof

    settings = resources.settings()
    if settings.digest_bucket is None:
        missing["proof"] = "no digest bucket (DigestBucketName output or DIGEST_BUCKET)"
        return None
    digests = bootstrap.build_digest_store(settings)
    events = bootstrap.build_event_store(settings)
    heads = bootstrap.require_payment_state_reader(settings)
    digest_written: list[bool] = []  # at most one digest per smoke run

    def probe(payment_id: str, version: int) -> str | None:
        stream = events.load(payment_stream_id(payment_id))
        number = digests.latest_number()
        stored = None if number is None else digests.read(digest_key(number))
        try:
            if stored is None:
                raise NotFoundError("no digest yet")
            attested = read_heads(digests, parse_digest(stored.data))
            proof = build_proof(stream, stream[version - 1].event_id, stored.data, attested)
        except NotFoundError:
            if not digest_written:
                write_digest(digests, heads.heads(), events)
                digest_written.append(True)
            return None
        problems = verify_proof(proof, stored.data)
        if problems:
            raise AssertionError("; ".join(problems))
        return f"digest {number} proves version {version}"

    return probe
