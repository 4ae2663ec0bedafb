"""Read ``template.yaml`` and create its resources on an emulated endpoint (never by hand)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# An installed wheel carries the template inside this package; a clone has it at its root.
_PACKAGED_TEMPLATE = Path(__file__).resolve().parent / "template.yaml"
TEMPLATE_PATH = (
    _PACKAGED_TEMPLATE
    if _PACKAGED_TEMPLATE.is_file()
    else Path(__file__).resolve().parent.parent / "template.yaml"
)
_FUNCTIONS_WITH_LIST_ARGUMENT = {"GetAtt"}
# Short forms whose long form is not ``Fn::<name>``.
_PLAIN_NAMES = {"Ref", "Condition"}


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader keeping CloudFormation short-form tags (``!Ref``, ``!Sub``…) as long forms."""


def _construct_intrinsic(
    loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node
) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in _PLAIN_NAMES else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix in _FUNCTIONS_WITH_LIST_ARGUMENT:
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
    assert isinstance(document, dict)
    return document


def table_definition(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """CreateTable arguments (name aside) for the template's table ``logical_id``."""
    resource = template["Resources"][logical_id]
    assert resource["Type"] == "AWS::DynamoDB::Table", resource["Type"]
    properties = resource["Properties"]
    arguments: dict[str, Any] = {
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if "StreamSpecification" in properties:
        arguments["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": properties["StreamSpecification"]["StreamViewType"],
        }
    if "GlobalSecondaryIndexes" in properties:
        arguments["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    return arguments


def create_table(dynamodb_client: Any, logical_id: str, table_name: str) -> None:
    """Create ``table_name`` shaped as the template's ``logical_id`` and wait for it."""
    arguments = table_definition(load_template(), logical_id)
    dynamodb_client.create_table(TableName=table_name, **arguments)
    dynamodb_client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )


def create_bucket(s3_client: Any, logical_id: str, bucket: str) -> None:
    """Create ``bucket`` shaped as the template's bucket ``logical_id`` (Object Lock, versioning,
    public access block), with the template's default parameters, for tests that need one
    bucket rather than the whole stack."""
    template = load_template()
    resource = template["Resources"][logical_id]
    assert resource["Type"] == "AWS::S3::Bucket", resource["Type"]
    properties = resource.get("Properties", {})
    s3_client.create_bucket(
        Bucket=bucket, ObjectLockEnabledForBucket=bool(properties.get("ObjectLockEnabled"))
    )
    configure_bucket(s3_client, bucket, properties, parameter_defaults(template))


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """Every parameter's default value, as text (what CloudFormation takes)."""
    return {
        name: str(parameter["Default"])
        for name, parameter in template.get("Parameters", {}).items()
        if "Default" in parameter
    }


def configure_bucket(
    s3_client: Any, bucket: str, properties: Mapping[str, Any], parameters: Mapping[str, str]
) -> None:
    """Apply a template bucket's versioning, Object Lock and public access block through the S3
    API (moto's CloudFormation ignores them; its S3 API honours them)."""
    if "VersioningConfiguration" in properties:
        s3_client.put_bucket_versioning(
            Bucket=bucket,
            VersioningConfiguration={"Status": properties["VersioningConfiguration"]["Status"]},
        )
    if "ObjectLockConfiguration" in properties:
        s3_client.put_object_lock_configuration(
            Bucket=bucket,
            ObjectLockConfiguration=_with_parameters(
                properties["ObjectLockConfiguration"], parameters
            ),
        )
    if "PublicAccessBlockConfiguration" in properties:
        s3_client.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"],
        )


def _with_parameters(value: Any, parameters: Mapping[str, str]) -> Any:
    """``value`` with every ``{"Ref": parameter}`` replaced by the parameter's value (numbers as
    ints, as the S3 API wants them)."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            raw = parameters[value["Ref"]]
            return int(raw) if str(raw).isdigit() else raw
        return {key: _with_parameters(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_parameters(item, parameters) for item in value]
    return value
