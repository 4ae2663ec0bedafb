"""payledger's wheel carries what its commands read from files, not only its modules:
``payledger local up`` deploys template.yaml and applies the SQL migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from projections.postgres import migrate

ROOT = Path(__file__).resolve().parents[2]
# `make` installs uv into the project's venv, beside the interpreter running the tests.
UV = Path(sys.executable).parent / "uv"
BUILD_TIMEOUT_S = 120


def test_the_wheel_carries_the_template_and_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [str(UV), "build", "--wheel", "--out-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=BUILD_TIMEOUT_S,
    )
    (wheel,) = tmp_path.glob("payledger-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read("devstack/template.yaml") == (ROOT / "template.yaml").read_bytes()
    migrations = {
        f"projections/postgres/{directory}/{path.name}"
        for directory in (migrate.VIEWS_MIGRATIONS, migrate.ANALYTICS_MIGRATIONS)
        for path in (ROOT / "projections" / "postgres" / directory).glob("*.sql")
    }
    assert len(migrations) >= 3
    assert migrations <= names
    assert "cli/__init__.py" in names
