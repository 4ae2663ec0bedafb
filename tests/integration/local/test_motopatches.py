"""The local moto server's DynamoDB patches (``devstack.motopatches``) change no answer: the same
requests on a patched and an unpatched server (moto 5.2.5 as pinned) give the same responses,
items and stream records. Only the patched one keeps an open stream iterator working after a
cancelled transaction:
with moto alone it reads a write that was rolled back and misses every later one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.motoserver import MotoServer
from devstack.template import create_table

EVENTS, STATE = "events", "state"


@pytest.fixture(scope="module")
def unpatched_endpoint() -> Iterator[str]:
    with MotoServer(patched=False) as server:
        yield server.endpoint_url


def dynamodb(endpoint: str, service: str = "dynamodb") -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(account_id_endpoint_mode="disabled"),
    )


def item(pk: str, sk: int, **attributes: str) -> dict[str, Any]:
    return {
        "pk": {"S": pk},
        "sk": {"N": str(sk)},
        **{name: {"S": value} for name, value in attributes.items()},
    }


def outcome(call: Any, **arguments: Any) -> Any:
    """A response without its metadata, or the error's code, message and cancellation reasons."""
    try:
        response = call(**arguments)
    except ClientError as exc:
        error = exc.response["Error"]
        return (
            "error",
            error.get("Code"),
            error.get("Message"),
            exc.response.get("CancellationReasons"),
        )
    response.pop("ResponseMetadata", None)
    return response


