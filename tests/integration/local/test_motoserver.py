"""The local moto server leaves event source mappings to the local runtime: with a mapping on
the events table, a write still reaches the table's stream (moto 5.2.5 alone would try to run
the function in Docker and empty the stream)."""

from __future__ import annotations

import io
import zipfile

from tests.integration.local.conftest import Aws, client


def test_a_mapped_table_keeps_its_stream_records(aws: Aws) -> None:
    table, stream_arn = aws.events_table()
    iam, functions = client(aws.endpoint_url, "iam"), client(aws.endpoint_url, "lambda")
    role = iam.create_role(RoleName=f"role-{table}", AssumeRolePolicyDocument="{}")["Role"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handlers/__init__.py", "")
    functions.create_function(
        FunctionName=f"project-{table}",
        Runtime="python3.12",
        Role=role["Arn"],
        Handler="handlers.project.handler",
        Code={"ZipFile": code.getvalue()},
    )
    functions.create_event_source_mapping(
        EventSourceArn=stream_arn, FunctionName=f"project-{table}", StartingPosition="TRIM_HORIZON"
    )

    aws.put_items(table, 2)

    (shard,) = aws.streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = aws.streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = aws.streams.get_records(ShardIterator=iterator)["Records"]
    assert [record["dynamodb"]["Keys"]["sk"]["N"] for record in records] == ["1", "2"]
