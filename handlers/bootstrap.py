"""The composition root: the one place that reads configuration and wires adapters.

Lambda functions read the environment ``template.yaml`` sets; the CLI reads the same variables
(``AWS_ENDPOINT_URL`` is honoured by boto3 itself) or a stack's outputs. Where the AWS clients go
is a value (``AwsTarget``) carried by the settings; clients are created once per target and
service and reused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from archive.s3 import S3ArchiveStorage
from ledger.domain.errors import LedgerError, NotFoundError
from ledger.dynamodb import DynamoDBEventStore
from ledger.integrity.s3 import S3DigestStore
from ledger.service import PaymentService
from projections.payment_state import PaymentStateProjection
from projections.payment_state_reader import PaymentStateReader

EVENTS_TABLE_VARIABLE = "EVENTS_TABLE"
EVENTS_TABLE_OUTPUT = "EventsTableName"
# Optional for processes that never read the payment-state read model (the CLI, older stacks);
# the projection and ``require_payment_state_reader`` refuse to run without it.
PAYMENT_STATE_TABLE_VARIABLE = "PAYMENT_STATE_TABLE"
PAYMENT_STATE_TABLE_OUTPUT = "PaymentStateTableName"
# The Object Lock bucket digests are written to (DESIGN §8); only the digest function and the
# verification commands need it.
DIGEST_BUCKET_VARIABLE = "DIGEST_BUCKET"
DIGEST_BUCKET_OUTPUT = "DigestBucketName"
DATABASE_URL_VARIABLE = "PAYLEDGER_DATABASE_URL"
DATABASE_SECRET_VARIABLE = "DATABASE_SECRET_ARN"  # noqa: S105 - a variable name
DATABASE_HOST_VARIABLE = "DATABASE_HOST"  # RDS Proxy endpoint, with IAM authentication
DATABASE_PORT_VARIABLE = "DATABASE_PORT"
DATABASE_USER_VARIABLE = "DATABASE_USER"
DATABASE_NAME_VARIABLE = "DATABASE_NAME"
DATABASE_SCHEMA_VARIABLE = "DATABASE_SCHEMA"
DEFAULT_DATABASE_SCHEMA = "payledger"
DATABASE_CONNECT_TIMEOUT_S = 5
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
class DatabaseSettings:
    """Where the PostgreSQL views live. Exactly one way in: a URL (local runs, tests), a Secrets
    Manager secret (RDS's JSON shape), or IAM authentication through RDS Proxy (a short-lived
    token per connection). A password never sits in an environment variable in AWS."""

    schema: str = DEFAULT_DATABASE_SCHEMA
    url: str | None = None
    secret_arn: str | None = None
    iam_host: str | None = None
    iam_port: int = 5432
    iam_user: str | None = None
    iam_database: str | None = None


@dataclass(frozen=True, slots=True)
class AwsTarget:
    """Where AWS clients go. The default is this process's own configuration (boto3 reads the
    environment: credentials, region, ``AWS_ENDPOINT_URL``), as in Lambda; an emulated AWS is an
    ``endpoint_url`` with its region and fixed credentials (access key id, secret key)."""

    endpoint_url: str | None = None
    region: str | None = None
    credentials: tuple[str, str] | None = None


PROCESS_AWS = AwsTarget()  # this process's own configuration


@dataclass(frozen=True, slots=True)
class Settings:
    events_table: str
    payment_state_table: str | None = None
    database: DatabaseSettings | None = None
    digest_bucket: str | None = None
    aws: AwsTarget = PROCESS_AWS


def settings_from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    table = environ.get(EVENTS_TABLE_VARIABLE, "").strip()
    if not table:
        raise ConfigurationError(f"set {EVENTS_TABLE_VARIABLE} (or pass --stack NAME)")
    payment_state_table = environ.get(PAYMENT_STATE_TABLE_VARIABLE, "").strip() or None
    return Settings(
        events_table=table,
        payment_state_table=payment_state_table,
        database=database_settings(environ),
        digest_bucket=environ.get(DIGEST_BUCKET_VARIABLE, "").strip() or None,
    )


def database_settings(environ: Mapping[str, str] | None = None) -> DatabaseSettings | None:
    """The database this process projects into, or None if it has none configured."""
    environ = os.environ if environ is None else environ

    def value(name: str) -> str | None:
        return environ.get(name, "").strip() or None

    schema = value(DATABASE_SCHEMA_VARIABLE) or DEFAULT_DATABASE_SCHEMA
    ways = [
        name
        for name in (DATABASE_URL_VARIABLE, DATABASE_SECRET_VARIABLE, DATABASE_HOST_VARIABLE)
        if value(name)
    ]
    if not ways:
        return None
    if len(ways) > 1:
        raise ConfigurationError(f"set only one of {', '.join(ways)}")
    if value(DATABASE_HOST_VARIABLE):
        user, name = value(DATABASE_USER_VARIABLE), value(DATABASE_NAME_VARIABLE)
        if not user or not name:
            needs = f"{DATABASE_USER_VARIABLE} and {DATABASE_NAME_VARIABLE}"
            raise ConfigurationError(f"{DATABASE_HOST_VARIABLE} needs {needs}")
        port = value(DATABASE_PORT_VARIABLE) or "5432"
        if not port.isdigit():
            raise ConfigurationError(f"{DATABASE_PORT_VARIABLE} must be a port number")
        return DatabaseSettings(
            schema=schema,
            iam_host=value(DATABASE_HOST_VARIABLE),
            iam_port=int(port),
            iam_user=user,
            iam_database=name,
        )
    return DatabaseSettings(
        schema=schema, url=value(DATABASE_URL_VARIABLE), secret_arn=value(DATABASE_SECRET_VARIABLE)
    )


def settings_from_outputs(stack_name: str, outputs: Mapping[str, str], aws: AwsTarget) -> Settings:
    """Resource names from a stack's outputs, like a SAM application's tests find them."""
    if EVENTS_TABLE_OUTPUT not in outputs:
        raise ConfigurationError(f"stack {stack_name!r} has no {EVENTS_TABLE_OUTPUT} output")
    return Settings(
        events_table=outputs[EVENTS_TABLE_OUTPUT],
        payment_state_table=outputs.get(PAYMENT_STATE_TABLE_OUTPUT),
        digest_bucket=outputs.get(DIGEST_BUCKET_OUTPUT),
        aws=aws,
    )


def stack_outputs(stack_name: str, aws: AwsTarget) -> dict[str, str]:
    """A deployed stack's outputs (``not_found`` if there is no such stack)."""
    client = aws_client(aws, "cloudformation")
    try:
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except client.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            raise NotFoundError(f"stack {stack_name!r} not found") from exc
        raise ConfigurationError(f"cannot read stack {stack_name!r}: {exc}") from exc
    return {item["OutputKey"]: item["OutputValue"] for item in stacks[0].get("Outputs", [])}


