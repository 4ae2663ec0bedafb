"""Every expected failure: one root, a stable code, an HTTP status and a CLI exit code.

Programmer errors are assertions, not members of this hierarchy. Adapters translate driver errors
into these and chain the original (``raise ConcurrencyError(...) from exc``), so callers catch one
hierarchy whatever the backend.

Each class states its code, HTTP status and exit code; the CLI renders the exit codes from these
classes (``cli/exit_codes.py``, shown by ``payledger --help``), and a test holds the README's error
table to them.
"""

from __future__ import annotations

from typing import ClassVar

from ledger.domain.pan import redact_pans

EXIT_INVALID_INPUT = 2
EXIT_RULE_VIOLATION = 3
EXIT_CONFLICT = 4
EXIT_NOT_FOUND = 5
EXIT_OTHER = 1


class LedgerError(Exception):
    """Root of every expected failure. ``code`` is part of the public contract: never rename one."""

    code: ClassVar[str] = "ledger_error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = EXIT_OTHER

    def __init__(self, message: str) -> None:
        # Messages may quote rejected input: never let a card number through one.
        message = redact_pans(message)
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidInputError(LedgerError):
    """The request itself is malformed: HTTP 400, exit 2."""

    http_status = 400
    exit_code = EXIT_INVALID_INPUT


class ValidationError(InvalidInputError):
    code = "validation_error"


class PanDetectedError(InvalidInputError):
    """A value looks like a primary account number (13–19 digits passing Luhn)."""

    code = "pan_detected"


class LimitExceededError(InvalidInputError):
    """A size, count or amount limit of DESIGN §4 is exceeded."""

    code = "limit_exceeded"


class NotFoundError(LedgerError):
    code = "not_found"
    http_status = 404
    exit_code = EXIT_NOT_FOUND


class ConflictError(LedgerError):
    """The request conflicts with what is stored: HTTP 409, exit 4."""

    http_status = 409
    exit_code = EXIT_CONFLICT


class IdempotencyConflictError(ConflictError):
    """The idempotency key was already used in this payment for a different request."""

    code = "idempotency_conflict"


class ConcurrencyError(ConflictError):
    """Another writer appended to the stream first and bounded retries did not resolve it."""

    code = "concurrency_conflict"


class AlreadyExistsError(ConflictError):
    """A payment with this id was already initiated by a different request."""

    code = "already_exists"


class RuleViolationError(LedgerError):
    """The request is well formed but the payment's rules forbid it: HTTP 422, exit 3."""

    http_status = 422
    exit_code = EXIT_RULE_VIOLATION


class InvalidTransitionError(RuleViolationError):
    code = "invalid_transition"


class CaptureExceedsAuthorizedError(RuleViolationError):
    code = "capture_exceeds_authorized"


class RefundExceedsCapturedError(RuleViolationError):
    code = "refund_exceeds_captured"


class CurrencyMismatchError(RuleViolationError):
    code = "currency_mismatch"


class HoldExpiredError(RuleViolationError):
    code = "hold_expired"


class HoldNotExpiredError(RuleViolationError):
    code = "hold_not_expired"


class ChainBrokenError(LedgerError):
    """Stored history does not verify (hash chain or versions): corruption or tampering."""

    code = "chain_broken"


class UndecodableEventError(LedgerError):
    """A stored event has an unknown type or schema version, or its payload fails validation."""

    code = "undecodable_event"


ALL_ERRORS: tuple[type[LedgerError], ...] = (
    ValidationError,
    PanDetectedError,
    LimitExceededError,
    NotFoundError,
    IdempotencyConflictError,
    ConcurrencyError,
    AlreadyExistsError,
    InvalidTransitionError,
    CaptureExceedsAuthorizedError,
    RefundExceedsCapturedError,
    CurrencyMismatchError,
    HoldExpiredError,
    HoldNotExpiredError,
    ChainBrokenError,
    UndecodableEventError,
)
