"""moto's server on loopback, in a child process, on a port the OS picks.

``python -m devstack.motoserver`` prints ``PORT <n>`` once the server listens, then serves until
stdin closes or it is terminated, so a parent that dies never leaves a server behind. With
``--until-terminated`` (the local stack's server, which outlives the command that started it) it
serves until SIGTERM or SIGINT instead.

The server never "invokes" a function itself (``stop_moto_invoking_functions``): the local
runtime's pumps play every event source mapping. Two DynamoDB paths that slow down as a table
grows are patched for speed, answers unchanged (``devstack.motopatches``); ``--unpatched`` leaves
them as moto has them, for the test that compares both.

The local HTTP gateway verifies SigV4 signatures against the credentials this emulated IAM and
STS issued; no AWS API returns a secret, so the server answers one loopback route of its own,
``GET /_payledger/principal/<access key id>`` (``principal_lookup``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from devstack import motopatches

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 60
MOTO_MARKER = "devstack.motoserver"  # in the command line of every server process
PRINCIPAL_ROUTE = "/_payledger/principal/"


class MotoServer:
    """A moto server process; ``endpoint_url`` is valid between ``start`` and ``stop``.
    ``patched=False`` serves moto's DynamoDB paths unchanged (see ``devstack.motopatches``)."""

    def __init__(self, *, patched: bool = True) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._patched = patched
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        assert self.port, "start() the server first"
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> MotoServer:
        assert self._process is None, "already started"
        environment = dict(os.environ, AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled")
        self._process = subprocess.Popen(
            [sys.executable, "-m", MOTO_MARKER, *([] if self._patched else ["--unpatched"])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=environment,
        )
        assert self._process.stdout is not None
        line = _readline_with_timeout(self._process, START_TIMEOUT_S)
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"moto server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_detached_moto(log_path: Path, *, cwd: Path) -> tuple[int, int]:
    """A server that outlives this process (``payledger local up``), serving until SIGTERM:
    its pid and port. Its output goes to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", MOTO_MARKER, "--until-terminated"],
            cwd=cwd,
            env=dict(os.environ, AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # a terminal's Ctrl-C never reaches it
        )
    line = _readline_with_timeout(process, START_TIMEOUT_S)
    assert process.stdout is not None
    process.stdout.close()
    if not line.startswith("PORT "):
        process.kill()
        process.wait()
        raise RuntimeError(f"moto server did not start (see {log_path}): {line!r}")
    # While the process that started it lives on (a test, the demo), its end leaves no zombie.
    threading.Thread(target=process.wait, daemon=True, name=f"reap-{process.pid}").start()
    return process.pid, int(line.split()[1])


def _readline_with_timeout(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout_s)
    return lines[0].strip() if lines else ""


def _serve(*, until_terminated: bool, patched: bool) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    stop_moto_invoking_functions()
    if patched:
        motopatches.apply()
    application = principal_lookup(
        serialize_dynamodb(DomainDispatcherApplication(create_backend_app))
    )
    server = make_server(LOOPBACK, 0, application, True, request_handler=MotoRequestHandler)
    print(f"PORT {server.server_port}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if until_terminated:
        os.dup2(2, 1)  # the parent stopped reading stdout once it had the port
        stopped = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopped.set())
        stopped.wait()
    else:
        sys.stdin.read()  # returns when the parent closes our stdin or exits
    server.shutdown()


def stop_moto_invoking_functions() -> None:
    """Make moto leave event source mappings to the local runtime.

    moto 5.2.5 "invokes" the function of a DynamoDB or Kinesis event source mapping on every
    write to the table or stream: it runs the function in Docker, and when that fails (no Docker)
    it also empties the table's stream, so no consumer would ever read a record. The local
    runtime polls the streams and invokes each function itself, so here both are no-ops.
    """
    from moto.awslambda.models import LambdaBackend

    def leave_to_the_runtime(self: LambdaBackend, *args: Any, **kwargs: Any) -> None:
        return None

    LambdaBackend.send_dynamodb_items = leave_to_the_runtime  # type: ignore[method-assign,assignment]
    LambdaBackend.send_kinesis_message = leave_to_the_runtime  # type: ignore[method-assign]


def serialize_dynamodb(application: Any) -> Any:
    """Run DynamoDB requests one at a time, as DynamoDB isolates each request.

    moto 5.2.5 serves requests on threads without a lock: two racing conditional PutItems on one
    key can both succeed, and a cancelled TransactWriteItems restores a copy of the table taken
    when it started, wiping what other requests wrote meanwhile. Real DynamoDB makes each
    request atomic, so the local runtime serialises DynamoDB (and Streams) requests; other
    services stay concurrent.
    """
    lock = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            return application(environ, start_response)
        with lock:
            return list(application(environ, start_response))

    return serialized


def principal_lookup(application: Any) -> Any:
    """Answer ``GET PRINCIPAL_ROUTE<access key id>`` with what the emulated IAM and STS hold of
    that key (``principal_document``), 404 when they hold nothing; pass everything else on."""

    def lookup(environ: dict[str, Any], start_response: Any) -> Any:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith(PRINCIPAL_ROUTE) or environ.get("REQUEST_METHOD") != "GET":
            return application(environ, start_response)
        document = principal_document(path.removeprefix(PRINCIPAL_ROUTE))
        status = "200 OK" if document is not None else "404 Not Found"
        body = json.dumps(document if document is not None else {"message": "unknown key"})
        start_response(status, [("Content-Type", "application/json")])
        return [body.encode()]

    return lookup


def principal_document(access_key_id: str) -> dict[str, Any] | None:
    """The principal that owns ``access_key_id``: an assumed role's temporary key (``ASIA…``) or
    an IAM user's key, with its secret, session token, state and every policy that applies to
    it (documents as JSON text), as ``moto.iam.access_control`` collects them."""
    from moto.iam.access_control import AssumedRoleAccessKey, IAMUserAccessKey
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account_id in list(iam_backends.keys()):
        for partition in list(iam_backends[account_id].keys()):
            iam = iam_backends[account_id][partition]
            role = sts_backends[account_id][partition].get_assumed_role_from_access_key(
                access_key_id
            )
            if role is not None:
                key = AssumedRoleAccessKey(
                    account_id,
                    partition,
                    access_key_id,
                    {"X-Amz-Security-Token": role.session_token},
                )
                return {
                    "kind": "assumed-role",
                    "account_id": account_id,
                    "secret_access_key": role.secret_access_key,
                    "session_token": role.session_token,
                    "status": "Active",
                    "expiration": role.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "arn": role.arn,
                    "caller_id": role.user_id,
                    "policies": [_policy_text(policy) for policy in key.collect_policies()],
                }
            user = _user_with_key(iam, access_key_id)
            if user is not None:
                owner, secret, status = user
                user_key = IAMUserAccessKey(account_id, partition, access_key_id, {})
                return {
                    "kind": "user",
                    "account_id": account_id,
                    "secret_access_key": secret,
                    "session_token": None,
                    "status": status,
                    "expiration": None,
                    "arn": user_key.arn,
                    "caller_id": owner,
                    "policies": [_policy_text(policy) for policy in user_key.collect_policies()],
                }
    return None


def _user_with_key(iam: Any, access_key_id: str) -> tuple[str, str, str] | None:
    """(user id, secret, status) of the IAM user owning ``access_key_id``."""
    for user in iam.list_users("/", None, None):
        for key in user.access_keys:
            if key.access_key_id == access_key_id:
                return str(user.id), str(key.secret_access_key), str(key.status)
    return None


def _policy_text(policy: Any) -> str:
    """A policy's document as JSON text: inline ones are text or a dict holding it, managed ones
    their default version's."""
    from moto.iam.models import Policy

    if isinstance(policy, Policy):
        return str(next(v.document for v in policy.versions if v.is_default))
    if isinstance(policy, str):
        return policy
    return str(policy["policy_document"])


if __name__ == "__main__":
    _serve(
        until_terminated="--until-terminated" in sys.argv[1:],
        patched="--unpatched" not in sys.argv[1:],
    )
