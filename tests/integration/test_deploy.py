"""devstack.deploy creates template.yaml on moto's CloudFormation, as the local stack will.

One stack is deployed per test module on the session's moto server (about 5 s) and every test
reads it: the stack completes, its outputs name live resources, the functions and event source
mappings the emulated Lambda holds carry exactly the settings and environment the template
declares (what the local runtime's pollers read), and its custom resource ran the real migration
function into an embedded PostgreSQL.
"""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError

from devstack.deploy import (
    ARTIFACTS_BUCKET,
    LAMBDA_PACKAGES,
    LOCAL_PARAMETERS,
    DeployedStack,
    DeployError,
    deploy_stack,
    emulator_compatible,
    package_code,
    point_code_at,
    read_stack,
    transform,
)
from devstack.postgres import EmbeddedPostgres
from devstack.template import load_template
from projections.postgres.migrate import load_migrations, recorded_migrations
from projections.postgres.tables import analytics_schema

TEMPLATE = load_template()
REGION = "us-east-1"
# The template's name for each setting of an event source (SAM) → the Lambda API's name.
MAPPING_SETTINGS = {
    "BatchSize": "BatchSize",
    "MaximumBatchingWindowInSeconds": "MaximumBatchingWindowInSeconds",
    "ParallelizationFactor": "ParallelizationFactor",
    "StartingPosition": "StartingPosition",
    "FunctionResponseTypes": "FunctionResponseTypes",
    "BisectBatchOnFunctionError": "BisectBatchOnFunctionError",
    "MaximumRetryAttempts": "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds": "MaximumRecordAgeInSeconds",
    "TumblingWindowInSeconds": "TumblingWindowInSeconds",
}


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", delete=True) as server:
        yield server.url


@pytest.fixture(scope="module")
def schema() -> str:
    return f"deploy_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stack(moto_endpoint: str, database_url: str, schema: str) -> DeployedStack:
    # Names derived from the stage (Glue database, Athena workgroup) are account-wide: a stage of
    # its own keeps this stack apart from any other on the session's server.
    suffix = uuid.uuid4().hex[:8]
    return deploy_stack(
        moto_endpoint,
        f"payledger-{suffix}",
        {"Stage": f"t{suffix}", "DatabaseSchema": schema},
        database_url=database_url,
    )


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


