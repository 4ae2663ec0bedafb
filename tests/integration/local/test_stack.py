"""The local runtime runs what the deployed stack declares: every event source mapping of the
processed template, with its settings as CloudFormation resolved them, each function with the
environment the template gives it, and the events table's Kinesis destination."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.deploy import DeployedStack, deploy_stack
from devstack.mappings import REPORT_BATCH_ITEM_FAILURES, SourceKind
from devstack.postgres import EmbeddedPostgres
from devstack.stack import runtime_config
from tests.integration.local.conftest import Aws


@pytest.fixture(scope="module")
def deployed(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> DeployedStack:
    with EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", delete=True) as server:
        return deploy_stack(moto_endpoint, "runtime-config-test", database_url=server.url)


def test_every_mapping_of_the_template_runs_with_its_settings(
    aws: Aws, deployed: DeployedStack
) -> None:
    config = runtime_config(
        deployed,
        endpoint_url=aws.endpoint_url,
        database_url="postgresql:///unused",
        dynamodb=aws.dynamodb,
        kinesis=aws.kinesis,
    )

    declared = deployed.resources_of_type("AWS::Lambda::EventSourceMapping")
    assert {mapping.name for mapping in config.mappings} == set(declared)
    for mapping in config.mappings:
        properties: dict[str, Any] = dict(declared[mapping.name]["Properties"])
        assert mapping.batch_size == properties["BatchSize"]
        assert mapping.batching_window_s == properties.get("MaximumBatchingWindowInSeconds", 0)
        assert mapping.starting_position == properties["StartingPosition"]
        assert mapping.bisect_on_error == properties.get("BisectBatchOnFunctionError", False)
        assert mapping.maximum_retry_attempts == properties.get("MaximumRetryAttempts", -1)
        assert mapping.maximum_record_age_s == properties.get("MaximumRecordAgeInSeconds", -1)
        assert mapping.tumbling_window_s == properties.get("TumblingWindowInSeconds", 0)
        assert mapping.report_batch_item_failures == (
            REPORT_BATCH_ITEM_FAILURES in properties.get("FunctionResponseTypes", [])
        )
        on_failure = properties.get("DestinationConfig", {}).get("OnFailure")
        assert (mapping.on_failure_arn is None) == (on_failure is None)
        target = config.function(mapping.function)
        function_id = properties["FunctionName"]["Ref"]
        assert target.name == deployed.physical_ids[function_id]
        declared_function = deployed.template["Resources"][function_id]["Properties"]
        assert target.handler == declared_function["Handler"]
        assert target.timeout_s == declared_function["Timeout"]
        assert set(target.environment) <= set(declared_function["Environment"]["Variables"])
    kinds = {mapping.source_kind for mapping in config.mappings}
    assert kinds == {SourceKind.DYNAMODB, SourceKind.KINESIS}


def test_the_events_table_destination_is_the_declared_stream(
    aws: Aws, deployed: DeployedStack
) -> None:
    config = runtime_config(
        deployed,
        endpoint_url=aws.endpoint_url,
        database_url=None,
        dynamodb=aws.dynamodb,
        kinesis=aws.kinesis,
    )

    (destination,) = config.destinations
    assert destination.table_name == deployed.outputs["EventsTableName"]
    table = aws.dynamodb.describe_table(TableName=destination.table_name)["Table"]
    assert destination.table_stream_arn == table["LatestStreamArn"]
    kinesis_mappings = {
        m.source_arn for m in config.mappings if m.source_kind is SourceKind.KINESIS
    }
    assert kinesis_mappings == {destination.kinesis_stream_arn}