@cache
def aws_session(aws: AwsTarget) -> boto3.session.Session:
    """The boto3 session (credentials and region) of ``aws``, for libraries that take one."""
    access_key_id, secret_access_key = aws.credentials or (None, None)
    return boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name=aws.region,
    )


@cache
def aws_client(aws: AwsTarget, service: str, config: Config = _CLIENT_CONFIG) -> Any:
    """One boto3 client per target, service and configuration per process (Lambda reuses it
    across invocations)."""
    if aws.endpoint_url is not None:
        # An emulated AWS has no account endpoints to derive from the credentials.
        config = config.merge(Config(account_id_endpoint_mode="disabled"))
    return aws_session(aws).client(service, endpoint_url=aws.endpoint_url, config=config)


def build_payment_service(settings: Settings) -> PaymentService:
    return PaymentService(build_event_store(settings))


def build_payment_state_projection(settings: Settings) -> PaymentStateProjection:
    """The payment-state read model; gaps are filled from the events table (one Query)."""
    if settings.payment_state_table is None:
        raise ConfigurationError(f"set {PAYMENT_STATE_TABLE_VARIABLE} (or pass --stack NAME)")
    client = aws_client(settings.aws, "dynamodb")
    return PaymentStateProjection(
        client,
        settings.payment_state_table,
        DynamoDBEventStore(client, settings.events_table),
    )


def build_payment_state_reader(settings: Settings) -> PaymentStateReader | None:
    """The read model the API serves current payments from, if this process has one."""
    if settings.payment_state_table is None:
        return None
    return PaymentStateReader(aws_client(settings.aws, "dynamodb"), settings.payment_state_table)


def require_payment_state_reader(settings: Settings) -> PaymentStateReader:
    """The read model's reads for digests (heads) and verification (snapshots)."""
    reader = build_payment_state_reader(settings)
    if reader is None:
        raise ConfigurationError(f"set {PAYMENT_STATE_TABLE_VARIABLE} (or pass --stack NAME)")
    return reader


# ── Verification: digests ──────────────────────────────────────────────────────────────────────


def build_event_store(settings: Settings) -> DynamoDBEventStore:
    return DynamoDBEventStore(aws_client(settings.aws, "dynamodb"), settings.events_table)


