"""What the local runtime runs, read from a deployed stack, never from constants.

``runtime_config`` takes the stack as ``devstack.deploy`` created it on the emulated AWS: the
functions and event source mappings as the emulated Lambda holds them (every reference
resolved by CloudFormation: handler, environment, batch size, windows, bisect, retries, record
age, OnFailure queue), and the processed template for what moto's CloudFormation ignores: a
table's ``KinesisStreamSpecification`` (the destination the forwarder plays).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from devstack.mappings import EventSourceMapping, FunctionTarget, RuntimeConfig, TableDestination


class Deployed(Protocol):
    """What ``runtime_config`` reads of ``devstack.deploy.DeployedStack``."""

    @property
    def region(self) -> str: ...

    @property
    def template(self) -> Mapping[str, Any]: ...

    @property
    def physical_ids(self) -> Mapping[str, str]: ...

    @property
    def functions(self) -> Mapping[str, Mapping[str, Any]]: ...

    @property
    def event_source_mappings(self) -> Mapping[str, Mapping[str, Any]]: ...


def runtime_config(
    deployed: Deployed,
    *,
    endpoint_url: str,
    database_url: str | None,
    dynamodb: Any,
    kinesis: Any,
) -> RuntimeConfig:
    """Functions, stream mappings and table destinations of ``deployed``."""
    functions = tuple(
        FunctionTarget.from_configuration(configuration)
        for configuration in deployed.functions.values()
    )
    names_by_arn = {target.arn: target.name for target in functions}
    mappings = tuple(
        EventSourceMapping.from_configuration(
            configuration,
            name=logical_id,
            function=names_by_arn.get(
                str(configuration["FunctionArn"]), str(configuration["FunctionArn"]).split(":")[-1]
            ),
        )
        for logical_id, configuration in sorted(deployed.event_source_mappings.items())
    )
    return RuntimeConfig(
        endpoint_url=endpoint_url,
        region=deployed.region,
        functions=functions,
        mappings=mappings,
        destinations=tuple(table_destinations(deployed, dynamodb=dynamodb, kinesis=kinesis)),
        database_url=database_url,
    )


def table_destinations(
    deployed: Deployed, *, dynamodb: Any, kinesis: Any
) -> list[TableDestination]:
    """Every created table with a ``KinesisStreamSpecification``: its stream → that Kinesis
    stream."""
    destinations = []
    for logical_id, resource in deployed.template["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table" or logical_id not in deployed.physical_ids:
            continue
        specification = resource.get("Properties", {}).get("KinesisStreamSpecification")
        if not specification:
            continue
        stream_logical_id = _logical_id_of(specification["StreamArn"])
        table_name = deployed.physical_ids[logical_id]
        table = dynamodb.describe_table(TableName=table_name)["Table"]
        summary = kinesis.describe_stream_summary(
            StreamName=deployed.physical_ids[stream_logical_id]
        )["StreamDescriptionSummary"]
        destinations.append(
            TableDestination(
                table_name=table_name,
                table_stream_arn=table["LatestStreamArn"],
                kinesis_stream_arn=summary["StreamARN"],
            )
        )
    return destinations


def _logical_id_of(reference: Any) -> str:
    """``{"Fn::GetAtt": [X, "Arn"]}`` or ``{"Fn::GetAtt": "X.Arn"}`` → ``X``."""
    assert isinstance(reference, dict), reference
    assert set(reference) == {"Fn::GetAtt"}, reference
    target = reference["Fn::GetAtt"]
    return str(target[0] if isinstance(target, list) else str(target).split(".", 1)[0])
