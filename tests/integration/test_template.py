"""template.yaml is the single source of truth, checked the ways a deployment would find it wrong:

- cfn-lint finds nothing, checkov fails nothing (every skip in the template is one checkov made);
- the SAM transform (samtranslator, offline) accepts it for AWS and for the local stack;
- every function's handler starts with exactly the environment the template gives it, for each
  way of giving it a database, and every variable the composition root reads is set somewhere;
- the choices the issue pins down (append-only events, Kinesis destination, event source
  mappings, lifecycle, Glue columns, cost tags, outputs) are what the template says.

Creating the stack on moto's CloudFormation is tests/integration/test_deploy.py.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from archive.reports import named_queries
from archive.schema import glue_columns
from devstack.deploy import point_code_at, transform
from devstack.template import TEMPLATE_PATH, load_template

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = {
    logical_id: resource
    for logical_id, resource in RESOURCES.items()
    if resource["Type"] == "AWS::Serverless::Function"
}
REPO_ROOT = Path(__file__).resolve().parents[2]
IMPORT_TIMEOUT_S = 60
CHECKOV_TIMEOUT_S = 300
CHECKOV = REPO_ROOT / ".cache" / "venvs" / "checkov" / "bin" / "checkov"
# The Makefile's `test` target sets it: there checkov must run, not be skipped.
REQUIRE_CHECKOV = os.environ.get("PAYLEDGER_REQUIRE_CHECKOV") == "1"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:payledger-db"

# Each way the functions can be given PostgreSQL (parameter values; the rest are defaults).
DATABASE_SCENARIOS: dict[str, dict[str, str]] = {
    "local-stack": {"Target": "local"},
    "existing-secret": {"DatabaseSecretArn": SECRET_ARN},
    "existing-proxy": {
        "DatabaseProxyEndpoint": "proxy.proxy-abc.us-east-1.rds.amazonaws.com",
        "DatabaseProxyResourceId": "prx-0123456789abcdef0",
    },
    "created-database": {},
}
# The handler of every function, and the variables each must get besides Powertools' (the
# contracts the function code is written against; DATABASE_* when a database is configured).
EXPECTED_FUNCTIONS = {
    "ApiFunction": ("handlers.api.handler", {"EVENTS_TABLE", "PAYMENT_STATE_TABLE"}),
    "ProjectFunction": (
        "handlers.project.handler",
        {"EVENTS_TABLE", "PAYMENT_STATE_TABLE", "DATABASE_SCHEMA"},
    ),
    "ArchiveFunction": ("handlers.archive.handler", {"ARCHIVE_BUCKET"}),
    "AnalyticsFunction": ("handlers.analytics.handler", {"DATABASE_SCHEMA"}),
    "CompactFunction": ("handlers.compact.handler", {"ARCHIVE_BUCKET"}),
    "MigrateFunction": ("handlers.migrate.handler", {"DATABASE_SCHEMA"}),
    "DigestFunction": (
        "handlers.digest.handler",
        {"EVENTS_TABLE", "PAYMENT_STATE_TABLE", "DIGEST_BUCKET"},
    ),
}
DATABASE_FUNCTIONS = {"ProjectFunction", "AnalyticsFunction", "MigrateFunction"}
# The composition root's variables no function reads, so no template sets them: the local
# database (local runs, tests), where the auditor's CLI sends Athena queries (or --stack), and
# an endpoint, which means "not the local stack" to the CLI.
LOCAL_ONLY_VARIABLES = {
    "PAYLEDGER_DATABASE_URL",
    "GLUE_DATABASE",
    "ATHENA_WORKGROUP",
    "AWS_ENDPOINT_URL",
}


# ── Linters ───────────────────────────────────────────────────────────────────────────────────


def test_cfn_lint_finds_nothing() -> None:
    matches = lint_file(TEMPLATE_PATH, config=ManualArgs(regions=["us-east-1"]))
    assert [str(match) for match in matches] == []


def _checkov_report() -> dict[str, Any]:
    if not CHECKOV.exists():
        message = f"{CHECKOV} is missing: `make checkov-env` creates it"
        if REQUIRE_CHECKOV:
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [
            str(CHECKOV),
            *("--file", str(TEMPLATE_PATH), "--framework", "cloudformation"),
            *("--skip-download", "--output", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=CHECKOV_TIMEOUT_S,
        check=False,
        # Prisma Cloud's guideline lookup is the only network call; --skip-download stops it.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    return _checkov_report()


def test_checkov_fails_no_check(checkov_report: dict[str, Any]) -> None:
    failed = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for check in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov_report["summary"]["parsing_errors"] == 0
    assert checkov_report["summary"]["passed"] > 100


def test_every_checkov_skip_is_used_and_explained(checkov_report: dict[str, Any]) -> None:
    """A skip checkov never needed is dead text; a skip without a reason hides one."""
    declared = set()
    for logical_id, resource in RESOURCES.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, (logical_id, skip)
            declared.add((skip["id"], logical_id))
    used = {
        (check["check_id"], check["resource"].split(".", 1)[1])
        for check in checkov_report["results"]["skipped_checks"]
    }
    assert declared == used


def test_the_contents_list_the_resource_sections_in_order() -> None:
    """The contents at the top are how a reader finds a feature: they name every banner."""
    lines = TEMPLATE_PATH.read_text(encoding="utf-8").splitlines()
    contents = [line.removeprefix("#   - ") for line in lines if line.startswith("#   - ")]
    rules = [index for index, line in enumerate(lines) if line.startswith("  # ====")]
    banners = [lines[index + 1].removeprefix("  # ") for index in rules[::2]]
    assert len(rules) == 2 * len(banners)
    assert contents == banners
    assert len(banners) > 10


# ── The SAM transform ─────────────────────────────────────────────────────────────────────────


def _processed(parameters: Mapping[str, str]) -> dict[str, Any]:
    return copy.deepcopy(_transformed(tuple(sorted(parameters.items()))))


@functools.cache
def _transformed(parameters: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    template = load_template()
    point_code_at(template, "artifacts", "code.zip")
    return transform(template, dict(parameters), region="us-east-1")


@pytest.mark.parametrize("target", ["aws", "local"])
def test_the_sam_transform_accepts_the_template(target: str) -> None:
    processed = _processed({"Target": target})
    types = {resource["Type"] for resource in processed["Resources"].values()}
    assert not {kind for kind in types if kind.startswith("AWS::Serverless::")}
    assert {
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
        "AWS::ApiGateway::RestApi",
        "AWS::Events::Rule",
    } <= types
    functions = [r for r in processed["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == len(EXPECTED_FUNCTIONS)


def test_every_post_route_requires_an_idempotency_key_at_the_gateway() -> None:
    api = _processed({})["Resources"]["PaymentsApi"]["Properties"]["Body"]
    posts = {path: item["post"] for path, item in api["paths"].items() if "post" in item}
    assert set(posts) == {
        "/payments",
        "/payments/{id}/risk-assessments",
        "/payments/{id}/authorization",
        "/payments/{id}/failure",
        "/payments/{id}/captures",
        "/payments/{id}/void",
        "/payments/{id}/refunds",
        "/payments/{id}/settlement",
        "/payments/{id}/expiry",
    }
    validators = api["x-amazon-apigateway-request-validators"]
    for path, method in posts.items():
        validator = validators[method["x-amazon-apigateway-request-validator"]]
        assert validator == {"validateRequestBody": False, "validateRequestParameters": True}
        headers = {p["name"] for p in method["parameters"] if p["in"] == "header" and p["required"]}
        assert headers == {"Idempotency-Key"}, path
        assert method["security"] == [{"AWS_IAM": []}], path


# ── Handlers and their environment ─────────────────────────────────────────────────────────────


def test_the_template_declares_every_function_with_its_handler() -> None:
    handlers = {
        logical_id: resource["Properties"]["Handler"] for logical_id, resource in FUNCTIONS.items()
    }
    assert handlers == {logical_id: spec[0] for logical_id, spec in EXPECTED_FUNCTIONS.items()}


def _conditions(parameters: Mapping[str, str]) -> dict[str, bool]:
    values = {
        name: str(spec.get("Default", "")) for name, spec in TEMPLATE["Parameters"].items()
    } | dict(parameters)
    definitions = TEMPLATE["Conditions"]
    resolved: dict[str, bool] = {}

    def value(expression: Any) -> Any:
        if not isinstance(expression, dict):
            return expression
        ((function, argument),) = expression.items()
        if function == "Ref":
            return values[argument]
        if function == "Fn::Join":
            separator, items = argument
            joined = value(items)
            return separator.join(joined.split(",") if isinstance(joined, str) else joined)
        if function == "Condition":
            return condition(argument)
        operands = [value(item) for item in argument]
        results = {
            "Fn::Equals": lambda: operands[0] == operands[1],
            "Fn::Not": lambda: not operands[0],
            "Fn::And": lambda: all(operands),
            "Fn::Or": lambda: any(operands),
        }
        return results[function]()

    def condition(name: str) -> bool:
        if name not in resolved:
            resolved[name] = bool(value(definitions[name]))
        return resolved[name]

    return {name: condition(name) for name in definitions}


def _environment(logical_id: str, parameters: Mapping[str, str]) -> dict[str, str]:
    """The variables the template sets for ``logical_id`` in a stack with ``parameters``;
    references to resources become placeholders, ``Fn::If`` is resolved."""
    conditions = _conditions(parameters)
    values = {
        name: str(spec.get("Default", "")) for name, spec in TEMPLATE["Parameters"].items()
    } | dict(parameters)
    variables = dict(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    variables.update(
        FUNCTIONS[logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    )

    def resolve(value: Any) -> str | None:
        if isinstance(value, str | int):
            return str(value)
        ((function, argument),) = value.items()
        if function == "Fn::If":
            name, when_true, when_false = argument
            return resolve(when_true if conditions[name] else when_false)
        if function == "Ref" and argument == "AWS::NoValue":
            return None
        if function == "Ref" and argument in values:
            return values[argument]
        return f"placeholder-for-{json.dumps(value, sort_keys=True)}"

    return {name: text for name, value in variables.items() if (text := resolve(value)) is not None}


def test_functions_get_the_variables_their_code_is_written_against() -> None:
    for scenario, parameters in DATABASE_SCENARIOS.items():
        for logical_id, (_, required) in EXPECTED_FUNCTIONS.items():
            environment = _environment(logical_id, parameters)
            own = set(environment) - {
                "POWERTOOLS_SERVICE_NAME",
                "POWERTOOLS_METRICS_NAMESPACE",
                "POWERTOOLS_LOG_LEVEL",
            }
            database = {name for name in own if name.startswith("DATABASE_")} - {"DATABASE_SCHEMA"}
            assert required <= own, (scenario, logical_id)
            assert own - database == required, (scenario, logical_id)
            if logical_id not in DATABASE_FUNCTIONS or scenario == "local-stack":
                assert database == set(), (scenario, logical_id)
            elif scenario == "existing-secret":
                assert database == {"DATABASE_SECRET_ARN"}
            else:
                assert database == {
                    "DATABASE_HOST",
                    "DATABASE_PORT",
                    "DATABASE_USER",
                    "DATABASE_NAME",
                }, (scenario, logical_id)


def test_every_variable_the_composition_root_reads_is_set_by_the_template() -> None:
    import handlers.bootstrap as bootstrap

    read = {
        getattr(bootstrap, name)
        for name in dir(bootstrap)
        if name.endswith("_VARIABLE") and isinstance(getattr(bootstrap, name), str)
    }
    set_somewhere = {
        name
        for parameters in DATABASE_SCENARIOS.values()
        for logical_id in FUNCTIONS
        for name in _environment(logical_id, parameters)
    }
    assert read - LOCAL_ONLY_VARIABLES <= set_somewhere
    assert read >= LOCAL_ONLY_VARIABLES


def _startup_cases() -> list[Any]:
    """One case per function and distinct environment (the database scenarios differ only for
    the functions that project into PostgreSQL), so no import runs twice for nothing."""
    cases, seen = [], set()
    for logical_id in sorted(EXPECTED_FUNCTIONS):
        for scenario, parameters in DATABASE_SCENARIOS.items():
            environment = _environment(logical_id, parameters)
            key = (logical_id, frozenset(environment.items()))
            if key not in seen:
                seen.add(key)
                cases.append(pytest.param(logical_id, environment, id=f"{logical_id}-{scenario}"))
    return cases


@pytest.mark.parametrize(("logical_id", "template_environment"), _startup_cases())
def test_every_handler_starts_with_the_environment_the_template_gives_it(
    logical_id: str, template_environment: dict[str, str]
) -> None:
    module, _, attribute = EXPECTED_FUNCTIONS[logical_id][0].rpartition(".")
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "1",
        **template_environment,
    }
    script = (
        f"import importlib; handler = getattr(importlib.import_module({module!r}), {attribute!r});"
        " assert callable(handler)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


# ── What the issue pins down ──────────────────────────────────────────────────────────────────


def test_events_are_append_only_for_everyone() -> None:
    events = RESOURCES["EventsTable"]["Properties"]
    (statement,) = events["ResourcePolicy"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert {"dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= set(statement["Action"])
    assert events["DeletionProtectionEnabled"] is True
    assert events["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert events["SSESpecification"]["SSEType"] == "KMS"
    assert events["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert events["KinesisStreamSpecification"]["StreamArn"] == {
        "Fn::GetAtt": ["EventsKinesisStream", "Arn"]
    }
    assert events["BillingMode"] == "PAY_PER_REQUEST"
    for logical_id, resource in RESOURCES.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for entry in policy["PolicyDocument"]["Statement"]:
                granted = entry.get("Action", []) if entry.get("Effect") == "Allow" else []
                actions = {granted} if isinstance(granted, str) else set(granted)
                assert not actions & {"dynamodb:UpdateItem", "dynamodb:DeleteItem"}, logical_id


def _mapping(logical_id: str) -> dict[str, Any]:
    events = FUNCTIONS[logical_id]["Properties"]["Events"]
    (source,) = (event for event in events.values() if event["Type"] in ("DynamoDB", "Kinesis"))
    properties: dict[str, Any] = source["Properties"]
    return properties


@pytest.mark.parametrize("logical_id", ["ProjectFunction", "ArchiveFunction", "AnalyticsFunction"])
def test_stream_consumers_fail_partially_bisect_retry_boundedly_and_dead_letter(
    logical_id: str,
) -> None:
    mapping = _mapping(logical_id)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10
    assert 60 <= mapping["MaximumRecordAgeInSeconds"] <= 604800
    assert mapping["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    assert "BatchSize" in mapping
    assert "MaximumBatchingWindowInSeconds" in mapping


def test_kinesis_consumers_read_the_events_kinesis_stream() -> None:
    archive, analytics = _mapping("ArchiveFunction"), _mapping("AnalyticsFunction")
    for mapping in (archive, analytics):
        assert mapping["Stream"] == {"Fn::GetAtt": ["EventsKinesisStream", "Arn"]}
    assert analytics["TumblingWindowInSeconds"] == 60
    assert "TumblingWindowInSeconds" not in archive
    assert 5000 <= archive["BatchSize"] <= 10000
    assert 60 <= archive["MaximumBatchingWindowInSeconds"] <= 300
    assert FUNCTIONS["ArchiveFunction"]["Properties"]["MemorySize"] >= 1769


def test_no_function_relies_on_a_layer() -> None:
    # pyarrow and DuckDB ship in the archive and compaction packages at uv.lock's pins (the
    # archive's column-wise decoder is tested against exactly that pyarrow): a managed layer
    # would bring another version, and with it the 250 MB limit would not hold.
    layered = [name for name, function in FUNCTIONS.items() if "Layers" in function["Properties"]]
    assert layered == []


def test_scheduled_jobs_are_eventbridge_rules() -> None:
    schedules = {
        logical_id: event["Properties"]["Schedule"]
        for logical_id, function in FUNCTIONS.items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "Schedule"
    }
    assert schedules == {"CompactFunction": "cron(15 1 * * ? *)", "DigestFunction": "rate(1 hour)"}
    assert not [r for r in RESOURCES.values() if r["Type"] == "AWS::Scheduler::Schedule"]


def test_the_glue_table_declares_the_archive_columns_and_projects_partitions() -> None:
    table = RESOURCES["ArchiveEventsTable"]["Properties"]["TableInput"]
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    partitions = [(key["Name"], key["Type"]) for key in table["PartitionKeys"]]
    assert columns + partitions == glue_columns()
    assert partitions == [("year", "string"), ("month", "string"), ("day", "string")]
    parameters = table["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.month.digits"] == parameters["projection.day.digits"] == "2"
    assert parameters["storage.location.template"] == {
        "Fn::Sub": "s3://${ArchiveBucket}/events/year=${!year}/month=${!month}/day=${!day}"
    }
    serde = table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
    assert serde.endswith("ParquetHiveSerDe")


def test_the_named_queries_are_the_archive_reports() -> None:
    deployed = [
        (
            resource["Properties"]["Name"],
            resource["Properties"]["Description"],
            resource["Properties"]["QueryString"],
        )
        for resource in RESOURCES.values()
        if resource["Type"] == "AWS::Athena::NamedQuery"
    ]
    assert deployed == [
        (name, description, sql.rstrip("\n") + "\n") for name, description, sql in named_queries()
    ]
    for resource in RESOURCES.values():
        if resource["Type"] == "AWS::Athena::NamedQuery":
            assert resource["Properties"]["Database"] == {"Ref": "GlueDatabase"}
            assert resource["Properties"]["WorkGroup"] == {"Ref": "AthenaWorkGroup"}


def test_the_archive_moves_to_cheaper_storage_and_is_kept_seven_years() -> None:
    rules = RESOURCES["ArchiveBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (events,) = (rule for rule in rules if rule.get("Prefix") == "events/")
    assert [(t["StorageClass"], t["TransitionInDays"]) for t in events["Transitions"]] == [
        ("STANDARD_IA", 90),
        ("GLACIER_IR", 730),
    ]
    assert events["ExpirationInDays"] == 7 * 365 + 2  # seven years, leap days included
    workgroup = RESOURCES["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert workgroup["EnforceWorkGroupConfiguration"] is True
    assert workgroup["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoff"}


def test_digests_are_locked_in_compliance_mode() -> None:
    digest = RESOURCES["DigestBucket"]["Properties"]
    assert digest["ObjectLockEnabled"] is True
    assert digest["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"


def test_an_alarm_fires_on_an_approval_rate_drop() -> None:
    alarm = RESOURCES["ApprovalRateAlarm"]["Properties"]
    (rate,) = (metric for metric in alarm["Metrics"] if metric["ReturnData"])
    assert rate["Expression"] == "100 * authorized / (authorized + declined)"
    counts = {
        metric["Id"]: metric["MetricStat"] for metric in alarm["Metrics"] if "MetricStat" in metric
    }
    assert {name: stat["Metric"]["MetricName"] for name, stat in counts.items()} == {
        "authorized": "PaymentsAuthorized",
        "declined": "PaymentsDeclined",
    }
    for stat in counts.values():
        assert stat["Metric"]["Namespace"] == "Payledger"
        assert stat["Stat"] == "Sum"  # one datapoint per shard: summed, never averaged
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_an_alarm_fires_when_the_archive_falls_back_to_record_by_record() -> None:
    alarm = RESOURCES["ArchiveRecordByRecordAlarm"]["Properties"]
    environment = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert alarm["MetricName"] == "BatchesDecodedRecordByRecord"  # handlers/archive.py's count
    assert alarm["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [
        {"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}
    ]
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 0)
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_every_dead_letter_queue_has_a_depth_alarm() -> None:
    queues = {
        logical_id
        for logical_id, resource in RESOURCES.items()
        if resource["Type"] == "AWS::SQS::Queue"
    }
    watched = {
        resource["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for resource in RESOURCES.values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        and resource["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert queues == watched


# SAM (1.115) does not pass a function's tags on to the event source mappings and rules it
# generates; neither is billed, and the stack tags samconfig.toml sets reach them in AWS.
UNTAGGED_SAM_TYPES = {"AWS::Lambda::EventSourceMapping", "AWS::Events::Rule"}


def test_every_taggable_resource_carries_the_cost_allocation_tags() -> None:
    processed = _processed({})
    untagged = []
    for logical_id, resource in processed["Resources"].items():
        if resource["Type"] in UNTAGGED_SAM_TYPES:
            continue
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"])
        if "Tags" not in schema.schema["properties"]:
            continue
        tags = resource.get("Properties", {}).get("Tags", [])
        keys = set(tags) if isinstance(tags, dict) else {tag["Key"] for tag in tags}
        if not {"project", "stage"} <= keys:
            untagged.append(logical_id)
    assert sorted(untagged) == []


def test_the_outputs_name_what_the_cli_and_the_local_runtime_read() -> None:
    assert {
        "EventsTableName",
        "PaymentStateTableName",
        "EventsStreamName",
        "ArchiveBucketName",
        "GlueDatabaseName",
        "AthenaWorkGroupName",
        "DigestBucketName",
        "ProjectDeadLetterQueueUrl",
        "ArchiveDeadLetterQueueUrl",
        "AnalyticsDeadLetterQueueUrl",
        "JobsDeadLetterQueueUrl",
        "ApiUrl",
        "AlarmTopicArn",
    } <= set(TEMPLATE["Outputs"])


# ── Migrations and agent policies ─────────────────────────────────────────────────────────────


def test_migrations_run_in_the_database_network_on_every_deploy() -> None:
    migrations = RESOURCES["DatabaseMigrations"]
    assert migrations["Type"].startswith(
        "Custom::"
    )  # moto skips AWS::CloudFormation::CustomResource
    assert "Condition" not in migrations
    assert migrations["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    function = FUNCTIONS["MigrateFunction"]["Properties"]
    assert function["VpcConfig"] == FUNCTIONS["ProjectFunction"]["Properties"]["VpcConfig"]
    assert function["Timeout"] <= 900
    # The answer to CloudFormation leaves the private network through the S3 gateway endpoint.
    endpoint = RESOURCES["S3Endpoint"]["Properties"]
    assert endpoint["RouteTableIds"] == RESOURCES["DynamoDbEndpoint"]["Properties"]["RouteTableIds"]
    (statement,) = endpoint["PolicyDocument"]["Statement"]
    assert statement["Action"] == "s3:PutObject"
    assert "cloudformation-custom-resource-response-" in statement["Resource"]["Fn::Sub"]


CAPABILITY_POLICIES = ("ReadOnlyPolicy", "RiskAgentPolicy", "PaymentsAgentPolicy", "OperatorPolicy")
_API_ARN_PREFIX = (
    "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${PaymentsApi}/${Stage}/"
)


def _granted(policy: str) -> set[tuple[str, str]]:
    """(method, path with ``*`` for each parameter) of every route ``policy`` grants."""
    routes = set()
    resource = RESOURCES[policy]
    assert resource["Type"] == "AWS::IAM::ManagedPolicy"
    for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
        assert (statement["Effect"], statement["Action"]) == ("Allow", "execute-api:Invoke")
        for arn in statement["Resource"]:
            text = arn["Fn::Sub"]
            assert text.startswith(_API_ARN_PREFIX), text
            method, path = text.removeprefix(_API_ARN_PREFIX).split("/", 1)
            routes.add((method, "/" + path))
    return routes


def _api_routes(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    """The routes the API function serves (Powertools' route table), parameters as ``*``."""
    monkeypatch.setenv("EVENTS_TABLE", "unused")  # the API's wiring reads it on import
    import handlers.api.routes  # noqa: F401 - registers the routes on the resolver
    from handlers.api.resolver import app

    return {
        (route.method, re.sub(r"\{[^}]+\}", "*", route.openapi_path))
        for route in [*app._static_routes, *app._dynamic_routes]
    }


def test_each_capability_policy_grants_exactly_its_routes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    every = _granted("OperatorPolicy")
    assert _api_routes(monkeypatch) == every, "OperatorPolicy grants exactly the API's routes"
    reads = {route for route in every if route[0] == "GET"}
    risk = {("POST", "/payments/*/risk-assessments")}
    refunds = {("POST", "/payments/*/refunds")}
    assert risk | refunds <= every
    assert _granted("ReadOnlyPolicy") == reads
    assert _granted("RiskAgentPolicy") == reads | risk
    assert _granted("PaymentsAgentPolicy") == every - risk - refunds
    assert ("GET", "/merchants/*/payments") in reads
    for policy in CAPABILITY_POLICIES:
        assert TEMPLATE["Outputs"][f"{policy}Arn"]["Value"] == {"Ref": policy}
