"""The client is its own distribution: its wheel installs into a fresh virtual environment with
none of payledger, and from there pays through the API over signed HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.client.conftest import ApiServer

ROOT = Path(__file__).resolve().parents[3]
UV = Path(sys.executable).parent / "uv"
PAY = """
import importlib.util, json
from payledger_client import PayledgerClient

assert importlib.util.find_spec("ledger") is None, "payledger itself is importable"
assert importlib.util.find_spec("pydantic") is None, "pydantic came along"
with PayledgerClient(API_URL) as client:
    client.initiate_payment(payment_id="pay-wheel", amount="3.50", currency="EUR",
                            merchant_id="m-wheel", customer_id="c-wheel")
    client.assess_risk("pay-wheel", decision="approve", score="0.01", reason="ok")
    client.authorize_payment("pay-wheel")
    captured = client.capture_payment("pay-wheel", amount="3.50")
print(json.dumps(captured.payment))
"""


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """``command``'s standard output; it must succeed."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def install_client(directory: Path) -> Path:
    """The python of a fresh virtual environment in ``directory`` holding only the client's
    wheel and its dependencies."""
    run(UV, "build", "--wheel", ROOT / "client", "--out-dir", directory / "dist", cwd=directory)
    (wheel,) = (directory / "dist").glob("payledger_client-*.whl")
    run(UV, "venv", directory / "venv", "--python", sys.executable, cwd=directory)
    python = directory / "venv" / "bin" / "python"
    # Offline: every dependency is in uv's cache since the project's own install.
    run(UV, "pip", "install", "--offline", "--python", python, wheel, cwd=directory)
    return python


def test_the_wheel_installs_alone_and_pays_over_http(api: ApiServer, tmp_path: Path) -> None:
    python = install_client(tmp_path)

    env = {
        "PATH": os.environ["PATH"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
    }
    # Run from an empty directory: the repository's packages must not be found from the cwd.
    script = PAY.replace("API_URL", repr(api.url))
    payment = json.loads(run(python, "-c", script, cwd=tmp_path, env=env))
    assert payment["status"] == "captured"

    site_packages = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    assert (site_packages / "payledger_client" / "py.typed").is_file()
    size = sum(path.stat().st_size for path in site_packages.rglob("*") if path.is_file())
    print(f"payledger-client installed: {size / 1e6:.1f} MB in site-packages")
