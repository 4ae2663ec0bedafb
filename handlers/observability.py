"""Logging shared by every handler: Powertools structured JSON logs with card numbers masked.

Events never hold a PAN (the domain rejects them), but a log line can still carry one: a rejected
request's field, an exception message, a header. The formatter runs ``redact_pans`` over every
serialized record, so no log line leaves the process with a PAN-like number in it.
"""

from __future__ import annotations

import json
from typing import IO, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import LogRecord

from ledger.domain.pan import PAN_MASK, contains_pan, redact_pans


class PanRedactingFormatter(LambdaPowertoolsFormatter):
    """``LambdaPowertoolsFormatter`` whose output has every PAN-like number masked.

    Most records contain none and pass through unchanged. When ``redact_pans`` changes the
    serialized text, the record is masked value by value and serialized again instead, so a bare
    JSON number (``{"card": 4111111111111111}``) becomes the string ``"[PAN REDACTED]"`` and the
    line stays valid JSON.
    """

    def serialize(self, log: LogRecord) -> str:
        text = super().serialize(log)
        if redact_pans(text) == text:
            return text
        # A final pass over the text catches anything the value-by-value masking could not see.
        return redact_pans(super().serialize(_redact_value(json.loads(text))))


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_pans(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return PAN_MASK if contains_pan(str(value)) else value
    if isinstance(value, dict):
        return {redact_pans(str(key)): _redact_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_value(item) for item in value]
    return value  # pragma: no cover - json.loads yields only the types above


def make_logger(service: str | None = None, *, stream: IO[str] | None = None) -> Logger:
    """The Powertools ``Logger`` every handler uses (service name from ``POWERTOOLS_SERVICE_NAME``).

    Loggers of one service share one handler: the first call configures it. ``stream`` (default
    stdout) lets a test read what would be written.
    """
    return Logger(service=service, stream=stream, logger_formatter=PanRedactingFormatter())
