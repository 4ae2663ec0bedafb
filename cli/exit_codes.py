"""Every exit code of ``payledger``: the one table, rendered into ``payledger --help``.

A typed error carries its exit code (``LedgerError.exit_code``); this table says what each exit
code means and lists the error codes that exit with it, read from the errors themselves.
"""

from __future__ import annotations

from handlers.bootstrap import ConfigurationError
from ledger.domain.errors import (
    ALL_ERRORS,
    EXIT_CONFLICT,
    EXIT_INVALID_INPUT,
    EXIT_NOT_FOUND,
    EXIT_OTHER,
    EXIT_RULE_VIOLATION,
    LedgerError,
)
from ledger.integrity.chains import EXIT_VERIFICATION_FAILED, VerificationFailedError

EXIT_OK = 0
UNEXPECTED_ERROR_CODE = "unexpected_error"
MEANINGS: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_OTHER: "anything else: configuration, corrupted history, a failed demo check, unexpected",
    EXIT_INVALID_INPUT: "invalid input",
    EXIT_RULE_VIOLATION: "rule violation",
    EXIT_CONFLICT: "conflict",
    EXIT_NOT_FOUND: "not found",
    EXIT_VERIFICATION_FAILED: "verification failed: verify found problems, a proof does not verify",
}
ERRORS: tuple[type[LedgerError], ...] = (*ALL_ERRORS, ConfigurationError, VerificationFailedError)
# What exits with a code without being a typed error.
_UNTYPED_CAUSES = {EXIT_OTHER: [f"`{UNEXPECTED_ERROR_CODE}`"], EXIT_INVALID_INPUT: ["usage errors"]}


def causes(exit_code: int) -> list[str]:
    """The error codes (and untyped causes) that exit with ``exit_code``."""
    typed = [f"`{error.code}`" for error in ERRORS if error.exit_code == exit_code]
    return typed + _UNTYPED_CAUSES.get(exit_code, [])


def exit_codes_help() -> str:
    """The table as Markdown, for the commands' help."""
    rows = ["Exit codes:", "", "| exit | meaning | error codes |", "|---|---|---|"]
    for exit_code, meaning in MEANINGS.items():
        rows.append(f"| {exit_code} | {meaning} | {', '.join(causes(exit_code))} |")
    return "\n".join(rows)
