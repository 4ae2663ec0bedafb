"""How the API answers what goes wrong: ``{"error": {"code", "message"}}`` with the status of a
ledger error, 400 ``validation_error`` for a malformed request, 404 and 405 for unrouted requests,
415 for a body that is not JSON, and 500 ``internal_error`` for a bug (client input never causes
a 5xx). Each answer is counted as the request's one metric."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from handlers.api.models import HEADERS_PARAMETER
from handlers.api.resolver import OPERATION, allowed_methods, app, count, json_response, logger
from ledger.domain.errors import LedgerError
from ledger.domain.pan import redact_pans

_VALIDATION_ERRORS_SHOWN_MAX = 5
_LOCATION_PART_CHARS_MAX = 64
_ROUTE_ENTERED = "route_entered"


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    kind, name = app.context.get(OPERATION, ("Request", None))
    outcome = "Rejected" if status < HTTPStatus.INTERNAL_SERVER_ERROR else "Failed"
    dimensions = {kind.lower(): name} if name else {}
    count(f"{kind}{outcome}", code=code, **dimensions)
    # Domain messages quote a little of a rejected value; a card number must never come back.
    body = {"error": {"code": code, "message": redact_pans(message)}}
    return json_response(status, body, headers)


@app.exception_handler(LedgerError)
def _ledger_error(error: LedgerError) -> Response[Any]:
    if error.http_status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.error("ledger failure", exc_info=error, extra={"code": error.code})
    else:
        logger.info("request rejected", extra={"code": error.code, "reason": error.message})
    return error_response(error.http_status, error.code, error.message)


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError) -> Response[Any]:
    message = _describe_validation_errors(error.errors())
    logger.info("request rejected", extra={"code": "validation_error", "reason": message})
    return error_response(HTTPStatus.BAD_REQUEST, "validation_error", message)


@app.exception_handler(RequestUnsupportedContentType)
def unsupported_media_type(_: RequestUnsupportedContentType | None) -> Response[Any]:
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send a JSON body"
    )


@app.not_found
def _no_route(_: RouteNotFoundError) -> Response[Any]:
    event = app.current_event
    allowed = allowed_methods(event.path)
    if allowed and event.http_method.upper() not in allowed:
        listed = ", ".join(sorted(allowed))
        return error_response(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "method_not_allowed",
            f"this path accepts {listed}",
            {"Allow": listed},
        )
    return error_response(HTTPStatus.NOT_FOUND, "not_found", "no such route")


@app.exception_handler(ValueError)
def _value_error(error: ValueError) -> Response[Any]:
    # Powertools decodes the body (base64, UTF-8, multipart) before any route runs and lets a
    # plain ValueError escape on undecodable input: that is the client's, not a bug.
    if not app.context.get(_ROUTE_ENTERED):
        return error_response(
            HTTPStatus.BAD_REQUEST, "validation_error", "the request body cannot be decoded"
        )
    return _unexpected(error)


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    logger.error("unexpected failure", exc_info=error)
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error; quote the X-Correlation-Id header if you report it",
    )


def _mark_route_entered(
    resolver: APIGatewayRestResolver, next_middleware: NextMiddleware
) -> Response[Any]:
    """Runs once Powertools has read and validated the request, right before the route."""
    resolver.append_context(**{_ROUTE_ENTERED: True})
    return next_middleware(resolver)


app.use(middlewares=[_mark_route_entered])


def _describe_validation_errors(errors: Sequence[Any]) -> str:
    """Where and what, from pydantic's errors: locations and templated messages, never inputs
    (a location can hold a client's key name: ``error_response`` masks card numbers in it)."""
    parts = [
        f"{_location(error.get('loc', ()))}: {_problem(error)}"
        for error in errors[:_VALIDATION_ERRORS_SHOWN_MAX]
    ]
    if len(errors) > _VALIDATION_ERRORS_SHOWN_MAX:
        parts.append(f"and {len(errors) - _VALIDATION_ERRORS_SHOWN_MAX} more")
    return "; ".join(parts)


def _location(loc: Sequence[Any]) -> str:
    if loc[:2] == ("header", HEADERS_PARAMETER):
        loc = ("header", *loc[2:])
    if loc and loc[0] == "body" and len(loc) == 2 and isinstance(loc[1], int):
        loc = ("body",)  # a JSON decode position
    if not loc:
        return "request"
    where, *path = (str(part)[:_LOCATION_PART_CHARS_MAX] for part in loc)
    return f"{where} {'.'.join(path)}" if path else where


def _problem(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"not valid JSON ({error.get('ctx', {}).get('error', 'unreadable')})"
    return str(error.get("msg", "invalid"))
