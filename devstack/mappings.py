"""What the local runtime runs: functions and their stream event source mappings.

These are the settings of a deployed stack (``devstack.stack`` reads them from moto's Lambda and
CloudFormation APIs, where the template put them), in a plain form the pumps use and the runtime
keeps in ``.payledger/runtime.json``. Defaults are Lambda's own (a setting the template leaves out
behaves as it would in AWS), never the project's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
UNLIMITED = -1  # MaximumRetryAttempts and MaximumRecordAgeInSeconds: Lambda's "infinite"
# Lambda's defaults for stream sources (services-ddb-params, services-kinesis-params).
DEFAULT_BATCH_SIZE = 100
DEFAULT_TIMEOUT_S = 3
DEFAULT_MEMORY_MB = 128


class SourceKind(StrEnum):
    DYNAMODB = "dynamodb"
    KINESIS = "kinesis"


def source_kind(arn: str) -> SourceKind:
    """The kind of stream an event source ARN names (a table's stream, or a Kinesis stream)."""
    service = arn.split(":")[2] if arn.count(":") >= 5 else ""
    if service == "dynamodb" and "/stream/" in arn:
        return SourceKind.DYNAMODB
    if service == "kinesis":
        return SourceKind.KINESIS
    raise ValueError(f"not a DynamoDB or Kinesis stream ARN: {arn!r}")


@dataclass(frozen=True, slots=True)
class FunctionTarget:
    """One function: its handler ("module.function"), its environment exactly as deployed, and
    the limits its runtime gets."""

    name: str
    handler: str
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_s: int = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    arn: str = ""
    role: str = ""  # the execution role: Kinesis records name it (``invokeIdentityArn``)

    @property
    def module(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def attribute(self) -> str:
        return self.handler.rpartition(".")[2]

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["environment"] = dict(self.environment)
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> FunctionTarget:
        return cls(**{**document, "environment": dict(document.get("environment", {}))})

    @classmethod
    def from_configuration(cls, configuration: Mapping[str, Any]) -> FunctionTarget:
        """From Lambda's ``GetFunctionConfiguration`` answer."""
        return cls(
            name=str(configuration["FunctionName"]),
            handler=str(configuration["Handler"]),
            environment=dict(configuration.get("Environment", {}).get("Variables", {})),
            timeout_s=int(configuration.get("Timeout", DEFAULT_TIMEOUT_S)),
            memory_mb=int(configuration.get("MemorySize", DEFAULT_MEMORY_MB)),
            arn=str(configuration.get("FunctionArn", "")),
            role=str(configuration.get("Role", "")),
        )


@dataclass(frozen=True, slots=True)
class EventSourceMapping:
    """A stream event source mapping, with Lambda's meaning for each setting:

    - ``batch_size`` records at most per invocation; ``batching_window_s`` waits that long for a
      batch to fill once a record is there (0: invoke at once);
    - ``starting_position`` TRIM_HORIZON or LATEST, for a shard without a checkpoint;
    - ``report_batch_item_failures``: the function's ``batchItemFailures`` are honoured
      (checkpoint before the lowest failed sequence number), else any failure fails the batch;
    - ``bisect_on_error``: a function error splits the batch in two (not counted as a retry);
    - ``maximum_retry_attempts`` / ``maximum_record_age_s``: -1 is unlimited; past either the
      records are discarded and described on ``on_failure_arn`` (an SQS queue) if set;
    - ``tumbling_window_s`` > 0: per-shard windows with state carried between invocations and a
      final invocation at the window's end;
    - ``parallelization_factor``: concurrent batches per shard that Lambda may run; the local
      runtime runs one at a time per shard, which keeps every order factor N keeps.
    """

    name: str
    function: str
    source_arn: str
    batch_size: int = DEFAULT_BATCH_SIZE
    batching_window_s: float = 0
    starting_position: str = "TRIM_HORIZON"
    report_batch_item_failures: bool = False
    bisect_on_error: bool = False
    maximum_retry_attempts: int = UNLIMITED
    maximum_record_age_s: int = UNLIMITED
    on_failure_arn: str | None = None
    tumbling_window_s: int = 0
    parallelization_factor: int = 1
    enabled: bool = True

    def __post_init__(self) -> None:
        source_kind(self.source_arn)  # refuse anything but a stream at once
        assert self.batch_size >= 1, self.batch_size
        assert self.starting_position in ("TRIM_HORIZON", "LATEST"), self.starting_position
        assert self.maximum_retry_attempts >= UNLIMITED, self.maximum_retry_attempts
        assert self.maximum_record_age_s >= UNLIMITED, self.maximum_record_age_s
        assert self.tumbling_window_s >= 0, self.tumbling_window_s

    @property
    def source_kind(self) -> SourceKind:
        return source_kind(self.source_arn)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> EventSourceMapping:
        return cls(**document)

    @classmethod
    def from_configuration(
        cls, configuration: Mapping[str, Any], *, name: str, function: str
    ) -> EventSourceMapping:
        """From Lambda's ``GetEventSourceMapping`` answer (absent settings take Lambda's
        defaults, as they would in AWS)."""
        destination = configuration.get("DestinationConfig") or {}
        on_failure = (destination.get("OnFailure") or {}).get("Destination") or None
        return cls(
            name=name,
            function=function,
            source_arn=str(configuration["EventSourceArn"]),
            batch_size=int(configuration.get("BatchSize") or DEFAULT_BATCH_SIZE),
            batching_window_s=float(configuration.get("MaximumBatchingWindowInSeconds") or 0),
            starting_position=str(configuration.get("StartingPosition") or "TRIM_HORIZON"),
            report_batch_item_failures=REPORT_BATCH_ITEM_FAILURES
            in (configuration.get("FunctionResponseTypes") or ()),
            bisect_on_error=bool(configuration.get("BisectBatchOnFunctionError", False)),
            maximum_retry_attempts=_int_or(configuration.get("MaximumRetryAttempts"), UNLIMITED),
            maximum_record_age_s=_int_or(configuration.get("MaximumRecordAgeInSeconds"), UNLIMITED),
            on_failure_arn=None if on_failure is None else str(on_failure),
            tumbling_window_s=int(configuration.get("TumblingWindowInSeconds") or 0),
            parallelization_factor=int(configuration.get("ParallelizationFactor") or 1),
            enabled=configuration.get("State", "Enabled") in ("Enabled", "Enabling", "Creating"),
        )


def _int_or(value: Any, default: int) -> int:
    return default if value is None else int(value)


@dataclass(frozen=True, slots=True)
class TableDestination:
    """A table's Kinesis Data Streams destination (``KinesisStreamSpecification``), which the
    local runtime's forwarder plays."""

    table_name: str
    table_stream_arn: str
    kinesis_stream_arn: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> TableDestination:
        return cls(**document)


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Everything the runtime process needs: where AWS is, the database, what to run."""

    endpoint_url: str
    region: str
    functions: tuple[FunctionTarget, ...]
    mappings: tuple[EventSourceMapping, ...]
    destinations: tuple[TableDestination, ...] = ()
    database_url: str | None = None

    def function(self, name: str) -> FunctionTarget:
        for target in self.functions:
            if target.name == name:
                return target
        raise KeyError(f"no function {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "database_url": self.database_url,
            "functions": [target.to_dict() for target in self.functions],
            "mappings": [mapping.to_dict() for mapping in self.mappings],
            "destinations": [destination.to_dict() for destination in self.destinations],
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> RuntimeConfig:
        return cls(
            endpoint_url=str(document["endpoint_url"]),
            region=str(document["region"]),
            database_url=document.get("database_url"),
            functions=tuple(FunctionTarget.from_dict(item) for item in document["functions"]),
            mappings=tuple(EventSourceMapping.from_dict(item) for item in document["mappings"]),
            destinations=tuple(
                TableDestination.from_dict(item) for item in document.get("destinations", ())
            ),
        )
