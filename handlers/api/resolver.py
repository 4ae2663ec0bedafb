"""The resolver every route and error handler of the API registers on, its logger, tracer and
metrics, and the JSON responses and per-request counts they share."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from handlers.api.parsing import parse_json
from handlers.observability import make_logger
from ledger.domain.errors import LedgerError
from ledger.domain.validation import check_id

CORRELATION_HEADER = "X-Correlation-Id"
REPLAYED_HEADER = "Idempotent-Replayed"
LOCATION_HEADER = "Location"
OPERATION = "operation"  # app.context key: the (kind, name) of the request's command or query

logger = make_logger()
tracer = Tracer()
metrics = Metrics()  # namespace from POWERTOOLS_METRICS_NAMESPACE

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json)

_Handler = TypeVar("_Handler", bound=Callable[..., Any])
_METHODS_BY_PATH_PATTERN: dict[str, set[str]] = {}


def route(method: str, rule: str, **options: Any) -> Callable[[_Handler], _Handler]:
    """``app.route``, remembering the methods of each path so a wrong method gets a 405."""
    pattern = "^" + "[^/]+".join(map(re.escape, re.split(r"<\w+>", rule))) + "/*$"
    _METHODS_BY_PATH_PATTERN.setdefault(pattern, set()).add(method)
    return app.route(rule, method, **options)


def allowed_methods(path: str) -> set[str]:
    """The methods routed for ``path``: empty if no route matches it."""
    return {
        method
        for pattern, methods in _METHODS_BY_PATH_PATTERN.items()
        if re.match(pattern, path)
        for method in methods
    }


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[Any]:
    headers = dict(headers or {})
    if CORRELATION_HEADER not in headers:
        correlation_id = _request_correlation_id()
        if correlation_id is not None:
            headers[CORRELATION_HEADER] = correlation_id
    return Response(int(status), content_types.APPLICATION_JSON, body, headers)


def _request_correlation_id() -> str | None:
    """The client's ``X-Correlation-Id`` if it is a valid id, else API Gateway's request id."""
    event = app.current_event
    candidates = (event.headers.get(CORRELATION_HEADER), event.request_context.get("requestId"))
    for candidate in candidates:
        if isinstance(candidate, str) and _is_id(candidate):
            return candidate
    return None


def _is_id(value: str) -> bool:
    try:
        check_id(value, "id")
    except LedgerError:
        return False
    return True


def start(kind: Literal["Command", "Query"], name: str) -> None:
    app.append_context(**{OPERATION: (kind, name)})
    tracer.put_annotation(key=kind.lower(), value=name)


def count(metric: str, **dimensions: str) -> None:
    """One count per request; dimensions are names and codes only (low cardinality)."""
    for name, value in dimensions.items():
        metrics.add_dimension(name=name, value=value)
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