def test_the_stack_completes_with_every_output(stack: DeployedStack, moto_endpoint: str) -> None:
    cloudformation = _client("cloudformation", moto_endpoint)
    (described,) = cloudformation.describe_stacks(StackName=stack.stack_name)["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE"
    assert set(stack.outputs) == {
        name
        for name, output in TEMPLATE["Outputs"].items()
        if "Condition" not in output  # the database outputs exist only on AWS
    }
    dynamodb = _client("dynamodb", moto_endpoint)
    events = dynamodb.describe_table(TableName=stack.outputs["EventsTableName"])["Table"]
    assert events["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    dynamodb.describe_table(TableName=stack.outputs["PaymentStateTableName"])
    kinesis = _client("kinesis", moto_endpoint)
    kinesis.describe_stream_summary(StreamName=stack.outputs["EventsStreamName"])
    sqs = _client("sqs", moto_endpoint)
    for name in ("Project", "Archive", "Analytics", "Jobs"):
        sqs.get_queue_attributes(QueueUrl=stack.outputs[f"{name}DeadLetterQueueUrl"])
    s3 = _client("s3", moto_endpoint)
    for name in ("ArchiveBucketName", "DigestBucketName", "AccessLogsBucketName"):
        s3.head_bucket(Bucket=stack.outputs[name])


def test_cloudformation_holds_the_sam_transform_of_the_template(stack: DeployedStack) -> None:
    sam_template = load_template()
    code_key = f"code/{hashlib.sha256(package_code()).hexdigest()[:16]}.zip"
    point_code_at(sam_template, ARTIFACTS_BUCKET, code_key)
    parameters = {**LOCAL_PARAMETERS, "Stage": stack.parameters["Stage"]}
    expected = emulator_compatible(transform(sam_template, parameters, region=REGION))
    assert stack.template == expected
    assert not [
        r for r in stack.template["Resources"].values() if r["Type"].startswith("AWS::Serverless")
    ]


def test_another_process_reads_the_same_stack_back(
    stack: DeployedStack, moto_endpoint: str
) -> None:
    assert read_stack(moto_endpoint, stack.stack_name) == stack


def test_a_local_deployment_leaves_out_only_what_needs_aws(stack: DeployedStack) -> None:
    created_types = {
        stack.template["Resources"][logical_id]["Type"] for logical_id in stack.physical_ids
    }
    assert not {kind for kind in created_types if kind.startswith(("AWS::RDS::", "AWS::EC2::"))}
    for configuration in stack.functions.values():
        assert configuration.get("Layers", []) == []
        assert "DATABASE_HOST" not in configuration["Environment"]["Variables"]
    # moto's CloudFormation skips these types (DESIGN §9); the local runtime stands in for them.
    skipped_types = {
        stack.template["Resources"][logical_id]["Type"] for logical_id in stack.not_created
    }
    assert "AWS::Lambda::Function" not in skipped_types
    assert "AWS::Lambda::EventSourceMapping" not in skipped_types


def test_functions_hold_the_handler_and_environment_the_template_gives_them(
    stack: DeployedStack,
) -> None:
    assert set(stack.functions) == {
        logical_id
        for logical_id, resource in TEMPLATE["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    expected_environment = {
        "ApiFunction": {
            "EVENTS_TABLE": "EventsTableName",
            "PAYMENT_STATE_TABLE": "PaymentStateTableName",
        },
        "ProjectFunction": {
            "EVENTS_TABLE": "EventsTableName",
            "PAYMENT_STATE_TABLE": "PaymentStateTableName",
        },
        "ArchiveFunction": {"ARCHIVE_BUCKET": "ArchiveBucketName"},
        "AnalyticsFunction": {},
        "CompactFunction": {"ARCHIVE_BUCKET": "ArchiveBucketName"},
        "MigrateFunction": {},
        "DigestFunction": {
            "EVENTS_TABLE": "EventsTableName",
            "PAYMENT_STATE_TABLE": "PaymentStateTableName",
            "DIGEST_BUCKET": "DigestBucketName",
        },
    }
    for logical_id, configuration in stack.functions.items():
        declared = TEMPLATE["Resources"][logical_id]["Properties"]
        assert configuration["Handler"] == declared["Handler"]
        assert configuration["Runtime"] == "python3.12"
        # moto's CloudFormation drops Architectures; the processed template keeps it.
        assert stack.template["Resources"][logical_id]["Properties"]["Architectures"] == ["arm64"]
        assert configuration["FunctionName"] == stack.outputs[f"{logical_id}Name"]
        assert stack.function_logical_id(configuration["FunctionName"]) == logical_id
        variables = configuration["Environment"]["Variables"]
        for variable, output in expected_environment[logical_id].items():
            assert variables[variable] == stack.outputs[output], (logical_id, variable)
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Payledger"


def test_event_source_mappings_hold_the_template_settings(stack: DeployedStack) -> None:
    sources = {
        f"{logical_id}{event_name}": (logical_id, event)
        for logical_id, resource in TEMPLATE["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        for event_name, event in resource["Properties"].get("Events", {}).items()
        if event["Type"] in ("DynamoDB", "Kinesis")
    }
    assert set(stack.event_source_mappings) == set(sources)
    queues = {
        "ProjectFunction": "ProjectDeadLetterQueueUrl",
        "ArchiveFunction": "ArchiveDeadLetterQueueUrl",
        "AnalyticsFunction": "AnalyticsDeadLetterQueueUrl",
    }
    for mapping_id, (function_id, event) in sources.items():
        deployed = stack.event_source_mappings[mapping_id]
        declared = event["Properties"]
        for template_name, api_name in MAPPING_SETTINGS.items():
            assert deployed.get(api_name) == declared.get(template_name), (mapping_id, api_name)
        assert deployed["FunctionArn"].endswith(f":function:{stack.outputs[f'{function_id}Name']}")
        destination = deployed["DestinationConfig"]["OnFailure"]["Destination"]
        assert destination.endswith(":" + stack.outputs[queues[function_id]].rsplit("/", 1)[1])
    kinesis_sources = {
        mapping["EventSourceArn"]
        for mapping_id, mapping in stack.event_source_mappings.items()
        if sources[mapping_id][1]["Type"] == "Kinesis"
    }
    assert kinesis_sources == {stack.outputs["EventsStreamArn"]}


def test_the_catalogue_is_the_templates_though_moto_skips_its_types(
    stack: DeployedStack, moto_endpoint: str
) -> None:
    glue = _client("glue", moto_endpoint)
    table = glue.get_table(DatabaseName=stack.outputs["GlueDatabaseName"], Name="events")["Table"]
    declared = TEMPLATE["Resources"]["ArchiveEventsTable"]["Properties"]["TableInput"]
    assert table["StorageDescriptor"]["Columns"] == declared["StorageDescriptor"]["Columns"]
    assert table["PartitionKeys"] == declared["PartitionKeys"]
    archive = stack.outputs["ArchiveBucketName"]
    assert table["Parameters"]["storage.location.template"] == (
        f"s3://{archive}/events/year=${{year}}/month=${{month}}/day=${{day}}"
    )
    athena = _client("athena", moto_endpoint)
    workgroup = athena.get_work_group(WorkGroup=stack.outputs["AthenaWorkGroupName"])["WorkGroup"]
    configuration = workgroup["Configuration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert (
        configuration["ResultConfiguration"]["OutputLocation"] == f"s3://{archive}/athena-results/"
    )


def test_a_redeployment_of_the_stage_takes_the_catalogue_over(
    stack: DeployedStack, moto_endpoint: str, database_url: str
) -> None:
    """The catalogue's names are the stage's, and outlive an emulated stack (moto's
    CloudFormation never created them): the next stack of the stage must still complete."""
    again = deploy_stack(
        moto_endpoint,
        f"{stack.stack_name}-again",
        dict(stack.parameters),
        database_url=database_url,
    )
    assert again.outputs["GlueDatabaseName"] == stack.outputs["GlueDatabaseName"]
    glue = _client("glue", moto_endpoint)
    table = glue.get_table(DatabaseName=again.outputs["GlueDatabaseName"], Name="events")["Table"]
    assert again.outputs["ArchiveBucketName"] in table["StorageDescriptor"]["Location"]


def test_the_ledger_key_serves_the_kms_api(stack: DeployedStack, moto_endpoint: str) -> None:
    kms = _client("kms", moto_endpoint)
    key_id = stack.physical_ids["LedgerKey"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"] == stack.outputs["LedgerKeyArn"]
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert (
        kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"]
        == (data_key["Plaintext"])
    )


def test_digests_cannot_be_deleted_in_the_emulated_bucket_either(
    stack: DeployedStack, moto_endpoint: str
) -> None:
    s3 = _client("s3", moto_endpoint)
    bucket = stack.outputs["DigestBucketName"]
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    written = s3.put_object(Bucket=bucket, Key="digests/test", Body=b"root")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=bucket, Key="digests/test", VersionId=written["VersionId"])


def test_the_code_package_holds_our_packages_only_and_is_reproducible() -> None:
    code = package_code()
    assert package_code() == code
    names = zipfile.ZipFile(io.BytesIO(code)).namelist()
    assert "handlers/api/__init__.py" in names
    assert "handlers/project.py" in names
    assert "handlers/migrate.py" in names
    assert "projections/postgres/migrations/0001_tables.sql" in names
    assert {name.split("/", 1)[0] for name in names} == set(LAMBDA_PACKAGES)
    assert not [name for name in names if "__pycache__" in name]


def test_emulator_rewrites_change_nothing_but_what_moto_misreads() -> None:
    processed = {
        "Resources": {
            "Key": {"Type": "AWS::KMS::Key", "Properties": {"Tags": [{"Key": "a", "Value": "b"}]}},
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "x"}},
            "Deployment": {"Type": "AWS::ApiGateway::Deployment", "Properties": {}},
            "Stage": {"Type": "AWS::ApiGateway::Stage", "DependsOn": "Deployment"},
            "Other": {"Type": "AWS::SQS::Queue", "DependsOn": ["Deployment", "Api"]},
        }
    }
    compatible = emulator_compatible(processed)
    assert compatible["Resources"] == {
        "Key": {
            "Type": "AWS::KMS::Key",
            "Properties": {"Tags": [{"TagKey": "a", "TagValue": "b"}]},
        },
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "x"}},
        "Other": {"Type": "AWS::SQS::Queue", "DependsOn": ["Api"]},
    }
    assert processed["Resources"]["Key"]["Properties"]["Tags"] == [{"Key": "a", "Value": "b"}]


def test_the_custom_resource_ran_the_migration_function_into_the_database(
    stack: DeployedStack, database_url: str, schema: str
) -> None:
    assert "DatabaseMigrations" in stack.physical_ids
    with psycopg.connect(database_url, autocommit=True) as connection:
        views = recorded_migrations(connection, schema)
        analytics = recorded_migrations(connection, analytics_schema(schema))
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
    assert views == {m.version: m.checksum for m in load_migrations()}
    assert set(analytics) == {m.version for m in load_migrations("analytics_migrations")}
    assert {"payments", "schema_migrations"} <= tables


def test_a_failed_migration_fails_the_deploy(moto_endpoint: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    with pytest.raises(DeployError, match=r"DatabaseMigrations: FAILED: .*OperationalError"):
        deploy_stack(
            moto_endpoint,
            f"payledger-{suffix}",
            {"Stage": f"t{suffix}"},
            database_url="postgresql://nobody@127.0.0.1:1/none?connect_timeout=2",
        )