def transactions(suffix: str) -> list[list[dict[str, Any]]]:
    events, state = EVENTS + suffix, STATE + suffix
    put = {"ConditionExpression": "attribute_not_exists(pk)"}
    return [
        # both succeed
        [
            {"Put": {"TableName": events, "Item": item("payment#a", 3, kind="capture"), **put}},
            {"Put": {"TableName": events, "Item": item("payment#a", 4, kind="release"), **put}},
        ],
        # the second conflicts: nothing is written
        [
            {"Put": {"TableName": events, "Item": item("payment#b", 9, kind="x"), **put}},
            {"Put": {"TableName": events, "Item": item("payment#a", 4, kind="again"), **put}},
        ],
        # an update then a failing condition: the update is rolled back
        [
            {
                "Update": {
                    "TableName": state,
                    "Key": {"payment_id": {"S": "p-1"}},
                    "UpdateExpression": "SET #s = :s",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":s": {"S": "changed"}},
                }
            },
            {
                "ConditionCheck": {
                    "TableName": events,
                    "Key": {"pk": {"S": "payment#a"}, "sk": {"N": "1"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ],
        # an update and a delete that succeed
        [
            {
                "Update": {
                    "TableName": state,
                    "Key": {"payment_id": {"S": "p-2"}},
                    "UpdateExpression": "SET #s = :s",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":s": {"S": "settled"}},
                }
            },
            {"Delete": {"TableName": events, "Key": {"pk": {"S": "payment#c"}, "sk": {"N": "2"}}}},
        ],
        # the same item twice: refused as a whole
        [
            {"Put": {"TableName": events, "Item": item("payment#d", 1, kind="x")}},
            {"Put": {"TableName": events, "Item": item("payment#d", 1, kind="y")}},
        ],
    ]


def queries(suffix: str) -> list[dict[str, Any]]:
    events, state = EVENTS + suffix, STATE + suffix
    by_pk = {"TableName": events, "KeyConditionExpression": "pk = :pk", "ConsistentRead": True}
    return [
        {**by_pk, "ExpressionAttributeValues": {":pk": {"S": f"payment#{name}"}}}
        for name in "abcdez"
    ] + [
        {
            **by_pk,
            "ExpressionAttributeValues": {":pk": {"S": "payment#a"}},
            "ScanIndexForward": False,
        },
        {**by_pk, "ExpressionAttributeValues": {":pk": {"S": "payment#b"}}, "Limit": 2},
        {
            **by_pk,
            "ExpressionAttributeValues": {":pk": {"S": "payment#b"}},
            "Limit": 2,
            "ExclusiveStartKey": {"pk": {"S": "payment#b"}, "sk": {"N": "2"}},
        },
        {
            "TableName": events,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": "payment#b"},
                ":low": {"N": "2"},
                ":high": {"N": "4"},
            },
        },
        {
            "TableName": events,
            "KeyConditionExpression": "pk = :pk AND sk > :v",
            "FilterExpression": "kind = :kind",
            "ExpressionAttributeValues": {
                ":pk": {"S": "payment#b"},
                ":v": {"N": "1"},
                ":kind": {"S": "odd"},
            },
        },
        {
            "TableName": state,
            "IndexName": "by-merchant",
            "KeyConditionExpression": "merchant_id = :m",
            "ExpressionAttributeValues": {":m": {"S": "m-1"}},
        },
    ]


def scenario(endpoint: str) -> dict[str, Any]:
    """Every answer of one fixed sequence of writes, transactions and queries, then the tables
    and the events table's stream (without ids and times, which differ by nature)."""
    client = dynamodb(endpoint)
    suffix = "-" + endpoint.rsplit(":", 1)[1]
    create_table(client, "EventsTable", EVENTS + suffix)
    create_table(client, "PaymentStateTable", STATE + suffix)
    rng = random.Random(3)
    writes = [
        (pk, sk) for pk in "abc" for sk in range(1, 6) if (pk, sk) not in (("a", 3), ("a", 4))
    ]
    rng.shuffle(writes)
    answers: list[Any] = []
    for pk, sk in writes:
        kind = "odd" if sk % 2 else "even"
        answers.append(
            outcome(
                client.put_item,
                TableName=EVENTS + suffix,
                Item=item(f"payment#{pk}", sk, kind=kind),
            )
        )
    for index in range(1, 4):
        state_item = {
            "payment_id": {"S": f"p-{index}"},
            "merchant_id": {"S": "m-1"},
            "updated_at": {"S": f"2026-11-2{index}"},
            "status": {"S": "captured"},
        }
        answers.append(outcome(client.put_item, TableName=STATE + suffix, Item=state_item))
    for batch in transactions(suffix):
        answers.append(outcome(client.transact_write_items, TransactItems=batch))
    for query in queries(suffix):
        answers.append(outcome(client.query, **query))
    tables = {
        name: sorted(
            client.scan(TableName=name + suffix, ConsistentRead=True)["Items"],
            key=lambda entry: sorted((key, str(value)) for key, value in entry.items()),
        )
        for name in (EVENTS, STATE)
    }
    return {
        "answers": answers,
        "tables": tables,
        "stream": stream_records(endpoint, EVENTS + suffix),
    }


def stream_records(endpoint: str, table: str) -> list[Any]:
    streams = dynamodb(endpoint, "dynamodbstreams")
    arn = dynamodb(endpoint).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return [
        (
            record["eventName"],
            record["dynamodb"]["Keys"],
            record["dynamodb"].get("NewImage"),
            record["dynamodb"]["SequenceNumber"],
        )
        for record in records
    ]


def normalised(value: Any, endpoint: str) -> Any:
    """Table names carry each server's port: the same names for both."""
    suffix = "-" + endpoint.rsplit(":", 1)[1]
    if isinstance(value, str):
        return value.replace(suffix, "")
    if isinstance(value, dict):
        return {key: normalised(item, endpoint) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [normalised(item, endpoint) for item in value]
    return value


def test_patched_and_unpatched_servers_answer_alike(
    moto_endpoint: str, unpatched_endpoint: str
) -> None:
    patched = normalised(scenario(moto_endpoint), moto_endpoint)
    original = normalised(scenario(unpatched_endpoint), unpatched_endpoint)

    assert patched["answers"] == original["answers"]
    assert patched["tables"] == original["tables"]
    assert patched["stream"] == original["stream"]
    errors = [
        answer
        for answer in patched["answers"]
        if isinstance(answer, list) and answer[:1] == ["error"]
    ]
    assert [error[1] for error in errors] == [
        "TransactionCanceledException",
        "TransactionCanceledException",
        "ValidationException",
    ]


def test_an_open_stream_iterator_sees_writes_after_a_cancelled_transaction(
    moto_endpoint: str, unpatched_endpoint: str
) -> None:
    def blind_after_rollback(endpoint: str) -> list[str]:
        client, streams = dynamodb(endpoint), dynamodb(endpoint, "dynamodbstreams")
        table = f"iterators-{random.randrange(10**9)}"
        create_table(client, "EventsTable", table)
        arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        client.put_item(TableName=table, Item=item("payment#a", 1))
        conflicting = {"ConditionExpression": "attribute_not_exists(pk)"}
        with pytest.raises(ClientError):
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": item("payment#a", 2), **conflicting}},
                    {"Put": {"TableName": table, "Item": item("payment#a", 1), **conflicting}},
                ]
            )
        client.put_item(TableName=table, Item=item("payment#a", 3))
        records = streams.get_records(ShardIterator=iterator)["Records"]
        return [record["dynamodb"]["Keys"]["sk"]["N"] for record in records]

    assert blind_after_rollback(moto_endpoint) == ["1", "3"]
    # moto alone: the iterator still reads the replaced shard, which holds the cancelled write
    # and never the next one.
    assert blind_after_rollback(unpatched_endpoint) == ["1", "2"]
