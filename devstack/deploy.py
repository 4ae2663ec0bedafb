"""Deploy ``template.yaml`` onto an emulated AWS (moto's server) the way ``sam deploy`` would.

``deploy_stack(endpoint_url, stack_name, parameters)``:

1. packages the Lambda code (our packages only: the emulated Lambda never runs it, the local
   runtime imports the handlers in-process) into one zip on the emulated S3, and points every
   function's ``CodeUri`` at it (the offline SAM transform accepts only S3 locations);
2. runs the SAM transform offline with ``samtranslator``, as CloudFormation's
   ``AWS::Serverless-2016-10-31`` transform would, then rewrites the two things moto's
   CloudFormation misreads (``emulator_compatible``);
3. creates the stack from the processed template on the emulated CloudFormation, answers its
   custom resources by invoking their real functions as CloudFormation would
   (``devstack.custom_resources``: the migrations, into ``database_url``), waits for
   ``CREATE_COMPLETE``, then completes through the service APIs what moto's CloudFormation
   ignores or misstores: the KMS key policy, the bucket settings (versioning, Object Lock,
   public access block), the Glue database and table and the Athena workgroup;
4. returns a :class:`DeployedStack`: outputs, the processed template, physical ids, and the
   functions and event source mappings as the emulated Lambda holds them (references resolved).

``Target=local`` is the default parameter: it turns off what only AWS runs (DESIGN §9).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import WaiterError

from devstack.custom_resources import (
    CustomResource,
    CustomResourceError,
    answer_custom_resources,
)
from devstack.functions import local_target
from devstack.mappings import FunctionTarget
from devstack.template import (
    TEMPLATE_PATH,
    configure_bucket,
    load_template,
    parameter_defaults,
)
from handlers import bootstrap

REPOSITORY_ROOT = TEMPLATE_PATH.parent
# What a function's code needs at run time; devstack (the local runtime) never ships.
LAMBDA_PACKAGES = ("ledger", "projections", "archive", "handlers")
ARTIFACTS_BUCKET = "payledger-deploy-artifacts"
LOCAL_PARAMETERS = {"Target": "local", "Stage": "local"}
DEFAULT_REGION = "us-east-1"
STACK_READY_STATUSES = ("CREATE_COMPLETE",)
STACK_WAIT_S = 120
_API_DEPLOYMENT_TYPES = ("AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage")
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})
_NO_VALUE = object()  # AWS::NoValue while resolving


class DeployError(RuntimeError):
    """The stack did not reach CREATE_COMPLETE; ``events`` are its CloudFormation events."""

    def __init__(self, message: str, events: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.events = events or []


@dataclass(frozen=True, slots=True)
class DeployedStack:
    """A stack created on the emulated CloudFormation.

    ``template`` is the processed template (SAM transformed), exactly what CloudFormation was
    given and ``GetTemplate(TemplateStage="Processed")`` returns; ``parameters`` are the values
    in force (defaults included); ``physical_ids`` maps each created resource's logical id to
    its physical id (resources the emulator skips are absent). ``functions`` and
    ``event_source_mappings`` are the emulated Lambda's own view (``GetFunctionConfiguration``,
    ``GetEventSourceMapping``), keyed by logical id, with every reference resolved: what a local
    poller needs to invoke a handler as Lambda would (handler, environment, batch size, window,
    bisect, retries, record age, destination, tumbling window).

    ``not_created`` lists the template's resources the stack has none of: those whose condition
    is false (``Target=local`` turns off the cloud-only ones) and those moto's CloudFormation
    skips (alarms, bucket and queue policies, Glue, Athena, the API's deployment; DESIGN §9).
    ``deploy_stack`` creates the Glue database and table and the Athena workgroup through their
    APIs all the same.
    """

    stack_name: str
    stack_id: str
    region: str
    parameters: Mapping[str, str]
    outputs: Mapping[str, str]
    template: Mapping[str, Any]
    physical_ids: Mapping[str, str]
    functions: Mapping[str, Mapping[str, Any]]
    event_source_mappings: Mapping[str, Mapping[str, Any]]

    @property
    def not_created(self) -> list[str]:
        return sorted(set(self.template["Resources"]) - set(self.physical_ids))

    def resources_of_type(self, resource_type: str) -> dict[str, Mapping[str, Any]]:
        """The processed template's resources of ``resource_type``, by logical id."""
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == resource_type
        }

    def function_logical_id(self, function_name: str) -> str:
        """The logical id of the function whose physical name is ``function_name``."""
        for logical_id in self.functions:
            if self.physical_ids[logical_id] == function_name:
                return logical_id
        raise KeyError(function_name)


