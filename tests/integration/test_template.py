"""template.yaml is the single source of truth: it lints clean, and every function it declares
starts with exactly the environment it gives that function (so no variable the composition root
needs is missing from the template)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from devstack.template import TEMPLATE_PATH, load_template

TEMPLATE = load_template()
FUNCTIONS = {
    logical_id: resource
    for logical_id, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
}
REPO_ROOT = Path(__file__).resolve().parents[2]
IMPORT_TIMEOUT_S = 60


def test_cfn_lint_finds_nothing() -> None:
    matches = lint_file(TEMPLATE_PATH, config=ManualArgs(regions=["us-east-1"]))
    assert [str(match) for match in matches] == []


def test_the_template_declares_the_functions_the_code_has() -> None:
    handlers = {resource["Properties"]["Handler"] for resource in FUNCTIONS.values()}
    assert handlers == {"handlers.api.handler", "handlers.project.handler"}


def _environment(logical_id: str, *, database: bool) -> dict[str, str]:
    """The variables the template sets for ``logical_id``, references replaced by placeholders,
    ``Fn::If`` resolved as a stack with (or without) a database would resolve it."""
    variables = dict(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    own = FUNCTIONS[logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    variables.update(own)
    resolved: dict[str, str] = {}
    for name, value in variables.items():
        concrete = _resolve(value, database=database)
        if concrete is not None:
            resolved[name] = concrete
    return resolved


def _resolve(value: Any, *, database: bool) -> str | None:
    if isinstance(value, str | int):
        return str(value)
    ((function, argument),) = value.items()
    if function == "Fn::If":
        condition, when_true, when_false = argument
        chosen = when_true if database and condition == "HasDatabaseSecret" else when_false
        return _resolve(chosen, database=database)
    if function == "Ref" and argument == "AWS::NoValue":
        return None
    if function == "Ref" and argument in TEMPLATE.get("Parameters", {}):
        default = TEMPLATE["Parameters"][argument].get("Default", "")
        if argument == "DatabaseSecretArn":
            return "arn:aws:secretsmanager:us-east-1:123456789012:secret:payledger-db"
        return str(default)
    return f"placeholder-for-{json.dumps(value, sort_keys=True)}"


@pytest.mark.parametrize("database", [False, True], ids=["without-database", "with-database"])
@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_handler_starts_with_the_environment_the_template_gives_it(
    logical_id: str, database: bool
) -> None:
    module, _, attribute = FUNCTIONS[logical_id]["Properties"]["Handler"].rpartition(".")
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "1",
        **_environment(logical_id, database=database),
    }
    script = (
        f"import importlib; handler = getattr(importlib.import_module({module!r}), {attribute!r});"
        " assert callable(handler)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