def build_digest_store(settings: Settings) -> S3DigestStore:
    if settings.digest_bucket is None:
        raise ConfigurationError(f"set {DIGEST_BUCKET_VARIABLE} (or pass --stack NAME)")
    return S3DigestStore(aws_client(settings.aws, "s3"), settings.digest_bucket)


# ── analytics (handlers/analytics.py) ─────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class AnalyticsSettings:
    """The analytics Lambda reads only the records its Kinesis event source mapping delivers (no
    events table). It always emits CloudWatch metrics (EMF, through its logs); with a database it
    also writes the windows into PostgreSQL."""

    database: DatabaseSettings | None = None
    aws: AwsTarget = PROCESS_AWS


def analytics_settings_from_environment(
    environ: Mapping[str, str] | None = None,
) -> AnalyticsSettings:
    return AnalyticsSettings(database=database_settings(environ))


# ── Archive: Parquet on S3, Glue and Athena ──────────────────────────────────────────────────
# The archive Lambda and the compaction Lambda need the bucket; the CLI's Athena path also the
# Glue database and the workgroup. The object prefix (``events/``) is a constant of the layout.

ARCHIVE_BUCKET_VARIABLE = "ARCHIVE_BUCKET"
GLUE_DATABASE_VARIABLE = "GLUE_DATABASE"
ATHENA_WORKGROUP_VARIABLE = "ATHENA_WORKGROUP"
ARCHIVE_BUCKET_OUTPUT = "ArchiveBucketName"
GLUE_DATABASE_OUTPUT = "GlueDatabaseName"
ATHENA_WORKGROUP_OUTPUT = "AthenaWorkGroupName"
# S3 calls of the archive move whole Parquet objects (compaction writes hundreds of MB).
_ARCHIVE_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=60,
    tcp_keepalive=True,
)


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    bucket: str | None = None
    glue_database: str | None = None
    athena_workgroup: str | None = None
    aws: AwsTarget = PROCESS_AWS


def archive_settings_from_environment(environ: Mapping[str, str] | None = None) -> ArchiveSettings:
    environ = os.environ if environ is None else environ

    def value(name: str) -> str | None:
        return environ.get(name, "").strip() or None

    return ArchiveSettings(
        bucket=value(ARCHIVE_BUCKET_VARIABLE),
        glue_database=value(GLUE_DATABASE_VARIABLE),
        athena_workgroup=value(ATHENA_WORKGROUP_VARIABLE),
    )


def archive_settings_from_outputs(outputs: Mapping[str, str], aws: AwsTarget) -> ArchiveSettings:
    return ArchiveSettings(
        bucket=outputs.get(ARCHIVE_BUCKET_OUTPUT),
        glue_database=outputs.get(GLUE_DATABASE_OUTPUT),
        athena_workgroup=outputs.get(ATHENA_WORKGROUP_OUTPUT),
        aws=aws,
    )


def build_archive_storage(settings: ArchiveSettings) -> S3ArchiveStorage:
    """The archive bucket (``AWS_ENDPOINT_URL`` points it at the emulated S3)."""
    if settings.bucket is None:
        raise ConfigurationError(f"set {ARCHIVE_BUCKET_VARIABLE} (or pass --stack NAME)")
    session = aws_session(settings.aws)

    def current_credentials() -> tuple[str, str, str | None]:
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError("no AWS credentials found for reading the archive")
        frozen = credentials.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token

    client = aws_client(settings.aws, "s3", _ARCHIVE_CLIENT_CONFIG)
    return S3ArchiveStorage(client, settings.bucket, current_credentials)


def athena_target(settings: ArchiveSettings) -> tuple[str, str]:
    """The Glue database and Athena workgroup auditors' queries run in."""
    missing = [
        name
        for name, value in (
            (GLUE_DATABASE_VARIABLE, settings.glue_database),
            (ATHENA_WORKGROUP_VARIABLE, settings.athena_workgroup),
        )
        if value is None
    ]
    if missing or settings.glue_database is None or settings.athena_workgroup is None:
        raise ConfigurationError(f"set {' and '.join(missing)} (or pass --stack NAME)")
    return settings.glue_database, settings.athena_workgroup


# ── What names the resources ─────────────────────────────────────────────────────────────────

_ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"


def names_its_resources(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment points this process somewhere (a table, a bucket, an endpoint)."""
    environ = os.environ if environ is None else environ
    variables = (EVENTS_TABLE_VARIABLE, ARCHIVE_BUCKET_VARIABLE, _ENDPOINT_VARIABLE)
    return any(environ.get(name, "").strip() for name in variables)
