"""``payledger mcp``: the payment commands and reads as MCP tools over stdio, for LLM agents.

The tools (``cli.mcp_server``) call the API over HTTP with ``payledger_client``, signed with the
credentials the server starts with (botocore's default chain: ``AWS_PROFILE``, the environment's
keys…). The API is ``--api-url``, else ``PAYLEDGER_API_URL``, else the ``ApiUrl`` output of
``--stack NAME`` or of the local stack (``payledger local up``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import GlobalOptions, app, global_options, reporting, resolve
from handlers import bootstrap


@app.command("mcp")
def mcp(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(
            envvar="PAYLEDGER_API_URL",
            help="The API's URL with its stage. Default: the stack's `ApiUrl` output.",
            show_default=False,
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            help="Region to sign for. Default: the URL's, else AWS_REGION's.", show_default=False
        ),
    ] = None,
) -> None:
    """Serve the payment commands and reads as MCP tools on stdin/stdout (add it to an agent's
    MCP configuration as the command `payledger mcp`). Tools act with the credentials this
    process has; errors are the API's codes."""
    options = global_options(ctx)
    with reporting(options, json_output=False):
        url = api_url or _stack_api_url(options)
        try:
            from cli.mcp_server import build_server
            from payledger_client import PayledgerClient, PayledgerError
        except ImportError as exc:
            raise bootstrap.ConfigurationError(
                f"payledger mcp needs the mcp extra and payledger-client ({exc.name} is missing)"
            ) from exc
        try:
            client = PayledgerClient(url, region=region)
        except PayledgerError as exc:
            raise bootstrap.ConfigurationError(exc.message) from exc
        build_server(client).run("stdio")


def _stack_api_url(options: GlobalOptions) -> str:
    """The ``ApiUrl`` output of the stack the CLI's other commands would use."""
    resources = resolve(options)
    outputs = resources.outputs
    if outputs is None and resources.stack is not None:
        outputs = bootstrap.stack_outputs(resources.stack, resources.aws)
    url = (outputs or {}).get("ApiUrl")
    if not url:
        raise bootstrap.ConfigurationError(
            "no API URL: pass --api-url (or set PAYLEDGER_API_URL), --stack NAME, "
            "or start the local stack with `payledger local up`"
        )
    return url
