"""The payments API: API Gateway (REST, proxy integration) → ``PaymentService``.

| route                                      | command / query          | operation id         |
|--------------------------------------------|--------------------------|----------------------|
| ``POST /payments``                         | ``InitiatePayment``      | initiatePayment      |
| ``POST /payments/{id}/risk-assessments``   | ``AssessRisk``           | assessRisk           |
| ``POST /payments/{id}/authorization``      | ``AuthorizePayment``     | authorizePayment     |
| ``POST /payments/{id}/failure``            | ``FailPayment``          | failPayment          |
| ``POST /payments/{id}/captures``           | ``CapturePayment``       | capturePayment       |
| ``POST /payments/{id}/void``               | ``VoidPayment``          | voidPayment          |
| ``POST /payments/{id}/refunds``            | ``RefundPayment``        | refundPayment        |
| ``POST /payments/{id}/settlement``         | ``SettlePayment``        | settlePayment        |
| ``POST /payments/{id}/expiry``             | ``ExpirePayment``        | expirePayment        |
| ``GET /payments/{id}[?version=N&as_of=T]`` | the payment (as of then) | getPayment           |
| ``GET /payments/{id}/events``              | its history              | getPaymentEvents     |
| ``GET /merchants/{id}/payments``           | a merchant's payments    | listMerchantPayments |
| ``GET /openapi.json``                      | this API's OpenAPI 3.1   |                      |

Contract:
- Every POST needs an ``Idempotency-Key`` header. A new result is 201 ``{"payment", "events"}``;
  the same key and request again is 200 with the original body and ``Idempotent-Replayed: true``.
- Optional headers: ``X-Actor: KIND:ID`` (default ``api:<API key id or caller>``),
  ``X-Actor-Model``, ``X-Actor-Version``, ``X-Correlation-Id``, ``X-Causation-Id``. Every response
  carries ``X-Correlation-Id``: the payment flow's for a command, else the client's or API
  Gateway's request id (the ``correlation_id`` of this request's log lines).
- Errors are ``{"error": {"code", "message"}}``: a ledger error with its own status
  (``ledger.domain.errors``); a malformed request 400 ``validation_error`` (messages name the
  fields, never echo their values); 404 ``not_found``; 405 ``method_not_allowed``; 415
  ``unsupported_media_type``; a bug 500 ``internal_error``. Client input never causes a 5xx.
- The pydantic models check JSON types only (an amount is a string, never a number). Sizes,
  formats and card numbers are checked by the domain command built from them, so the API and
  the CLI share one validation.

- ``GET /merchants/{id}/payments`` pages through a merchant's payments, most recently updated
  first (``limit`` 1..100, default 50; ``status``; ``cursor``: the previous page's opaque
  ``next_cursor``, null on the last page). A cursor that does not decode or was made for another
  merchant or status is a 400 ``validation_error``.

Modules: ``resolver`` (the Powertools resolver, its logger, tracer and metrics, JSON responses),
``routes`` (one function per route), ``models`` (request and response bodies), ``dependencies``
(the service and the read model, injected with ``Depends``), ``errors`` (failures to responses),
``openapi`` (the published document), ``cursors`` (the listing's opaque cursor) and ``parsing``
(the strict JSON body parser).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.api import dependencies, errors, routes  # noqa: F401  importing registers routes
from handlers.api.resolver import app, logger, metrics, tracer

# Inside Lambda, build the clients during the init phase, not on the first request; elsewhere
# (the OpenAPI document, tests) nothing is built until a route needs it.
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    dependencies.wire()


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
