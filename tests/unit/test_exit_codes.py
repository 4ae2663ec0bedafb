"""The exit codes are documented once (``cli.exit_codes``): ``payledger --help`` shows that table,
and the error tables of the reference (docs/) agree with it."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from cli import app
from cli.exit_codes import ERRORS, MEANINGS, causes

DOCS = Path(__file__).resolve().parents[2] / "docs"
# The pages with error tables: the CLI's, and the archive's failures.
ERROR_TABLES = "\n".join(
    (DOCS / page).read_text(encoding="utf-8") for page in ("cli.md", "archive.md")
)


def test_every_error_exits_with_a_documented_code() -> None:
    assert {error.exit_code for error in ERRORS} <= set(MEANINGS)
    assert [code for code in MEANINGS if code and not causes(code)] == []


def test_the_help_shows_every_exit_code_and_error_code() -> None:
    done = CliRunner().invoke(app, ["--help"])
    assert done.exit_code == 0
    table = done.stdout.split("Exit codes:")[1]
    # A row starts with its exit code; its cells wrap onto the lines below.
    rows: dict[int, str] = {}
    for line in table.splitlines():
        match = re.match(r"^\s*(\d)\s{2,}(.*)$", line)
        if match:
            exit_code = int(match[1])
            rows[exit_code] = match[2]
        elif rows:
            rows[exit_code] += line
    assert set(rows) == set(MEANINGS)
    for error in ERRORS:
        assert error.code in rows[error.exit_code], (error.code, rows[error.exit_code])


def test_the_reference_gives_each_error_code_its_exit_code() -> None:
    # Rows of the tables with an error code column followed (after at most one cell) by the exit.
    rows = re.findall(r"^\|(?: [^|]+ \|)? `([a-z_]+)` \|(?: [^|]+ \|)? (\d) \|", ERROR_TABLES, re.M)
    expected = {error.code: error.exit_code for error in ERRORS}
    assert [
        (code, int(exit_code)) for code, exit_code in rows if expected.get(code) != int(exit_code)
    ] == []
    assert {code for code, _ in rows} >= {"validation_error", "not_found", "verification_failed"}
