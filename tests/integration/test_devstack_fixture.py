from __future__ import annotations


def test_events_table_matches_template(dynamodb_client, events_table) -> None:  # type: ignore[no-untyped-def]
    table = dynamodb_client.describe_table(TableName=events_table)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {
        "pk": "HASH",
        "sk": "RANGE",
    }
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
