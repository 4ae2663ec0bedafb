"""The payledger API client: SigV4-signed HTTP, automatic idempotency keys with safe retries,
typed results and one exception class per API error code.

```python
from payledger_client import PayledgerClient

with PayledgerClient("https://ID.execute-api.eu-west-1.amazonaws.com/Prod") as client:
    created = client.initiate_payment(payment_id="pay-1", amount="12.34", currency="EUR",
                                      merchant_id="m-1", customer_id="c-1")
    payment = client.get_payment("pay-1", min_version=created.payment["version"])
```
"""

from __future__ import annotations

from payledger_client.client import (
    LIMIT_MAX,
    Amount,
    CommandOptions,
    Metadata,
    PayledgerClient,
    Timestamp,
)
from payledger_client.errors import (
    AlreadyExistsError,
    CaptureExceedsAuthorizedError,
    ChainBrokenError,
    ConcurrencyConflictError,
    ConfigurationError,
    ConflictError,
    ConnectionFailedError,
    CurrencyMismatchError,
    ForbiddenError,
    HoldExpiredError,
    HoldNotExpiredError,
    IdempotencyConflictError,
    InternalError,
    InvalidInputError,
    InvalidTransitionError,
    LimitExceededError,
    MethodNotAllowedError,
    NotFoundError,
    PanDetectedError,
    PayledgerError,
    RefundExceedsCapturedError,
    RuleViolationError,
    ThrottledError,
    UndecodableEventError,
    UnsupportedMediaTypeError,
    ValidationError,
    error_class,
)
from payledger_client.types import (
    Actor,
    ActorKind,
    CommandResult,
    Event,
    Page,
    Payment,
    RiskDecision,
    Status,
)

__all__ = [
    "LIMIT_MAX",
    "Actor",
    "ActorKind",
    "AlreadyExistsError",
    "Amount",
    "CaptureExceedsAuthorizedError",
    "ChainBrokenError",
    "CommandOptions",
    "CommandResult",
    "ConcurrencyConflictError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionFailedError",
    "CurrencyMismatchError",
    "Event",
    "ForbiddenError",
    "HoldExpiredError",
    "HoldNotExpiredError",
    "IdempotencyConflictError",
    "InternalError",
    "InvalidInputError",
    "InvalidTransitionError",
    "LimitExceededError",
    "Metadata",
    "MethodNotAllowedError",
    "NotFoundError",
    "Page",
    "PanDetectedError",
    "PayledgerClient",
    "PayledgerError",
    "Payment",
    "RefundExceedsCapturedError",
    "RiskDecision",
    "RuleViolationError",
    "Status",
    "ThrottledError",
    "Timestamp",
    "UndecodableEventError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "error_class",
]
