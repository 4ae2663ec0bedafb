"""The named reports: declared parameters, typed binding, and SQL that stays in the subset both
Athena (Trino) and DuckDB run."""

from __future__ import annotations

import re

import pytest

from archive.reports import (
    REPORTS,
    ParameterKind,
    named_queries,
    parse_arguments,
    report_named,
)
from ledger.domain.errors import LimitExceededError, PanDetectedError, ValidationError

REQUIRED = {
    "agent_actions",
    "payments_above_threshold",
    "refund_ratio_by_merchant",
    "captures_exceeding_authorization",
    "events_per_day",
    "payment_history",
    "declined_risk_assessments",
    "stuck_authorized",
}
# Spellings DuckDB accepts and Athena (Trino) refuses, or the reverse.
NOT_PORTABLE = [
    r"::",
    r"\bjson_extract_string\b",
    r"\bjson_extract_path",
    r"->>",
    r"\bstrftime\b",
    r"\bstrptime\b",
    r"\bdate_format\b",
    r"\bQUALIFY\b",
    r"\bEXCLUDE\b",
    r"\bILIKE\b",
    r"\bFILTER\s*\(",
    r"\bLIST\b",
    r"\bSTRUCT\b",
    r"\bINTERVAL\b",
    r'"',
    r"\bLIMIT\s+\?",
    r"\$\d",
    r"\bGROUP BY ALL\b",
]


def test_the_required_reports_exist_with_unique_names() -> None:
    names = [report.name for report in REPORTS]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED


@pytest.mark.parametrize("report", REPORTS, ids=lambda report: report.name)
def test_each_placeholder_is_a_declared_parameter(report) -> None:  # type: ignore[no-untyped-def]
    assert report.sql.count("?") == len(report.placeholders)
    assert set(report.placeholders) == {parameter.name for parameter in report.parameters}
    assert len(report.description) <= 1024  # Athena's limit for a named query
    assert len(report.name) <= 128


@pytest.mark.parametrize("report", REPORTS, ids=lambda report: report.name)
def test_the_sql_stays_in_the_common_subset(report) -> None:  # type: ignore[no-untyped-def]
    for pattern in NOT_PORTABLE:
        assert not re.search(pattern, report.sql, flags=re.IGNORECASE), (pattern, report.name)
    assert re.search(r"\bFROM events\b", report.sql)
    if any(p.kind is ParameterKind.DAY for p in report.parameters):
        # A period is read through the partition columns, so both engines prune.
        assert "year || '-' || month || '-' || day BETWEEN ? AND ?" in report.sql


def test_named_queries_are_the_reports() -> None:
    assert named_queries() == [(r.name, r.description, r.sql) for r in REPORTS]


def test_binding_orders_and_types_the_values() -> None:
    report = report_named("payments_above_threshold")
    values = report.bind(
        {
            "currency": "EUR",
            "amount_minor": "5000",
            "start_day": "2026-11-01",
            "end_day": "2026-11-30",
        }
    )
    assert values == ["2026-11-01", "2026-11-30", "EUR", 5000]
    as_of = report_named("stuck_authorized").bind({"as_of": "2026-12-01T01:00+01:00"})
    assert as_of == ["2026-12-01T00:00:00.000000Z"]


@pytest.mark.parametrize(
    ("name", "arguments", "error", "message"),
    [
        ("payment_history", {}, ValidationError, "needs payment_id"),
        ("payment_history", {"payment_id": "p", "x": "1"}, ValidationError, "no parameter x"),
        ("payment_history", {"payment_id": "a b"}, ValidationError, "payment_id must be"),
        ("payment_history", {"payment_id": "4111111111111111"}, PanDetectedError, "card"),
        ("payment_history", {"payment_id": "p" * 65}, LimitExceededError, "longer"),
        (
            "events_per_day",
            {"start_day": "2026-13-01", "end_day": "2026-12-01"},
            ValidationError,
            "not a valid day",
        ),
        ("stuck_authorized", {"as_of": "2026-12-01"}, ValidationError, "timezone"),
        (
            "payments_above_threshold",
            {
                "currency": "XXQ",
                "amount_minor": "1",
                "start_day": "2026-11-01",
                "end_day": "2026-11-02",
            },
            ValidationError,
            "currency",
        ),
        (
            "payments_above_threshold",
            {
                "currency": "EUR",
                "amount_minor": "-5",
                "start_day": "2026-11-01",
                "end_day": "2026-11-02",
            },
            ValidationError,
            "amount_minor",
        ),
        (
            "payments_above_threshold",
            {
                "currency": "EUR",
                "amount_minor": str(2**63),
                "start_day": "2026-11-01",
                "end_day": "2026-11-02",
            },
            ValidationError,
            "amount_minor",
        ),
    ],
)
def test_bad_parameters_are_typed_errors(
    name: str, arguments: dict[str, str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        report_named(name).bind(arguments)


def test_unknown_report_and_malformed_pairs_are_refused() -> None:
    with pytest.raises(ValidationError, match="no report named"):
        report_named("everything")
    assert parse_arguments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValidationError, match="NAME=VALUE"):
        parse_arguments(["novalue"])
    with pytest.raises(ValidationError, match="twice"):
        parse_arguments(["a=1", "a=2"])
