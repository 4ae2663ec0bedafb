"""``payledger api openapi``: the payments API's OpenAPI document, written offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.common import HELP_MARKUP, app, global_options, reporting

api_app = typer.Typer(
    help="The payments API's description.", no_args_is_help=True, rich_markup_mode=HELP_MARKUP
)
app.add_typer(api_app, name="api")


@api_app.command("openapi")
def api_openapi(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file. Default: standard output."),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            help="The API's URL (a stack's `ApiUrl`, or `payledger local up`'s). Default: the "
            "deployed URL as a template of `api_id`, `region` and `stage`.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write the payments API's OpenAPI 3.1 document (SigV4 security scheme, operation ids,
    constraints, response headers) for client generators and test tools. Needs no AWS access
    and no configuration."""
    with reporting(global_options(ctx), json_output=False):
        from handlers.api.openapi import openapi_document

        text = json.dumps(openapi_document(server), indent=2, ensure_ascii=False) + "\n"
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
