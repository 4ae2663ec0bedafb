"""The auditors' named reports: SQL that runs unchanged on Athena (Trino) and DuckDB.

Each report has a name, a description, its SQL over the table ``events`` and its parameters.
Values are never formatted into the SQL: each ``?`` is bound by the engine (DuckDB's prepared
parameters, Athena's execution parameters), in the order ``placeholders`` lists them.

Rules every report follows, so the two engines agree and stay cheap:
- Only what both engines have: standard SQL, ``||``, ``CASE``, ``nullif``, ``round``, ``CAST``,
  ``count(DISTINCT …)``, and ``json_extract_scalar`` (Athena's; the DuckDB session defines it).
- Counts and sums are right even before compaction removed duplicate copies: rows are first
  reduced with ``DISTINCT`` over ``event_id`` and the columns used.
- A report over a period filters on the partition columns
  (``year || '-' || month || '-' || day BETWEEN ? AND ?``, days inclusive), so both engines read
  only those days' objects.

The template deploys each report as an Athena named query (``named_queries``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from archive.layout import parse_day
from ledger.domain.errors import ValidationError
from ledger.domain.limits import AMOUNT_MINOR_MAX
from ledger.domain.money import currency_exponent
from ledger.domain.timestamps import format_timestamp, parse_timestamp
from ledger.domain.validation import check_id

_PERIOD = "year || '-' || month || '-' || day BETWEEN ? AND ?"
_PARAMETER = re.compile(r"^([a-z_]+)=(.*)$", re.DOTALL)


class ParameterKind(StrEnum):
    ID = "id"  # an opaque id (payment, agent, merchant): letters, digits, _ . : -
    DAY = "day"  # YYYY-MM-DD, a UTC day
    TIMESTAMP = "timestamp"  # ISO-8601 with a zone; compared as the canonical event text
    AMOUNT_MINOR = "amount_minor"  # an integer amount in minor units, 0..2^63-1
    CURRENCY = "currency"  # an ISO 4217 code


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    kind: ParameterKind
    description: str

    def parse(self, text: str) -> str | int:
        """The value to bind for ``text``, or ``ValidationError`` saying what is expected."""
        if self.kind is ParameterKind.ID:
            return check_id(text, self.name)
        if self.kind is ParameterKind.DAY:
            return parse_day(text).isoformat()
        if self.kind is ParameterKind.TIMESTAMP:
            return format_timestamp(parse_timestamp(text))
        if self.kind is ParameterKind.CURRENCY:
            currency_exponent(text)
            return text
        if not re.fullmatch(r"[0-9]{1,19}", text) or int(text) > AMOUNT_MINOR_MAX:
            raise ValidationError(f"{self.name} must be an integer amount in minor units")
        return int(text)


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    description: str
    sql: str
    parameters: tuple[Parameter, ...]
    placeholders: tuple[str, ...]  # the parameter bound to each ``?``, in order

    def bind(self, arguments: Mapping[str, str]) -> list[str | int]:
        """The values for the placeholders, from ``name -> text``; ``ValidationError`` for an
        unknown, missing or ill-typed parameter."""
        declared = {parameter.name: parameter for parameter in self.parameters}
        unknown = sorted(set(arguments) - set(declared))
        if unknown:
            raise ValidationError(
                f"report {self.name} has no parameter {', '.join(unknown)}"
                f" (it takes: {_names(self.parameters)})"
            )
        missing = [name for name in declared if name not in arguments]
        if missing:
            needs = ", ".join(missing)
            raise ValidationError(
                f"report {self.name} needs {needs} (it takes: {_names(self.parameters)})"
            )
        values = {name: declared[name].parse(text) for name, text in arguments.items()}
        return [values[name] for name in self.placeholders]


def _names(parameters: Sequence[Parameter]) -> str:
    return ", ".join(f"{parameter.name} ({parameter.kind})" for parameter in parameters) or "none"


def parse_arguments(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", …]`` (``--param k=v``) as a mapping; ``ValidationError`` if malformed or
    repeated."""
    arguments: dict[str, str] = {}
    for pair in pairs:
        match = _PARAMETER.match(pair)
        if match is None:
            raise ValidationError(f"--param takes NAME=VALUE (got {pair[:40]!r})")
        name, value = match.groups()
        if name in arguments:
            raise ValidationError(f"parameter {name} is given twice")
        arguments[name] = value
    return arguments


