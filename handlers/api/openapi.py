"""The API's OpenAPI 3.1 document, as Powertools generates it less what this API never answers."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from handlers.api.resolver import app

_OPENAPI_DESCRIPTION = (
    "Event-sourced two-phase payments. Every POST appends events and needs an Idempotency-Key "
    'header; errors are {"error": {"code", "message"}}.'
)


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document. Powertools documents failed request validation as a 422
    ``HTTPValidationError``; this API answers it with a 400 ``validation_error``, so drop those."""
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="payledger payments API",
            version="1",
            description=_OPENAPI_DESCRIPTION,
        )
    )
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                del responses["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    return document
