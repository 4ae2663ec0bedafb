"""Functions run as Lambda runs them: one runtime process per function, with exactly its
deployed environment plus what reaching the local stack takes.

``FunctionWorker.invoke`` sends one event to the function's process (``devstack.lambda_worker``)
and waits at most the function's timeout. A timeout kills the process, as Lambda ends a timed-out
sandbox; the next invocation starts a new one (a cold start, module-level wiring included). A
process that died is restarted the same way.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devstack.mappings import FunctionTarget
from handlers import bootstrap

REPO_ROOT = Path(__file__).resolve().parent.parent
_STOP_TIMEOUT_S = 5
# Deployed variables that reach a cloud database: locally the embedded PostgreSQL's URL replaces
# them (bootstrap refuses more than one way in). DATABASE_SCHEMA stays: it names the schema.
_CLOUD_DATABASE_VARIABLES = (
    bootstrap.DATABASE_SECRET_VARIABLE,
    bootstrap.DATABASE_HOST_VARIABLE,
    bootstrap.DATABASE_PORT_VARIABLE,
    bootstrap.DATABASE_USER_VARIABLE,
    bootstrap.DATABASE_NAME_VARIABLE,
)
_DATABASE_VARIABLE_PREFIX = "DATABASE_"
# What Lambda's Python runtime starts with: UTC, UTF-8, system binaries only.
LAMBDA_BASE_ENVIRONMENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "TZ": "UTC",
}
# Dummy credentials: moto accepts any, and they can never reach a real account.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}


def local_target(endpoint_url: str, region: str) -> bootstrap.AwsTarget:
    """The emulated AWS at ``endpoint_url``, reached with the dummy credentials."""
    credentials = (
        LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return bootstrap.AwsTarget(endpoint_url, region, credentials)


@dataclass(frozen=True, slots=True)
class Invocation:
    """One invocation's outcome: the function's result, or Lambda's error document."""

    result: Any = None
    error: Mapping[str, Any] | None = None
    duration_s: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None


def function_environment(
    target: FunctionTarget, *, endpoint_url: str, region: str, database_url: str | None
) -> dict[str, str]:
    """The whole process environment of ``target``'s runtime: nothing is inherited.

    Lambda's own runtime variables, the deployed variables, and the local overrides: the
    endpoint, dummy credentials, no X-Ray daemon, and for a function with database variables the
    embedded PostgreSQL's URL instead of the cloud ones.
    """
    environment = dict(LAMBDA_BASE_ENVIRONMENT)
    environment.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": target.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(target.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(target.timeout_s),
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "_HANDLER": target.handler,
        }
    )
    environment.update(target.environment)
    uses_database = any(name.startswith(_DATABASE_VARIABLE_PREFIX) for name in target.environment)
    for name in _CLOUD_DATABASE_VARIABLES:
        environment.pop(name, None)
    if uses_database and database_url is not None:
        environment[bootstrap.DATABASE_URL_VARIABLE] = database_url
    environment.update(LOCAL_CREDENTIALS)
    environment.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "POWERTOOLS_TRACE_DISABLED": "1",
        }
    )
    return environment


class FunctionWorker:
    """The runtime process of one function; ``invoke`` is safe from several threads (one
    invocation at a time, as one Lambda sandbox serves one)."""

    def __init__(
        self, target: FunctionTarget, environment: Mapping[str, str], log_path: Path | None = None
    ) -> None:
        self.target = target
        self._environment = dict(environment)
        self._log_path = log_path
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._log: IO[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.cold_starts = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def invoke(self, event: Mapping[str, Any], *, timeout_s: float | None = None) -> Invocation:
        timeout_s = self.target.timeout_s if timeout_s is None else timeout_s
        request_id = str(uuid.uuid4())
        with self._lock:
            process = self._ensure_started()
            assert process.stdin is not None
            started = time.monotonic()
            deadline_ms = int((time.time() + timeout_s) * 1000)
            request = {"event": event, "request_id": request_id, "deadline_ms": deadline_ms}
            try:
                process.stdin.write(json.dumps(request, separators=(",", ":")) + "\n")
                process.stdin.flush()
                line = self._answers.get(timeout=timeout_s)
            except BrokenPipeError:
                line = None
            except queue.Empty:
                self._kill()
                return Invocation(
                    error=_runtime_error(
                        "Sandbox.Timedout", f"Task timed out after {timeout_s:.2f} seconds"
                    ),
                    duration_s=time.monotonic() - started,
                )
            duration_s = time.monotonic() - started
            if line is None:
                self._kill()
                return Invocation(
                    error=_runtime_error("Runtime.ExitError", "the runtime process exited"),
                    duration_s=duration_s,
                )
        answer = json.loads(line)
        return Invocation(
            result=answer.get("result"), error=answer.get("error"), duration_s=duration_s
        )

    def start(self) -> FunctionWorker:
        with self._lock:
            self._ensure_started()
        return self

    def stop(self) -> None:
        with self._lock:
            process, self._process = self._process, None
            if process is not None:
                if process.stdin is not None:
                    with contextlib.suppress(BrokenPipeError):
                        process.stdin.close()
                try:
                    process.wait(timeout=_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=_STOP_TIMEOUT_S)
                self._join_reader()
            if self._log is not None:
                self._log.close()
                self._log = None

    def _ensure_started(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        if self._process is not None:
            self._kill()
        if self._log is None and self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_path.open("ab")
        self._answers = queue.Queue()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack.lambda_worker",
                self.target.handler,
                self.target.name,
                self.target.arn or self.target.name,
                str(self.target.memory_mb),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            text=True,
            cwd=REPO_ROOT,
            env=self._environment,
        )
        self._reader = threading.Thread(
            target=_read_answers, args=(process, self._answers), daemon=True, name=self.target.name
        )
        self._reader.start()
        self._process = process
        self.cold_starts += 1
        return process

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait(timeout=_STOP_TIMEOUT_S)
        if process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
        self._join_reader()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(_STOP_TIMEOUT_S)
            self._reader = None


def _read_answers(process: subprocess.Popen[str], answers: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    with process.stdout:
        for line in process.stdout:
            answers.put(line)
    answers.put(None)  # the process ended


def _runtime_error(error_type: str, message: str) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message, "stackTrace": []}