_START = Parameter("start_day", ParameterKind.DAY, "first day of the period (UTC, inclusive)")
_END = Parameter("end_day", ParameterKind.DAY, "last day of the period (UTC, inclusive)")

REPORTS: tuple[Report, ...] = (
    Report(
        name="agent_actions",
        description="Every action of one agent (or any actor id) in a period, in time order,"
        " with its decision and reason where it made one.",
        sql=f"""SELECT DISTINCT
    recorded_at, event_id, payment_id, version, event_type, actor_kind, actor_id,
    actor_model, actor_version, merchant_id, correlation_id, causation_id,
    json_extract_scalar(payload, '$.decision') AS decision,
    json_extract_scalar(payload, '$.reason') AS reason
FROM events
WHERE {_PERIOD}
  AND actor_id = ?
ORDER BY recorded_at, event_id""",
        parameters=(
            Parameter("actor_id", ParameterKind.ID, "the agent's id (actor.id)"),
            _START,
            _END,
        ),
        placeholders=("start_day", "end_day", "actor_id"),
    ),
    Report(
        name="payments_above_threshold",
        description="Payments initiated in a period for more than an amount (minor units) in"
        " one currency, largest first.",
        sql=f"""SELECT DISTINCT
    payment_id, recorded_at AS initiated_at, merchant_id, amount_minor, currency, event_id
FROM events
WHERE {_PERIOD}
  AND event_type = 'PaymentInitiated'
  AND currency = ?
  AND amount_minor > ?
ORDER BY amount_minor DESC, payment_id""",
        parameters=(
            Parameter("currency", ParameterKind.CURRENCY, "ISO 4217 currency, e.g. EUR"),
            Parameter("amount_minor", ParameterKind.AMOUNT_MINOR, "threshold in minor units"),
            _START,
            _END,
        ),
        placeholders=("start_day", "end_day", "currency", "amount_minor"),
    ),
    Report(
        name="refund_ratio_by_merchant",
        description="Per merchant and currency over a period: amount captured, amount"
        " refunded, number of refunds and refunded / captured.",
        sql=f"""WITH moves AS (
    SELECT DISTINCT event_id, merchant_id, currency, event_type, amount_minor
    FROM events
    WHERE {_PERIOD}
      AND event_type IN ('PaymentCaptured', 'PaymentRefunded')
),
totals AS (
    SELECT
        merchant_id,
        currency,
        sum(CASE WHEN event_type = 'PaymentCaptured' THEN amount_minor ELSE 0 END)
            AS captured_minor,
        sum(CASE WHEN event_type = 'PaymentRefunded' THEN amount_minor ELSE 0 END)
            AS refunded_minor,
        sum(CASE WHEN event_type = 'PaymentRefunded' THEN 1 ELSE 0 END) AS refunds
    FROM moves
    GROUP BY merchant_id, currency
)
SELECT
    merchant_id, currency, captured_minor, refunded_minor, refunds,
    round(CAST(refunded_minor AS DOUBLE) / nullif(captured_minor, 0), 4) AS refund_ratio
FROM totals
ORDER BY refund_ratio DESC NULLS LAST, merchant_id, currency""",
        parameters=(_START, _END),
        placeholders=("start_day", "end_day"),
    ),
    Report(
        name="captures_exceeding_authorization",
        description="Payments whose captures add up to more than their authorization, over the"
        " whole archive. The ledger forbids it: this report must be empty.",
        sql="""WITH moves AS (
    SELECT DISTINCT event_id, payment_id, merchant_id, currency, event_type, amount_minor
    FROM events
    WHERE event_type IN ('PaymentAuthorized', 'PaymentCaptured')
),
totals AS (
    SELECT
        payment_id,
        merchant_id,
        currency,
        sum(CASE WHEN event_type = 'PaymentAuthorized' THEN amount_minor ELSE 0 END)
            AS authorized_minor,
        sum(CASE WHEN event_type = 'PaymentCaptured' THEN amount_minor ELSE 0 END)
            AS captured_minor
    FROM moves
    GROUP BY payment_id, merchant_id, currency
)
SELECT payment_id, merchant_id, currency, authorized_minor, captured_minor
FROM totals
WHERE captured_minor > authorized_minor
ORDER BY payment_id""",
        parameters=(),
        placeholders=(),
    ),
    Report(
        name="events_per_day",
        description="Events (distinct event ids), payments and stored rows per recorded day in a"
        " period, to reconcile with the events table; rows exceed events only before"
        " compaction.",
        sql=f"""SELECT
    year || '-' || month || '-' || day AS recorded_day,
    count(DISTINCT event_id) AS events,
    count(DISTINCT payment_id) AS payments,
    count(*) AS rows_stored
FROM events
WHERE {_PERIOD}
GROUP BY year, month, day
ORDER BY recorded_day""",
        parameters=(_START, _END),
        placeholders=("start_day", "end_day"),
    ),
    Report(
        name="payment_history",
        description="Every event of one payment in version order, with its hash chain.",
        sql="""SELECT DISTINCT
    version, event_id, event_type, schema_version, occurred_at, recorded_at, actor_kind,
    actor_id, actor_model, actor_version, correlation_id, causation_id, idempotency_key,
    amount_minor, currency, payload, prev_hash, hash
FROM events
WHERE payment_id = ?
ORDER BY version, event_id""",
        parameters=(Parameter("payment_id", ParameterKind.ID, "the payment's id"),),
        placeholders=("payment_id",),
    ),
    Report(
        name="declined_risk_assessments",
        description="Risk assessments that declined a payment in a period, with the score,"
        " the reason and who decided (agent or operator).",
        sql=f"""SELECT DISTINCT
    recorded_at, payment_id, merchant_id, actor_kind, actor_id, actor_model, actor_version,
    json_extract_scalar(payload, '$.score') AS score,
    json_extract_scalar(payload, '$.reason') AS reason,
    event_id
FROM events
WHERE {_PERIOD}
  AND event_type = 'RiskAssessed'
  AND json_extract_scalar(payload, '$.decision') = 'decline'
ORDER BY recorded_at, event_id""",
        parameters=(_START, _END),
        placeholders=("start_day", "end_day"),
    ),
    Report(
        name="stuck_authorized",
        description="Payments still authorized (nothing after the authorization) whose hold"
        " deadline passed before a moment: they should have been captured, voided or"
        " expired.",
        sql="""WITH latest AS (
    SELECT payment_id, max(version) AS version
    FROM events
    GROUP BY payment_id
)
SELECT DISTINCT
    e.payment_id, e.merchant_id, e.amount_minor, e.currency, e.recorded_at AS authorized_at,
    json_extract_scalar(e.payload, '$.hold_until') AS hold_until
FROM events AS e
JOIN latest ON e.payment_id = latest.payment_id AND e.version = latest.version
WHERE e.event_type = 'PaymentAuthorized'
  AND json_extract_scalar(e.payload, '$.hold_until') < ?
ORDER BY hold_until, e.payment_id""",
        parameters=(
            Parameter(
                "as_of", ParameterKind.TIMESTAMP, "the moment to judge at, e.g. 2026-12-01T00:00Z"
            ),
        ),
        placeholders=("as_of",),
    ),
)
REPORTS_BY_NAME: dict[str, Report] = {report.name: report for report in REPORTS}


def report_named(name: str) -> Report:
    report = REPORTS_BY_NAME.get(name)
    if report is None:
        raise ValidationError(f"no report named {name!r} (reports: {', '.join(REPORTS_BY_NAME)})")
    return report


def named_queries() -> list[tuple[str, str, str]]:
    """(name, description, SQL) of every report: what the template deploys as Athena named
    queries, in this order."""
    return [(report.name, report.description, report.sql) for report in REPORTS]
