"""Typed errors: one class per error code the API answers, looked up by that code.

The API answers ``{"error": {"code", "message"}}``; API Gateway answers its own refusals (403,
429, a failed integration's 502) with ``{"message": ...}``. Either becomes one exception below,
so callers catch a family (``ConflictError``) or one code (``IdempotencyConflictError``); a code
this version does not know raises the root with that code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Self


class PayledgerError(Exception):
    """Root of every error the client raises: ``code`` is the API's stable error code,
    ``message`` its explanation, ``status`` the HTTP status (None when no response came back) and
    ``body`` the decoded response body. A subclass's ``code_default`` is the code it stands for."""

    code_default: ClassVar[str] = "payledger_error"

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.body: Mapping[str, Any] = body or {}

    @classmethod
    def client_side(cls, message: str) -> Self:
        """This error with its own code, raised by the client before or instead of a response."""
        return cls(cls.code_default, message)

    def __str__(self) -> str:
        status = "" if self.status is None else f" (HTTP {self.status})"
        return f"{self.code}{status}: {self.message}"


class InvalidInputError(PayledgerError):
    """The request is malformed: HTTP 400."""


class ValidationError(InvalidInputError):
    code_default = "validation_error"


class PanDetectedError(InvalidInputError):
    """A value looks like a card number: the ledger never stores one."""

    code_default = "pan_detected"


class LimitExceededError(InvalidInputError):
    code_default = "limit_exceeded"


class NotFoundError(PayledgerError):
    code_default = "not_found"


class ConflictError(PayledgerError):
    """The request conflicts with what is stored: HTTP 409."""


class IdempotencyConflictError(ConflictError):
    """The idempotency key was already used in this payment for a different request."""

    code_default = "idempotency_conflict"


class ConcurrencyConflictError(ConflictError):
    code_default = "concurrency_conflict"


class AlreadyExistsError(ConflictError):
    """A payment with this id was already initiated by a different request."""

    code_default = "already_exists"


class RuleViolationError(PayledgerError):
    """The request is well formed but the payment's rules forbid it: HTTP 422."""


class InvalidTransitionError(RuleViolationError):
    code_default = "invalid_transition"


class CaptureExceedsAuthorizedError(RuleViolationError):
    code_default = "capture_exceeds_authorized"


class RefundExceedsCapturedError(RuleViolationError):
    code_default = "refund_exceeds_captured"


class CurrencyMismatchError(RuleViolationError):
    code_default = "currency_mismatch"


class HoldExpiredError(RuleViolationError):
    code_default = "hold_expired"


class HoldNotExpiredError(RuleViolationError):
    code_default = "hold_not_expired"


class ChainBrokenError(PayledgerError):
    """The payment's stored history does not verify."""

    code_default = "chain_broken"


class UndecodableEventError(PayledgerError):
    code_default = "undecodable_event"


class MethodNotAllowedError(PayledgerError):
    code_default = "method_not_allowed"


class UnsupportedMediaTypeError(PayledgerError):
    code_default = "unsupported_media_type"


class InternalError(PayledgerError):
    """The API (or the gateway's integration) failed: HTTP 5xx, retried before it is raised."""

    code_default = "internal_error"


class ForbiddenError(PayledgerError):
    """API Gateway refused the request (HTTP 403): unsigned, badly signed, unknown or expired
    credentials, or a policy that does not grant ``execute-api:Invoke`` on the route."""

    code_default = "forbidden"


class ThrottledError(PayledgerError):
    """HTTP 429 after every retry: the API's throttling limits are reached."""

    code_default = "throttled"


class ConnectionFailedError(PayledgerError):
    """No response after every retry: the API could not be reached or did not answer in time."""

    code_default = "connection_error"


class ConfigurationError(PayledgerError):
    """The client cannot sign: no credentials found, or an invalid API URL."""

    code_default = "configuration_error"


_BY_CODE: dict[str, type[PayledgerError]] = {
    cls.code_default: cls
    for cls in (
        ValidationError,
        PanDetectedError,
        LimitExceededError,
        NotFoundError,
        IdempotencyConflictError,
        ConcurrencyConflictError,
        AlreadyExistsError,
        InvalidTransitionError,
        CaptureExceedsAuthorizedError,
        RefundExceedsCapturedError,
        CurrencyMismatchError,
        HoldExpiredError,
        HoldNotExpiredError,
        ChainBrokenError,
        UndecodableEventError,
        MethodNotAllowedError,
        UnsupportedMediaTypeError,
        InternalError,
        ForbiddenError,
        ThrottledError,
    )
}
_GATEWAY_CODES = {403: "forbidden", 429: "throttled"}
_MESSAGE_CHARS_MAX = 500


def error_class(code: str) -> type[PayledgerError]:
    """The exception class of an API error code (the root for a code this version lacks)."""
    return _BY_CODE.get(code, PayledgerError)


def error_from_response(status: int, raw: bytes, error_type: str | None) -> PayledgerError:
    """The exception an error response means: the API's own code if its body has one, else the
    gateway's refusal by status (``error_type`` is its ``x-amzn-ErrorType`` header)."""
    body = _decode(raw)
    detail = body.get("error")
    if isinstance(detail, dict) and isinstance(detail.get("code"), str):
        code, message = detail["code"], str(detail.get("message", ""))
    else:
        # API Gateway writes "message", and "Message" for an IAM policy's denial.
        gateway_message = body.get("message", body.get("Message"))
        if gateway_message is None:
            gateway_message = raw[:_MESSAGE_CHARS_MAX].decode("utf-8", "replace")
        message = str(gateway_message)
        if error_type:
            message = f"{error_type}: {message}"
        code = _GATEWAY_CODES.get(status) or ("internal_error" if status >= 500 else "http_error")
    return error_class(code)(code, message, status, body)


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
