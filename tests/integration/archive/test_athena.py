"""The Athena path, as far as it can run without AWS: awswrangler sends the report's SQL text
unchanged, with the workgroup, the Glue database and the values as execution parameters, to
moto's Athena over real HTTP, and the answer comes back as rows.

moto does not execute SQL (it returns the results queued through its API), so what Athena would
compute is not tested here; the DuckDB tests run the same SQL text on real data.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from archive.athena import AthenaAudit, sql_literal
from archive.reports import report_named
from cli import app
from handlers import bootstrap

DATABASE = "payledger_archive"


@pytest.fixture
def workgroup(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    name = f"auditors-{uuid.uuid4().hex[:8]}"
    _athena(moto_endpoint).create_work_group(
        Name=name,
        Configuration={
            "ManagedQueryResultsConfiguration": {"Enabled": True},
            "EnforceWorkGroupConfiguration": True,
            "BytesScannedCutoffPerQuery": 10 * 1024**3,
        },
    )
    return name


def _athena(endpoint: str) -> Any:
    return boto3.client("athena", endpoint_url=endpoint, region_name="us-east-1")


def _queue_result(endpoint: str, columns: list[tuple[str, str]], rows: list[list[str]]) -> None:
    header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
    body = {
        "results": [
            {
                "rows": [header, *({"Data": [{"VarCharValue": v} for v in row]} for row in rows)],
                "column_info": [
                    {"Name": name, "Label": name, "Type": kind, "Nullable": "NULLABLE"}
                    for name, kind in columns
                ],
            }
        ]
    }
    request = urllib.request.Request(  # noqa: S310 - the local moto server
        f"{endpoint}/moto-api/static/athena/query-results",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 201


def _last_execution(endpoint: str, workgroup: str) -> dict[str, Any]:
    client = _athena(endpoint)
    (execution_id,) = client.list_query_executions(WorkGroup=workgroup)["QueryExecutionIds"]
    return client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]  # type: ignore[no-any-return]


def test_a_report_is_sent_as_its_text_with_bound_parameters(
    moto_endpoint: str, workgroup: str
) -> None:
    report = report_named("agent_actions")
    values = report.bind(
        {"actor_id": "fraud-agent", "start_day": "2026-11-01", "end_day": "2026-11-30"}
    )
    _queue_result(moto_endpoint, [("event_id", "varchar"), ("version", "bigint")], [["e-1", "3"]])
    engine = AthenaAudit(boto3.session.Session(), DATABASE, workgroup)
    result = engine.run(report.sql, values)
    assert result.columns == ["event_id", "version"]
    assert result.rows == [("e-1", 3)]
    execution = _last_execution(moto_endpoint, workgroup)
    assert execution["Query"] == report.sql
    assert execution["QueryExecutionContext"]["Database"] == DATABASE
    assert execution["WorkGroup"] == workgroup
    assert execution["ExecutionParameters"] == ["'2026-11-01'", "'2026-11-30'", "'fraud-agent'"]


def test_the_cli_runs_a_report_on_athena(
    moto_endpoint: str, workgroup: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVE_BUCKET", "unused-by-athena")
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("ATHENA_WORKGROUP", workgroup)
    bootstrap.aws_session.cache_clear()
    _queue_result(moto_endpoint, [("recorded_day", "varchar"), ("events", "bigint")], [])
    arguments = [
        "audit", "report", "payments_above_threshold", "--engine", "athena", "--format", "json",
        "--param", "currency=EUR", "--param", "amount_minor=5000",
        "--param", "start_day=2026-11-01", "--param", "end_day=2026-11-02",
    ]  # fmt: skip
    done = CliRunner().invoke(app, arguments)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["rows"] == []
    execution = _last_execution(moto_endpoint, workgroup)
    assert execution["Query"] == report_named("payments_above_threshold").sql
    assert execution["ExecutionParameters"] == ["'2026-11-01'", "'2026-11-02'", "'EUR'", "5000"]


def test_parameters_are_literals_athena_parses_never_sql() -> None:
    assert sql_literal("o'brien") == "'o''brien'"
    assert sql_literal(42) == "42"
    with pytest.raises(TypeError):
        sql_literal(True)