def deploy_stack(
    endpoint_url: str,
    stack_name: str,
    parameters: Mapping[str, str] | None = None,
    *,
    database_url: str | None,
    region: str = DEFAULT_REGION,
    template: Mapping[str, Any] | None = None,
) -> DeployedStack:
    """Package, transform and create ``stack_name`` on the emulated AWS at ``endpoint_url``.

    ``parameters`` override the template's defaults on top of ``LOCAL_PARAMETERS``. ``template``
    (the SAM template, as ``load_template`` returns it) defaults to ``template.yaml``. The
    functions of the custom resources reach PostgreSQL at ``database_url`` (the migrations fail
    the deploy without one).
    """
    clients = _Clients(endpoint_url, region)
    values = {**LOCAL_PARAMETERS, **(parameters or {})}
    code_key = upload_code(clients.s3, package_code())
    sam_template = copy.deepcopy(dict(template or load_template()))
    point_code_at(sam_template, ARTIFACTS_BUCKET, code_key)
    processed = emulator_compatible(transform(sam_template, values, region=region))
    template_key = f"templates/{stack_name}-{_digest(json.dumps(processed).encode())}.json"
    clients.s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=template_key, Body=json.dumps(processed))
    created = clients.cloudformation.create_stack(
        StackName=stack_name,
        # A URL (not TemplateBody): the processed template exceeds TemplateBody's 51,200 bytes.
        TemplateURL=f"https://{ARTIFACTS_BUCKET}.s3.amazonaws.com/{template_key}",
        Parameters=[
            {"ParameterKey": key, "ParameterValue": value} for key, value in values.items()
        ],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    creating = read_stack(endpoint_url, created["StackId"], region=region)
    try:
        answer_custom_resources(
            custom_resources(creating, _resolvable_names(clients, creating)),
            endpoint_url=endpoint_url,
            region=region,
            stack_id=created["StackId"],
            database_url=database_url,
        )
    except CustomResourceError as exc:
        raise DeployError(f"stack {created['StackId']} did not complete: {exc}") from exc
    _wait_for_stack(clients.cloudformation, created["StackId"])
    deployed = read_stack(endpoint_url, created["StackId"], region=region)
    names = _resolvable_names(clients, deployed)
    complete_keys(clients, deployed, names)
    complete_buckets(clients.s3, deployed.template, deployed.physical_ids, deployed.parameters)
    complete_catalog(clients, deployed, names)
    return deployed


def read_stack(
    endpoint_url: str, stack_name: str, *, region: str = DEFAULT_REGION
) -> DeployedStack:
    """The :class:`DeployedStack` of a stack already created on the emulated AWS (by this or
    another process), read back from CloudFormation and Lambda."""
    clients = _Clients(endpoint_url, region)
    (stack,) = clients.cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    held = clients.cloudformation.get_template(StackName=stack_name, TemplateStage="Processed")
    body = held["TemplateBody"]
    processed: dict[str, Any] = (
        json.loads(body) if isinstance(body, str) else json.loads(json.dumps(body))
    )
    physical_ids = {
        resource["LogicalResourceId"]: resource["PhysicalResourceId"]
        for resource in _stack_resources(clients.cloudformation, stack["StackId"])
        # moto lists a resource type it skips as a nameless entry
        if resource["LogicalResourceId"]
    }
    given = {item["ParameterKey"]: item["ParameterValue"] for item in stack.get("Parameters", [])}
    return DeployedStack(
        stack_name=stack["StackName"],
        stack_id=stack["StackId"],
        region=region,
        parameters={**parameter_defaults(processed), **given},
        outputs={item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])},
        template=processed,
        physical_ids=physical_ids,
        functions=_functions(clients.lambda_, processed, physical_ids),
        event_source_mappings=_event_source_mappings(clients.lambda_, processed, physical_ids),
    )


