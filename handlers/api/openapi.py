"""The API's OpenAPI 3.1 document: what Powertools generates from the routes, with what API
Gateway adds in front of them (SigV4 authentication, its 403 and 429 answers, the deployed URL)
and the response headers the routes set.

Building it touches no AWS service and needs no configuration (``payledger api openapi``).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import (
    APIKey,
    APIKeyIn,
    Server,
    ServerVariable,
)
from pydantic import BaseModel

from handlers.api.models import ID_SCHEMA, CommandHeaders, ErrorResponse, GatewayError
from handlers.api.resolver import CORRELATION_HEADER, LOCATION_HEADER, REPLAYED_HEADER, app

_OPENAPI_DESCRIPTION = (
    "Event-sourced two-phase payments. Requests are signed with AWS SigV4 (service "
    "execute-api). Every POST appends events and needs an Idempotency-Key header; errors are "
    '{"error": {"code", "message"}}.'
)
SECURITY_SCHEME = "sigv4"
DEPLOYED_SERVER = Server(
    url="https://{api_id}.execute-api.{region}.amazonaws.com/{stage}",
    description="A deployed stack (its ApiUrl output); payledger local up prints a local one",
    variables={
        "api_id": ServerVariable(default="API_ID", description="The PaymentsApi's id"),
        "region": ServerVariable(default="us-east-1"),
        "stage": ServerVariable(default="dev", description="The stack's Stage parameter"),
    },
)
# API Gateway answers these before the API runs: 403 when a request is unsigned, badly signed
# or not allowed; 429 (the template's THROTTLED response, in the API's error shape) when throttled.
_GATEWAY_RESPONSES: dict[str, tuple[str, type[BaseModel]]] = {
    "403": ("Refused by API Gateway: unsigned, badly signed or not allowed", GatewayError),
    "429": ("throttled: retry with backoff", ErrorResponse),
}
_API_RESPONSES: dict[str, tuple[str, type[BaseModel]]] = {
    "500": ("internal_error (quote the X-Correlation-Id) or configuration_error", ErrorResponse)
}
_CREATED_HEADERS = {"initiatePayment": LOCATION_HEADER}


@cache
def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document, its server ``server_url`` if given, else the deployed URL's
    template. Powertools documents failed request validation as a 422 ``HTTPValidationError``;
    this API answers it with a 400 ``validation_error``, so those are dropped."""
    server = DEPLOYED_SERVER if server_url is None else Server(url=server_url)
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="payledger payments API",
            version="1",
            description=_OPENAPI_DESCRIPTION,
            servers=[server],
            security_schemes={
                SECURITY_SCHEME: APIKey(
                    name="Authorization",
                    in_=APIKeyIn.header,
                    description="AWS Signature Version 4 for execute-api",
                    openapi_extensions={"x-amazon-apigateway-authtype": "awsSigv4"},
                )
            },
            security=[{SECURITY_SCHEME: []}],
        )
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    for model in (ErrorResponse, GatewayError):
        _add_schema(schemas, model)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            _complete(operation)
    return document


def _complete(operation: dict[str, Any]) -> None:
    _constrain_headers(operation.get("parameters", []))
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "HTTPValidationError" in json.dumps(responses.get("422", {})):
        del responses["422"]
    for status, (description, model) in _API_RESPONSES.items():
        responses.setdefault(status, _response(description, model))
    for status, response in responses.items():
        headers = response.setdefault("headers", {})
        headers[CORRELATION_HEADER] = {
            "description": "The payment flow's correlation id for a command, else the client's "
            "X-Correlation-Id if valid, else API Gateway's request id",
            # API Gateway's validator answers a POST without Idempotency-Key with a 400 itself.
            "required": status != "400",
            "schema": {"type": "string", **ID_SCHEMA},
        }
        if status == "200" and "commands" in operation.get("tags", ()):
            headers[REPLAYED_HEADER] = {
                "description": "This Idempotency-Key was seen: the body is the original result",
                "required": True,
                "schema": {"type": "string", "enum": ["true"]},
            }
        location = _CREATED_HEADERS.get(operation.get("operationId", ""))
        if location is not None and status in ("200", "201"):
            headers[location] = {
                "description": "The payment's URL path: /payments/{payment_id}",
                "required": True,
                "schema": {"type": "string", "format": "uri-reference"},
            }
    for status, (description, model) in _GATEWAY_RESPONSES.items():
        responses[status] = _response(description, model)


def _constrain_headers(parameters: list[dict[str, Any]]) -> None:
    """Powertools documents each field of a headers model as a bare string: give it the field's
    own schema, constraints included."""
    fields = CommandHeaders.model_json_schema()["properties"]
    for parameter in parameters:
        field = fields.get(parameter["name"].replace("-", "_"))
        if parameter["in"] == "header" and field is not None:
            schema = next(
                (branch for branch in field.get("anyOf", ()) if branch.get("type") == "string"),
                field,
            )
            parameter["schema"] = {
                key: value for key, value in schema.items() if key not in ("title", "default")
            }


def _response(description: str, model: type[BaseModel]) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _add_schema(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(model.__name__, schema)
