"""The ``payledger`` command line (typer + rich): payment commands, history, replay, trace,
demo, the OpenAPI document (``payledger api openapi``), the MCP server (``payledger mcp``), the
archive and auditors' queries, digests, proofs and verification.

Every command finds its resources the same way (``cli.common.resolve``): with ``--stack NAME``,
the outputs of a deployed stack; else the environment, if it names any (``EVENTS_TABLE``,
``ARCHIVE_BUCKET``, boto3's own ``AWS_ENDPOINT_URL``); else the local stack, if one is up.
``--json`` prints documents for machines; failures then print ``{"error": {"code", "message"}}``
on stdout, otherwise one line ``error[code]: message`` on stderr. The archive and audit commands
read ``ARCHIVE_BUCKET``, ``GLUE_DATABASE`` and ``ATHENA_WORKGROUP`` (see ``cli.archive``). Exit
codes: ``cli.exit_codes``, shown by ``payledger --help``.
"""

from __future__ import annotations

# Importing a command module registers its commands on ``app``.
from cli import api, archive, demo, history, local, mcp, pay, smoke, verify, views
from cli.common import app

__all__ = [
    "api",
    "app",
    "archive",
    "demo",
    "history",
    "local",
    "main",
    "mcp",
    "pay",
    "smoke",
    "verify",
    "views",
]


def main() -> None:
    """Console-script entry point (``payledger``)."""
    app(prog_name="payledger")