def package_code(root: Path = REPOSITORY_ROOT) -> bytes:
    """A deterministic zip of the Lambda packages' Python files (same code, same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in LAMBDA_PACKAGES:
            for path in sorted((root / package).rglob("*")):
                if path.is_file() and path.suffix in (".py", ".sql", ".typed"):
                    info = zipfile.ZipInfo(
                        str(path.relative_to(root)), date_time=(1980, 1, 1, 0, 0, 0)
                    )
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def upload_code(s3_client: Any, code: bytes) -> str:
    """Put ``code`` in the artifacts bucket (created if missing); its key, named by content."""
    with contextlib.suppress(s3_client.exceptions.BucketAlreadyOwnedByYou):
        s3_client.create_bucket(Bucket=ARTIFACTS_BUCKET)
    key = f"code/{_digest(code)}.zip"
    s3_client.put_object(Bucket=ARTIFACTS_BUCKET, Key=key, Body=code)
    return key


def point_code_at(sam_template: dict[str, Any], bucket: str, key: str) -> None:
    """Every function's ``CodeUri`` → the uploaded zip (``sam package`` does the same)."""
    for resource in sam_template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = {"Bucket": bucket, "Key": key}


def transform(
    sam_template: Mapping[str, Any], parameters: Mapping[str, str], *, region: str
) -> dict[str, Any]:
    """The SAM transform, offline: the CloudFormation template ``sam deploy`` would submit."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    session = boto3.session.Session(region_name=region)
    # Every role is declared in the template, so SAM never needs an AWS managed policy's ARN.
    translator = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session)
    processed: dict[str, Any] = translator.translate(
        sam_template=copy.deepcopy(dict(sam_template)), parameter_values=dict(parameters)
    )
    return processed


def emulator_compatible(processed: Mapping[str, Any]) -> dict[str, Any]:
    """``processed`` with what moto 5.2.5's CloudFormation mis-parses rewritten to what it
    expects, meaning unchanged. Each rewrite names the emulator bug it works around; nothing
    here changes what a resource is or does.

    - ``AWS::KMS::Key`` tags: moto tags the key with the KMS API's shape (``TagKey``/``TagValue``)
      and answers HTTP 500 (KeyError 'TagKey') to CloudFormation's ``Key``/``Value``.
    - ``AWS::ApiGateway::Deployment`` and ``Stage``: moto ignores a RestApi's ``Body`` (the
      OpenAPI document SAM generates), so the API has no methods and the deployment fails the
      stack ("The REST API doesn't contain any methods"); moto has no Stage type at all. The
      RestApi stays (its id is in the outputs); the local runtime calls the API handler itself.
    """
    compatible = copy.deepcopy(dict(processed))
    resources = compatible["Resources"]
    dropped = {
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] in _API_DEPLOYMENT_TYPES
    }
    for logical_id in dropped:
        del resources[logical_id]
    for resource in resources.values():
        depends_on = resource.get("DependsOn")
        if isinstance(depends_on, list):
            resource["DependsOn"] = [name for name in depends_on if name not in dropped]
        elif depends_on in dropped:
            del resource["DependsOn"]
    for resource in resources.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::KMS::Key" and "Tags" in properties:
            properties["Tags"] = [
                {"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in properties["Tags"]
            ]
    return compatible


def complete_buckets(
    s3_client: Any,
    processed: Mapping[str, Any],
    physical_ids: Mapping[str, str],
    parameters: Mapping[str, str],
) -> None:
    """Apply the bucket settings moto's CloudFormation ignores, through the S3 API (which moto
    honours): versioning, Object Lock (the digests' immutability) and the public access block."""
    for logical_id, resource in processed["Resources"].items():
        if resource["Type"] == "AWS::S3::Bucket" and logical_id in physical_ids:
            configure_bucket(
                s3_client, physical_ids[logical_id], resource.get("Properties", {}), parameters
            )


def complete_keys(clients: _Clients, stack: DeployedStack, names: Mapping[str, Any]) -> None:
    """Store each key's policy as the JSON text the KMS API holds: moto's CloudFormation keeps
    the template's object, and every later KMS call on the key answers HTTP 500 (its policy
    check runs ``json.loads`` on that object)."""
    for logical_id, resource in stack.template["Resources"].items():
        if resource["Type"] == "AWS::KMS::Key" and logical_id in stack.physical_ids:
            policy = _substituted(resource["Properties"]["KeyPolicy"], names)
            clients.kms.put_key_policy(
                KeyId=stack.physical_ids[logical_id],
                PolicyName="default",
                Policy=json.dumps(policy),
            )


def complete_catalog(clients: _Clients, stack: DeployedStack, names: Mapping[str, Any]) -> None:
    """Create the Glue database and tables and the Athena workgroups moto's CloudFormation
    skips, through the Glue and Athena APIs, so the local stack's catalogue is the template's
    (the archive's columns and partition projection, the workgroup's settings). Their names are
    account-wide and outlive a deleted emulated stack, so a redeployment takes them over."""
    names = dict(names)
    glue = clients.glue
    for kind, resource in stack.template["Resources"].items():
        if resource["Type"] == "AWS::Glue::Database":
            database = _substituted(resource["Properties"]["DatabaseInput"], names)
            with contextlib.suppress(glue.exceptions.AlreadyExistsException):
                glue.create_database(DatabaseInput=database)
            names[kind] = database["Name"]
    for resource in stack.template["Resources"].values():
        if resource["Type"] == "AWS::Glue::Table":
            table = _substituted(resource["Properties"], names)
            try:
                glue.create_table(
                    DatabaseName=table["DatabaseName"], TableInput=table["TableInput"]
                )
            except glue.exceptions.AlreadyExistsException:
                glue.update_table(
                    DatabaseName=table["DatabaseName"], TableInput=table["TableInput"]
                )
        elif resource["Type"] == "AWS::Athena::WorkGroup":
            workgroup = _substituted(resource["Properties"], names)
            existing = clients.athena.list_work_groups()["WorkGroups"]
            if workgroup["Name"] not in {item["Name"] for item in existing}:
                clients.athena.create_work_group(
                    Name=workgroup["Name"],
                    Description=workgroup.get("Description", ""),
                    Configuration=workgroup.get("WorkGroupConfiguration", {}),
                )


def custom_resources(stack: DeployedStack, names: Mapping[str, Any]) -> list[CustomResource]:
    """The stack's ``Custom::`` resources, with their properties resolved as CloudFormation
    resolves them before it invokes the function their ``ServiceToken`` names."""
    resources = []
    for logical_id, resource in stack.template["Resources"].items():
        if not resource["Type"].startswith("Custom::"):
            continue
        properties = _substituted(resource["Properties"], names)
        (function_id,) = [
            function_id
            for function_id, configuration in stack.functions.items()
            if configuration["FunctionArn"] == properties["ServiceToken"]
        ]
        function = FunctionTarget.from_configuration(stack.functions[function_id])
        resources.append(CustomResource(logical_id, resource["Type"], properties, function))
    return resources


def _resolvable_names(clients: _Clients, stack: DeployedStack) -> dict[str, Any]:
    """What ``_substituted`` resolves: parameters (a Number as an int, as the APIs want it),
    pseudo parameters, physical ids, conditions (``Condition:<name>``), and the attributes the
    completed resources use (a KMS key's ARN, as ``ListKeys`` gives it; a function's ARN)."""
    account = stack.stack_id.split(":")[4]
    declared = stack.template.get("Parameters", {})
    names: dict[str, Any] = {
        name: int(value) if declared.get(name, {}).get("Type") == "Number" else value
        for name, value in stack.parameters.items()
    }
    names |= stack.physical_ids
    names |= {"AWS::Region": stack.region, "AWS::AccountId": account, "AWS::Partition": "aws"}
    arns = {key["KeyId"]: key["KeyArn"] for key in clients.kms.list_keys(Limit=1000)["Keys"]}
    for logical_id, resource in stack.template["Resources"].items():
        if resource["Type"] == "AWS::KMS::Key" and logical_id in stack.physical_ids:
            names[f"{logical_id}.Arn"] = arns[stack.physical_ids[logical_id]]
    for logical_id, configuration in stack.functions.items():
        names[f"{logical_id}.Arn"] = configuration["FunctionArn"]
    for condition in stack.template.get("Conditions", {}):
        names[f"Condition:{condition}"] = _condition(stack.template, condition, names)
    return names


def _condition(template: Mapping[str, Any], name: str, names: Mapping[str, Any]) -> bool:
    """The value of the template's condition ``name`` with the parameters in ``names``."""

    def value(expression: Any) -> Any:
        if not isinstance(expression, dict):
            return expression
        ((function, argument),) = expression.items()
        if function == "Ref":
            return names[argument]
        if function == "Condition":
            return _condition(template, argument, names)
        if function == "Fn::Join":
            separator, items = argument
            joined = value(items)
            return separator.join(joined.split(",") if isinstance(joined, str) else joined)
        operands = [value(item) for item in argument]
        if function == "Fn::Equals":
            return str(operands[0]) == str(operands[1])
        if function == "Fn::Not":
            return not operands[0]
        if function == "Fn::And":
            return all(operands)
        assert function == "Fn::Or", function
        return any(operands)

    return bool(value(template["Conditions"][name]))


def _substituted(value: Any, names: Mapping[str, Any]) -> Any:
    """``value`` with ``Ref``, ``Fn::GetAtt``, ``Fn::Sub`` and ``Fn::If`` resolved from
    ``names`` (parameters, pseudo parameters, physical ids, conditions, the attributes looked
    up): all the catalogue's and the custom resources' definitions use. ``AWS::NoValue``
    removes the property or item, as in CloudFormation."""
    if isinstance(value, list):
        items = [_substituted(item, names) for item in value]
        return [item for item in items if item is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if value == {"Ref": "AWS::NoValue"}:
        return _NO_VALUE
    if set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        return _substituted(when_true if names[f"Condition:{condition}"] else when_false, names)
    if set(value) == {"Ref"}:
        return names[value["Ref"]]
    if set(value) == {"Fn::GetAtt"}:
        return names[".".join(value["Fn::GetAtt"])]
    if set(value) == {"Fn::Sub"}:
        text = value["Fn::Sub"]
        for name, replacement in names.items():
            text = text.replace("${" + name + "}", str(replacement))
        return text.replace("${!", "${")
    resolved = {key: _substituted(item, names) for key, item in value.items()}
    return {key: item for key, item in resolved.items() if item is not _NO_VALUE}


class _Clients:
    def __init__(self, endpoint_url: str, region: str) -> None:
        target = local_target(endpoint_url, region)
        self.s3 = bootstrap.aws_client(target, "s3", _CLIENT_CONFIG)
        self.cloudformation = bootstrap.aws_client(target, "cloudformation", _CLIENT_CONFIG)
        self.lambda_ = bootstrap.aws_client(target, "lambda", _CLIENT_CONFIG)
        self.glue = bootstrap.aws_client(target, "glue", _CLIENT_CONFIG)
        self.athena = bootstrap.aws_client(target, "athena", _CLIENT_CONFIG)
        self.kms = bootstrap.aws_client(target, "kms", _CLIENT_CONFIG)


def _wait_for_stack(cloudformation: Any, stack_id: str) -> None:
    waiter = cloudformation.get_waiter("stack_create_complete")
    try:
        waiter.wait(StackName=stack_id, WaiterConfig={"Delay": 1, "MaxAttempts": STACK_WAIT_S})
    except WaiterError as exc:
        events = cloudformation.describe_stack_events(StackName=stack_id)["StackEvents"]
        failed = [
            f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
            for event in events
            if event["ResourceStatus"].endswith("FAILED")
        ]
        raise DeployError(f"stack {stack_id} did not complete: {failed or exc}", events) from exc
    status = cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
    assert status in STACK_READY_STATUSES, status


def _stack_resources(cloudformation: Any, stack_id: str) -> Iterator[dict[str, Any]]:
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_id):
        yield from page["StackResourceSummaries"]


def _functions(
    lambda_client: Any, processed: Mapping[str, Any], physical_ids: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    return {
        logical_id: _without_metadata(
            lambda_client.get_function_configuration(FunctionName=physical_ids[logical_id])
        )
        for logical_id, resource in processed["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function" and logical_id in physical_ids
    }


def _event_source_mappings(
    lambda_client: Any, processed: Mapping[str, Any], physical_ids: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    return {
        logical_id: _without_metadata(
            lambda_client.get_event_source_mapping(UUID=physical_ids[logical_id])
        )
        for logical_id, resource in processed["Resources"].items()
        if resource["Type"] == "AWS::Lambda::EventSourceMapping" and logical_id in physical_ids
    }


def _without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
