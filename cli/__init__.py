"""The ``payledger`` command line (typer + rich): payment commands, history, replay, trace,
demo, the archive and auditors' queries, digests, proofs and verification.

Resources come from the composition root: ``EVENTS_TABLE`` (and boto3's own ``AWS_ENDPOINT_URL``)
or, with ``--stack NAME``, the outputs of a deployed stack. ``--json`` prints documents for
machines; failures then print ``{"error": {"code", "message"}}`` on stdout, otherwise one line
``error[code]: message`` on stderr. The archive and audit commands read ``ARCHIVE_BUCKET``,
``GLUE_DATABASE`` and ``ATHENA_WORKGROUP`` (see ``cli.archive``).

| exit | meaning                                                                             |
|------|-------------------------------------------------------------------------------------|
| 0    | success                                                                             |
| 1    | anything else: configuration_error, chain_broken, undecodable_event, unexpected     |
| 2    | invalid input: validation_error, pan_detected, limit_exceeded, usage errors         |
| 3    | rule violation: invalid_transition, capture_exceeds_authorized, currency_mismatch…  |
| 4    | conflict: idempotency_conflict, concurrency_conflict, already_exists                |
| 5    | not_found                                                                           |
| 6    | verification failed: verify found problems, a proof does not verify                 |
"""

from __future__ import annotations

# Importing a command module registers its commands on ``app``.
from cli import archive, demo, history, local, pay, verify, views
from cli.common import app

__all__ = ["app", "archive", "demo", "history", "local", "main", "pay", "verify", "views"]


def main() -> None:
    """Console-script entry point (``payledger``)."""
    app(prog_name="payledger")
